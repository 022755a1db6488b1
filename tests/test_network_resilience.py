"""Issue 24, "the hospital link: never lose, never repeat, never lock out" (docs/design.md §12):
``gout-edge listen``, its spool, its forward queue and the live page attacked on 127.0.0.1 with real
peers — DCMTK's ``storescu`` and ``echoscu`` running concurrently, raw sockets that connect and say
nothing, a PACS played in-process by pynetdicom that aborts or refuses, ``dciodvfy`` on what is
written — and the text of headers and command lines that used to break the pictures.

Each test is kept to seconds: studies of a few 320 × 240 stills, quiet periods and timeouts of a
second. The long run (a thousand studies, the PACS flapping) is ``benchmarks/listen_soak.py``."""

from __future__ import annotations

import json
import os
import re
import resource
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import warnings
from pathlib import Path

import pydicom
from dicom_tools import Node, require, storescu, wait_for
from support.json_schemas import validate
from support.pacs import PlayedPacs
from support.studies import changed_copy, write_h264_cine, write_study

from gout_edge.cli import main
from gout_edge.edge_runtime.imaging.text import clean_line, clean_uid, dicom_value, is_valid_uid
from gout_edge.edge_runtime.network import ForwardQueue, Spool, parse_peer
from gout_edge.edge_runtime.network.listener import ExamScanner, ListenConfig, Listener, read_status

QUIET = "1"
FAST = ["--quiet-period", QUIET, "--association-timeout", "2", "--pdu-timeout", "2", "--scan-workers", "2"]
LF_NAME = "LINEFEED\nPATIENT^" + "N" * 601


def _state(node: Node) -> dict:
    (state,) = [json.loads(p.read_text()) for p in (node.spool / "studies").glob("*/.state.json")]
    return state


def _dciodvfy_errors(path: Path) -> list[str]:
    out = subprocess.run([require("dciodvfy")["dciodvfy"], str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")]


# ------------------------------------------------------------------ text from outside is data


def test_text_from_outside_is_one_clean_line_and_valid_for_its_vr():
    assert clean_line("ID\nX\r\n\t\x00Y\u202e\u200bZ") == "ID X Y Z"
    assert clean_line("a" * 100, 10) == "a" * 9 + "…" and clean_line(None) == ""
    assert dicom_value(LF_NAME, "PN").startswith("LINEFEED PATIENT^") and len(dicom_value(LF_NAME, "PN")) == 64
    assert dicom_value("A\\B", "LO") == "A/B" and dicom_value("x" * 70, "SH") == "x" * 16
    assert dicom_value("2026-02-30", "DA") == "" and dicom_value("20261201", "DA") == "20261201"
    assert dicom_value("25:00", "TM") == "" and dicom_value("left foot", "CS") == "LEFT FOOT"
    assert len(dicom_value("é" * 64, "LO").encode("latin-1")) == 64
    assert len(dicom_value("患" * 64, "LO").encode("utf-8")) <= 64  # in bytes as written (UTF-8)
    assert clean_uid("1.2.840.10008.1.2\x00") == ("1.2.840.10008.1.2", False)
    bad, replaced = clean_uid("1.2.3/../4")
    assert replaced and is_valid_uid(bad) and clean_uid("1.2.3/../4")[0] == bad  # the same replacement each time
    assert not is_valid_uid("1.02.3") and not is_valid_uid("1." + "1" * 70)


def test_a_line_feed_in_the_patient_given_on_the_command_line_gives_a_normal_report(tmp_path, no_device_key):
    images = tmp_path / "images"
    images.mkdir()
    import cv2
    from support.screens import screen

    for i in range(3):
        cv2.imwrite(str(images / f"im{i}.png"), screen(seed=i))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # every warning any library gives, to see whether one quotes the patient
        code = main(["scan", "--images", str(images), "--patient", "ZEBRA\nX", "--out", str(tmp_path / "scans"),
                     "--no-display", "--backend", "onnxruntime"])
    assert code == 0  # was 70: Pillow's raqm_layout() failed on the line feed
    assert not [w for w in caught if "ZEBRA" in str(w.message)]  # highdicom's warnings quote names
    (session,) = (tmp_path / "scans").iterdir()
    assert (session / "summary.png").is_file() and (session / "report.pdf").is_file()
    sr = pydicom.dcmread(session / "dicom" / "SR.dcm")
    assert sr.PatientID == "ZEBRA X"
    summary = pydicom.dcmread(session / "dicom" / "SC_summary.dcm")  # sized sensibly: lossless, compressed
    assert summary.file_meta.TransferSyntaxUID == pydicom.uid.RLELossless
    assert (session / "dicom" / "SC_summary.dcm").stat().st_size < summary.pixel_array.nbytes / 2
    assert not _dciodvfy_errors(session / "dicom" / "SR.dcm")


def test_an_undecodable_instance_leaves_its_study_scanned_from_the_rest(tmp_path, no_device_key, capsys):
    study = tmp_path / "study"
    files = write_study(study, 5, seed=1)
    write_h264_cine(study / "CINE.dcm", str(pydicom.dcmread(files[0]).StudyInstanceUID))
    capsys.readouterr()
    code = main(["scan", "--dicom", str(study), "--out", str(tmp_path / "scans"), "--no-display", "--json",
                 "--backend", "onnxruntime"])
    out = capsys.readouterr().out
    assert code == 0, out  # was 3: the whole study refused for one cine
    doc = json.loads(out)
    (left,) = doc["source"]["skipped_files"]
    assert left["file"] == "CINE.dcm" and "H.264" in left["reason"]
    (patient,) = doc["patients"]
    assert patient["frames_seen"] == 5
    session = Path(patient["session_dir"])
    end = json.loads((session / "journal.jsonl").read_text().splitlines()[-1])
    assert end["type"] == "end" and end["skipped_files"][0]["file"] == "CINE.dcm"
    sr = pydicom.dcmread(session / "dicom" / "SR.dcm")
    texts = [i.TextValue for i in _items(sr.ContentSequence) if i.ValueType == "TEXT"]
    assert any(t.startswith("1 input file(s) not used: CINE.dcm: transfer syntax MPEG-4 AVC/H.264") for t in texts)
    code = main(["scan", "--dicom", str(study), "--strict", "--out", str(tmp_path / "strict"), "--no-display"])
    assert code == 3  # --strict still refuses it


def _items(seq):
    for item in seq:
        yield item
        yield from _items(item.get("ContentSequence", []))


# ------------------------------------------------------------------ the spool: once per study


def test_concurrent_identical_stores_count_once_and_a_study_is_claimed_once(tmp_path):
    spool = Spool(tmp_path / "spool")
    files = write_study(tmp_path / "study", 6)
    raw = [(f.read_bytes(), pydicom.dcmread(f, stop_before_pixels=True)) for f in files]

    def send() -> None:
        for data, ds in raw:
            spool.store(data, str(ds.StudyInstanceUID), str(ds.SOPInstanceUID))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (state,) = spool.studies()
    assert (state.instances, state.generation) == (6, 6)  # 48 stores, 6 instances, counted once each
    claims = spool.claim_due(0, 4, lambda: "s1")
    assert len(claims) == 1 and spool.claim_due(0, 4, lambda: "s2") == []
    send()  # identical re-sends during the scan: nothing new to read
    spool.finish(claims[0], sessions=["s1"], results=[], forward=[], enqueue=None)
    assert spool.due(0) == [] and not spool.pending()
    changed = changed_copy(files[0], tmp_path / "changed.dcm")
    assert spool.store(changed.read_bytes(), str(raw[0][1].StudyInstanceUID), str(raw[0][1].SOPInstanceUID)).change == "changed"
    (claim,) = spool.claim_due(0, 4, lambda: "s3")
    assert claim.again and claim.generation == 7 and claim.instances == 6
    # a crash here (the process dies mid-scan): the next start sees the scan and its session ID
    reopened = Spool(tmp_path / "spool")
    ((state, attempt, _),) = reopened.interrupted()
    assert state.status == "scanning" and attempt["session_id"] == "s3"
    reopened.recover(state.key, None)
    assert reopened.claim_due(0, 4, lambda: "s4")[0].generation == 7


def test_dcmtk_storescu_twice_at_once_gives_one_scan_per_study(tmp_path):
    tools = require("storescu")
    files = write_study(tmp_path / "study", 6, seed=2)
    node = Node(tmp_path / "node", "--allow", "SCANNER", *FAST)
    try:
        node.start()
        procs = [subprocess.Popen([tools["storescu"], "-aet", "SCANNER", "-aec", "GOUT_EDGE", "127.0.0.1",
                                   str(node.port), *map(str, files)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                 for _ in range(3)]
        for p in procs:
            assert p.wait(60) == 0, p.stdout.read().decode()
        node.wait_log(r"study \w+: session \S+: ", 60)
        time.sleep(3 * float(QUIET))  # three quiet periods more: nothing is due again
        log = node.log()
        assert len(re.findall(r"complete \(1 s without new instances\): 6 instance\(s\); scanning", log)) == 1, log
        assert "scanning again" not in log
        state = _state(node)
        assert (state["generation"], state["scanned_generation"], state["scans"]) == (6, 6, 1)
    finally:
        node.stop()


def test_a_changed_instance_re_reads_the_study_once_and_its_sr_supersedes_the_first(tmp_path):
    tools = require("storescu")
    files = write_study(tmp_path / "study", 3, seed=3)
    node = Node(tmp_path / "node", "--allow", "SCANNER", *FAST)
    try:
        node.start()
        assert storescu(tools["storescu"], node.port, files).returncode == 0
        node.wait_log(r"study \w+: session \S+: ", 60)
        first = pydicom.dcmread(Path(_state(node)["results"][0]))
        mark = node.mark()
        assert storescu(tools["storescu"], node.port, files[1:]).returncode == 0  # identical: nothing to do
        changed = changed_copy(files[0], tmp_path / "IM01-changed.dcm")
        assert storescu(tools["storescu"], node.port, [changed]).returncode == 0
        node.wait_log(r"scanning again \(it changed\)", 30, since=mark)
        node.wait_log(r"study \w+: session \S+: ", 60, since=node.log().rindex("scanning again"))
        time.sleep(2 * float(QUIET))
        assert node.log()[mark:].count("scanning again") == 1
        state = _state(node)
        assert state["scans"] == 2 and state["generation"] == 4
        second = pydicom.dcmread(Path(state["results"][0]))
        (pred,) = second.PredecessorDocumentsSequence
        ref = pred.ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
        assert ref.ReferencedSOPInstanceUID == first.SOPInstanceUID and second.SOPInstanceUID != first.SOPInstanceUID
        assert not _dciodvfy_errors(Path(state["results"][0]))
    finally:
        node.stop()


# ------------------------------------------------------------------ header text reaches the SR, never the log


def test_line_feeds_long_names_and_bad_uids_in_a_study_give_a_normal_report_and_a_valid_sr(tmp_path):
    require("storescu", "dciodvfy")
    from pynetdicom import AE
    from pynetdicom.sop_class import UltrasoundImageStorage

    bad_study = "1.2.826.0.1.3680043.10.999/../7"
    files = write_study(tmp_path / "study", 3, seed=4, study_uid=bad_study, patient_id="SECRETID\n7",
                        patient_name=LF_NAME,
                        attrs={"StudyDescription": "ZEBRA\r\nright", "AccessionNumber": "QUOKKA\n42",
                               "ReferringPhysicianName": "DR\x1bWOMBAT"})
    node = Node(tmp_path / "node", "--allow", "SCANNER", *FAST)
    try:
        node.start()
        ae = AE(ae_title="SCANNER")  # pynetdicom: DCMTK's storescu checks the UID and will not send it
        ae.add_requested_context(UltrasoundImageStorage)
        assoc = ae.associate("127.0.0.1", node.port, ae_title="GOUT_EDGE")
        assert assoc.is_established
        statuses = [assoc.send_c_store(pydicom.dcmread(f)).Status for f in files]
        assoc.release()
        assert statuses == [0, 0, 0]
        node.wait_log(r"study \w+: session \S+: ", 60)
        (session,) = (node.work / "scans").iterdir()
        assert (session / "summary.png").is_file() and (session / "report.json").is_file()
        sr = pydicom.dcmread(session / "dicom" / "SR.dcm")
        assert sr.PatientID == "SECRETID 7" and len(str(sr.PatientName)) == 64
        assert is_valid_uid(sr.StudyInstanceUID) and sr.StudyInstanceUID == clean_uid(bad_study)[0]
        texts = [i.TextValue for i in _items(sr.ContentSequence) if i.ValueType == "TEXT"]
        assert any("StudyInstanceUID" in t and "PatientName" in t for t in texts)  # recorded, by name
        for path in (session / "dicom").glob("*.dcm"):
            assert not _dciodvfy_errors(path), path.name
        log = node.log()
        assert re.search(r"not valid DICOM were cleaned or replaced in its SR and SC: StudyInstanceUID, PatientID", log)
        for secret in ("SECRETID", "LINEFEED", "NNNNNNNNNN", "ZEBRA", "QUOKKA", "WOMBAT"):
            assert secret not in log, secret  # not even in a library's warning
    finally:
        node.stop()


# ------------------------------------------------------------------ the forward queue


def _results(tmp_path: Path, n: int) -> list[Path]:
    return write_study(tmp_path / "results", n, seed=9)


def _drain(queue: ForwardQueue, until, timeout_s: float = 30) -> None:  # noqa: ANN001
    stop = threading.Event()
    worker = threading.Thread(target=queue.run, args=(stop, 0.05), daemon=True)
    worker.start()
    try:
        wait_for(until, timeout_s, "the forward queue")
    finally:
        stop.set()
        queue.wake()
        worker.join(10)


def test_a_pacs_that_aborts_its_first_thirty_associations_gets_every_object_and_nothing_is_given_up(tmp_path):
    pacs = PlayedPacs(abort_first=30).start()
    try:
        files = _results(tmp_path, 4)
        queue = ForwardQueue(tmp_path / "queue", parse_peer(pacs.peer), retry_s=0.01, max_wait_s=0.05, timeout_s=2)
        queue.enqueue(files)
        queue.enqueue(files)  # queued twice: one job each
        _drain(queue, lambda: queue.counts()["sent"] == 4)
        assert pacs.aborted == 30 and queue.counts() == {"pending": 0, "sent": 4, "failed": 0}
        uids = {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files}
        assert set(pacs.stored) == uids and set(pacs.stored.values()) == {1}  # each once
        sent = [json.loads(p.read_text()) for p in queue.sent_dir.glob("*.json")]
        assert all(j["refusals"] == 0 and j["attempts"] >= 30 for j in sent)  # lost associations are no refusals
    finally:
        pacs.stop()


def test_only_a_dicom_failure_status_is_a_refusal_and_the_horizon_ends_the_tries(tmp_path):
    files = _results(tmp_path, 2)
    refusing = PlayedPacs(refuse=0xA700).start()
    try:
        queue = ForwardQueue(tmp_path / "q1", parse_peer(refusing.peer), retry_s=0.01, max_wait_s=0.02,
                             max_refusals=3, timeout_s=5)
        queue.enqueue(files)
        _drain(queue, lambda: queue.counts()["failed"] == 2)
        failed = [json.loads(p.read_text()) for p in queue.failed_dir.glob("*.json")]
        assert all(j["refusals"] == 3 and j["status"] == "0xA700" and "refused 3 times" in j["last_error"] for j in failed)
    finally:
        refusing.stop()
    down = PlayedPacs()  # never started: nothing listens on its port
    queue = ForwardQueue(tmp_path / "q2", parse_peer(down.peer), retry_s=0.05, max_wait_s=0.1, horizon_s=0.5,
                         timeout_s=2)
    queue.enqueue(files)
    _drain(queue, lambda: queue.counts()["failed"] == 2)
    failed = [json.loads(p.read_text()) for p in queue.failed_dir.glob("*.json")]
    assert all(j["refusals"] == 0 and "not delivered within" in j["last_error"] for j in failed)
    waits = [queue._wait_s(3) for _ in range(200)]  # jitter: between half and all of the doubled wait
    assert 0.1 * 0.5 <= min(waits) < max(waits) <= 0.1


def test_a_damaged_job_or_result_file_is_quarantined_and_the_rest_flow(tmp_path):
    pacs = PlayedPacs().start()
    try:
        files = _results(tmp_path, 3)
        broken = tmp_path / "results" / "broken.dcm"
        broken.write_bytes(b"not DICOM at all")
        spool = Spool(tmp_path / "spool")
        queue = ForwardQueue(spool.root / "forward", parse_peer(pacs.peer), retry_s=0.01, timeout_s=5)
        queue.enqueue([files[0], broken, *files[1:]])
        (queue.pending_dir / "0000-torn.json").write_text('{"file": ')  # a job file no one can read
        report = queue.deliver_due()  # one pass: what can go, goes
        assert report.delivered == 3 and report.quarantined == 1 and len(pacs.stored) == 3
        assert queue.counts() == {"pending": 0, "sent": 3, "failed": 2}
        reasons = {f["file"]: f["reason"] for f in queue.status()["recent_failures"]}
        assert "not a DICOM file that can be sent" in reasons["broken.dcm"]
        assert "cannot be read" in reasons["0000-torn.json"]
        status = read_status(spool.root)  # what ``listen --status`` shows, read from the disk
        assert status["forward"]["failed"] == 2 and status["forward"]["pending"] == 0
        assert {f["file"] for f in status["forward"]["recent_failures"]} == {"broken.dcm", "0000-torn.json"}
    finally:
        pacs.stop()


def test_listen_forwards_through_a_pacs_that_aborts_its_first_thirty_associations(tmp_path, capsys):
    tools = require("storescu")
    pacs = PlayedPacs(abort_first=30).start()
    node = Node(tmp_path / "node", "--allow", "SCANNER", *FAST, "--forward", pacs.peer, "--retry-interval", "0.02",
                "--retry-max", "0.1", "--forward-timeout", "0.5")
    try:
        node.start()
        assert storescu(tools["storescu"], node.port, write_study(tmp_path / "study", 2, seed=5)).returncode == 0
        node.wait_log(r"forward: [1-9]\d* object\(s\) delivered", 60)
        queue = node.spool / "forward"
        wait_for(lambda: not list((queue / "pending").glob("*.json")), 30, "the queue to empty")
        sent = list((queue / "sent").glob("*.json"))
        results = _state(node)["results"]
        objects = len(list(Path(results[0]).parent.glob("*.dcm")))  # the SR and the captures of the scan
        assert pacs.aborted == 30 and len(sent) == len(pacs.stored) == objects >= 2 and set(pacs.stored.values()) == {1}
        assert not list((queue / "failed").glob("*.json"))
        capsys.readouterr()
        code = main(["listen", "--status", "--spool", str(node.spool), "--json"])
        status = validate("listen", capsys.readouterr().out)  # the published schema's second shape
        assert code == 0 and status["running"] and status["forward"]["sent"] == len(sent)
        assert status["forward"]["failed"] == 0 and status["studies"] == {"total": 1, "waiting": 0, "scanning": 0,
                                                                          "failed": 0}
    finally:
        node.stop()
        pacs.stop()


# ------------------------------------------------------------------ bounded: connections, sizes, budgets


def _listener(tmp_path: Path, **config) -> Listener:
    cfg = ListenConfig(port=0, quiet_s=60, allowed=("SCANNER",), acse_timeout_s=2, pdu_timeout_s=1, **config)
    node = Listener(cfg, Spool(tmp_path / "spool"))
    node.start()
    return node


def test_sixteen_idle_connections_do_not_keep_the_allowed_scanner_out(tmp_path):
    tools = require("echoscu", "storescu")
    node = _listener(tmp_path)
    idle = []
    try:
        for _ in range(40):  # more than the 8 connections allowed, each saying nothing
            idle.append(socket.create_connection(("127.0.0.1", node.port)))
        time.sleep(0.5)
        t0 = time.monotonic()
        echo = subprocess.run([tools["echoscu"], "-aet", "SCANNER", "-aec", "GOUT_EDGE", "127.0.0.1", str(node.port)],
                              capture_output=True, text=True, timeout=30)
        assert echo.returncode == 0, echo.stdout + echo.stderr
        assert time.monotonic() - t0 < 10  # was ~70 s: the scanner shut out until the idle ones timed out
        files = write_study(tmp_path / "study", 2, seed=6)
        assert storescu(tools["storescu"], node.port, files).returncode == 0
        assert node.summary()["received"] == 2
        wait_for(lambda: node.summary()["connections"] <= 1, 10, "idle connections to be dropped (2 s)")
    finally:
        for s in idle:
            s.close()
        node.stop()


def test_a_pdu_that_trickles_or_claims_gigabytes_is_cut_off(tmp_path):
    node = _listener(tmp_path)
    try:
        slow = socket.create_connection(("127.0.0.1", node.port))
        slow.sendall(b"\x01\x00\x00\x00\x01\x00")  # A-ASSOCIATE-RQ of 256 bytes … that never comes
        huge = socket.create_connection(("127.0.0.1", node.port))
        huge.sendall(b"\x04\x00\xff\xff\xff\xf0")  # a P-DATA of 4 GB
        for s in (slow, huge):
            s.settimeout(10)
            t0 = time.monotonic()
            while s.recv(1024):  # an A-ABORT may come first; then the node closes the connection …
                pass
            assert time.monotonic() - t0 < 5  # … within the PDU timeout (1 s), not never
            s.close()
    finally:
        node.stop()


def test_an_instance_over_the_size_limit_is_refused_with_a_clear_status(tmp_path):
    tools = require("storescu")
    node = _listener(tmp_path, max_instance_bytes=50_000)
    try:
        files = write_study(tmp_path / "study", 1, seed=7)  # 78 kB
        out = subprocess.run([tools["storescu"], "-v", "-aet", "SCANNER", "-aec", "GOUT_EDGE", "127.0.0.1",
                              str(node.port), str(files[0])], capture_output=True, text=True, timeout=30)
        text = out.stdout + out.stderr
        assert "Received Store Response (Refused: OutOfResources)" in text, text
        assert not list((tmp_path / "spool" / "studies").glob("*/*.dcm"))
        assert not list((tmp_path / "spool" / "incoming").iterdir())
        assert node.summary()["refused"] == 1
    finally:
        node.stop()


def test_an_aborted_association_is_logged_with_what_it_stored(tmp_path, caplog):
    from pynetdicom import AE
    from pynetdicom.sop_class import UltrasoundImageStorage

    node = _listener(tmp_path)
    try:
        files = write_study(tmp_path / "study", 2, seed=8)
        ae = AE(ae_title="SCANNER")
        ae.add_requested_context(UltrasoundImageStorage)
        with caplog.at_level("WARNING", logger="gout_edge"):
            assoc = ae.associate("127.0.0.1", node.port, ae_title="GOUT_EDGE")
            assert assoc.send_c_store(pydicom.dcmread(files[0])).Status == 0
            assoc.abort()
            wait_for(lambda: "aborted after 1 instance(s) stored" in caplog.text, 10, "the abort in the log")
        assert node.summary()["aborted_associations"] == 1
    finally:
        node.stop()


def test_a_scan_keeps_to_its_pixel_budget_and_the_listeners_tables_forget(tmp_path, demo):
    bundle, scorer = demo
    spool = Spool(tmp_path / "spool")
    for f in write_study(tmp_path / "study", 4, seed=10):
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        spool.store(f.read_bytes(), str(ds.StudyInstanceUID), str(ds.SOPInstanceUID))
    # a crash left this study half-scanned: a claim with its session folder
    (claim,) = spool.claim_due(0, 1, lambda: "20261206-000000-dead")
    orphan = tmp_path / "scans" / "20261206-000000-dead"
    orphan.mkdir(parents=True)
    (orphan / "journal.jsonl").write_text("{}\n")
    scanner = ExamScanner(bundle, scorer, tmp_path / "scans")
    cfg = ListenConfig(port=0, quiet_s=0.2, scan_pixel_budget=2 * 240 * 320, poll_s=0.05)
    node = Listener(cfg, Spool(tmp_path / "spool"), scan=scanner)
    node.start()
    try:
        wait_for(lambda: node.summary()["studies_scanned"] == 1, 60, "the study to be scanned")
        assert not orphan.exists()  # the crash's partial folder is gone …
        (session,) = (tmp_path / "scans").iterdir()  # … and one session is left
        (scan,) = node.summary()["scans"]
        assert "pixel budget reached" in scan["sessions"][0]["ended_by"]
        report = json.loads((session / "report.json").read_text())
        assert report["frames_seen"] == 2 and report["complete"] is False
        assert node.scans.maxlen == 100
    finally:
        node.stop()


def test_a_scan_that_fails_says_why_and_is_tried_again_a_bounded_number_of_times(tmp_path, demo, caplog):
    bundle, scorer = demo
    spool = Spool(tmp_path / "spool")
    for f in write_study(tmp_path / "study", 2, seed=11):
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        spool.store(f.read_bytes(), str(ds.StudyInstanceUID), str(ds.SOPInstanceUID))
    real = ExamScanner(bundle, scorer, tmp_path / "scans")
    calls = []

    def disk_trouble_then_real(request):  # noqa: ANN001, ANN202 - a fault of the cart, injected once
        calls.append(request.session_id)
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        return real(request)

    disk_trouble_then_real.out_dir = real.out_dir
    node = Listener(ListenConfig(port=0, quiet_s=0.1, poll_s=0.05, scan_retry_s=0.3), spool, scan=disk_trouble_then_real)
    with caplog.at_level("ERROR", logger="gout_edge"):
        node.start()
        try:
            wait_for(lambda: node.summary()["studies_scanned"] == 2, 60, "the failed scan and its retry")
        finally:
            node.stop()
    assert "not scanned: internal error (OSError)" in caplog.text and "try 1 of 3" in caplog.text
    assert len(calls) == 2 and len(list((tmp_path / "scans").iterdir())) == 1
    (state,) = node.spool.studies()
    assert not state.pending and state.last_error is None and state.failures == 0


# ------------------------------------------------------------------ the live page


def test_a_live_page_flooded_with_idle_connections_still_ends_its_exam_with_a_report(tmp_path, no_device_key):
    from support.screens import write_video

    video = write_video(tmp_path / "clip.avi", n=400)

    def few_fds() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (160, 160))

    proc = subprocess.Popen([sys.executable, "-m", "gout_edge.cli", "scan", "--video", str(video), "--live-view", "web",
                             "--live-port", "0", "--out", str(tmp_path / "scans"), "--backend", "onnxruntime",
                             "--live-hold", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=few_fds, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    flood = []
    try:
        line = ""
        while "live view: http" not in line:
            line = proc.stderr.readline()
            assert line, "scan ended before it served the page"
        port = int(re.search(r"127\.0\.0\.1:(\d+)/", line).group(1))
        base = f"http://127.0.0.1:{port}"
        control = lambda action: urllib.request.urlopen(urllib.request.Request(  # noqa: E731
            f"{base}/control?action={action}", method="POST", headers={"X-Gout-Edge": "1"}), timeout=10).status
        assert control("pause") == 200
        for _ in range(300):  # more than the scan's file descriptors
            flood.append(socket.create_connection(("127.0.0.1", port)))
        reset = socket.create_connection(("127.0.0.1", port))  # a client that resets during /frame.jpg
        reset.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        reset.sendall(b"GET /frame.jpg HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        reset.close()
        assert control("end") == 200
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-2000:]
        assert "Traceback" not in err
        (session,) = (tmp_path / "scans").iterdir()
        assert (session / "report.json").is_file() and (session / "summary.png").is_file()
        assert "ended from the live view" in json.loads((session / "report.json").read_text())["ended_by"]
    finally:
        for s in flood:
            s.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_the_live_pages_table_of_viewers_forgets(tmp_path):
    import io

    from gout_edge.edge_runtime.live.web import MAX_VIEWERS, WebView

    view = WebView(port=0, hold_s=0.0, stream=io.StringIO())
    try:
        for i in range(500):
            view.status(f"{i:x}")
            view.control("ack", f"{i:x}")
        view.status("not-hex-<script>")
        assert len(view._viewers) <= MAX_VIEWERS and len(view._acked) <= MAX_VIEWERS
        assert "not-hex-<script>" not in view._viewers
    finally:
        view.close()


def test_listen_binds_to_this_machine_unless_told_and_never_to_every_network_without_an_allow_list(capsys):
    from gout_edge.edge_runtime.network.listener import ListenConfig as Config

    assert Config().host == "127.0.0.1"
    code = main(["listen", "--bind", "0.0.0.0", "--port", "0", "--spool", "spool"])
    err = capsys.readouterr().err
    assert code == 2 and "--allow" in err
