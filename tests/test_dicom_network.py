"""DICOM in the hospital (docs/design.md §12): ``gout-edge listen`` receives a study from DCMTK's
``storescu``, answers ``echoscu``, rejects a calling AE title not on its list, scans the study after
a quiet period and forwards the SR and SC objects to an Orthanc PACS, checked through Orthanc's
REST API; the forward queue survives a PACS that is down and a listener killed with SIGKILL; every
instance acknowledged to ``storescu`` is on disk after a ``kill -9``; TLS; ``gout-edge send``.
The first tests need no tools: the queue, the spool and the address parsing, with fakes."""

from __future__ import annotations

import io
import json
import re
import subprocess
import time
from pathlib import Path

import pydicom
import pytest
from dicom_tools import Node, Orthanc, require, storescu, wait_for

from gout_edge.cli import main
from gout_edge.edge_runtime.network import (
    ForwardQueue,
    Peer,
    PeerUnavailableError,
    SendOutcome,
    Spool,
    check_ae_title,
    parse_peer,
)
from gout_edge.errors import UsageError

SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.33"
QUIET = "1"  # seconds without a new instance before a study counts as complete


def _study(data: Path, patient: str, stills: int | None = None) -> list[Path]:
    """A phantom patient's study: every file (a cine and twelve stills), or its first ``stills`` stills."""
    files = sorted((data / "dicom" / patient).glob("*.dcm"))
    return files if stills is None else [f for f in files if f.name.startswith("IM")][:stills]


def _uids(files: list[Path]) -> dict[str, str]:
    """SOP Instance UID → Study Instance UID of each file."""
    out = {}
    for f in files:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        out[str(ds.SOPInstanceUID)] = str(ds.StudyInstanceUID)
    return out


# ------------------------------------------------------------------ no tools needed


def test_peers_and_ae_titles_are_checked():
    assert parse_peer("pacs.example.org:104:PACS") == Peer("pacs.example.org", 104, "PACS")
    assert parse_peer("[::1]:11112:ARCHIVE").host == "::1"
    assert str(parse_peer("127.0.0.1:4242:ORTHANC")) == "ORTHANC@127.0.0.1:4242"
    for bad in ("pacs:104", "pacs:0:PACS", "pacs:x:PACS", "pacs:104:" + "A" * 17, "pacs:104:BAD\\AET"):
        with pytest.raises(UsageError, match="--forward"):
            parse_peer(bad)
    assert check_ae_title(" SCANNER ") == "SCANNER"
    with pytest.raises(UsageError, match="--allow"):
        check_ae_title("", "--allow")


class FakePacs:
    """``send_files`` stand-in: down (unreachable), refusing, or storing; counts what it stored."""

    def __init__(self) -> None:
        self.up = False
        self.refuse: set[str] = set()
        self.stored: list[str] = []

    def __call__(self, paths, peer, **kw):
        if not self.up:
            raise PeerUnavailableError(f"{peer} did not answer (connection refused or timed out)")
        out = []
        for p in paths:
            ok = p.name not in self.refuse
            if ok:
                self.stored.append(p.name)
            out.append(SendOutcome(p, p.name, ok, 0x0000 if ok else 0xA700, None if ok else "refused by the peer"))
        return out


def _tiny_dicom(path: Path) -> None:
    """A small DICOM file the queue accepts as an object to send (the fake PACS never reads it)."""
    from gout_edge.edge_runtime.imaging.dicom_write import ultrasound_dataset, write_dataset

    new = pydicom.uid.generate_uid
    write_dataset(ultrasound_dataset(new(), new(), new()), path)


def _queue(tmp_path: Path, pacs: FakePacs, **kw) -> ForwardQueue:
    return ForwardQueue(tmp_path / "queue", Peer("127.0.0.1", 1, "PACS"), retry_s=0.01, send=pacs, **kw)


def test_the_queue_keeps_everything_while_the_pacs_is_down_and_delivers_each_object_once(tmp_path):
    files = [tmp_path / f"obj{i}.dcm" for i in range(3)]
    for f in files:
        _tiny_dicom(f)
    pacs = FakePacs()
    queue = _queue(tmp_path, pacs)
    queue.enqueue(files)
    for _ in range(3):
        report = queue.deliver_due()
        assert report.unreachable and queue.counts()["pending"] == 3
        time.sleep(0.05)
    job = json.loads(next(queue.pending_dir.glob("*.json")).read_text())
    assert job["attempts"] == 3 and "did not answer" in job["last_error"]
    # a restart: a new queue object over the same folder resumes every pending job at once
    pacs.up = True
    again = _queue(tmp_path, pacs)
    assert again.resume() == 3
    assert again.deliver_due().delivered == 3 and again.counts() == {"pending": 0, "sent": 3, "failed": 0}
    assert sorted(pacs.stored) == sorted(f.name for f in files)
    assert again.deliver_due().attempted == 0 and len(pacs.stored) == 3  # delivered once


def test_a_crash_between_the_sent_record_and_the_pending_job_sends_nothing_twice(tmp_path):
    _tiny_dicom(tmp_path / "a.dcm")
    pacs = FakePacs()
    pacs.up = True
    queue = _queue(tmp_path, pacs)
    (job,) = queue.enqueue([tmp_path / "a.dcm"])
    (queue.sent_dir / job.name).write_text(job.read_text())  # as if the process died right after the record
    assert queue.deliver_due().attempted == 0 and pacs.stored == [] and queue.counts()["pending"] == 0


def test_an_object_the_pacs_keeps_refusing_ends_in_failed_and_a_missing_file_too(tmp_path):
    for name in ("good.dcm", "bad.dcm", "gone.dcm"):
        _tiny_dicom(tmp_path / name)
    pacs = FakePacs()
    pacs.up, pacs.refuse = True, {"bad.dcm"}
    queue = _queue(tmp_path, pacs, max_refusals=2)
    queue.enqueue([tmp_path / "good.dcm", tmp_path / "bad.dcm", tmp_path / "gone.dcm"])
    (tmp_path / "gone.dcm").unlink()
    queue.deliver_due()
    time.sleep(0.05)
    queue.deliver_due()
    assert pacs.stored == ["good.dcm"] and queue.counts() == {"pending": 0, "sent": 1, "failed": 2}
    failed = {Path(json.loads(p.read_text())["file"]).name: json.loads(p.read_text()) for p in queue.failed_dir.glob("*.json")}
    assert failed["bad.dcm"]["status"] == "0xA700" and failed["gone.dcm"]["last_error"] == "the file is gone"


def test_the_spool_indexes_studies_and_remembers_what_was_scanned(tmp_path):
    spool = Spool(tmp_path / "spool")
    stored = spool.store(b"one", "1.2.3", "1.2.3.4")
    assert stored.new_study and stored.change == "new" and stored.path.read_bytes() == b"one"
    assert stored.path.name == "1.2.3.4.dcm" and "1.2.3" not in stored.key
    again = spool.store(b"one", "1.2.3", "1.2.3.4")  # the same instance twice: one file, counted once
    assert not again.new_study and again.change == "same"
    spool.store(b"two", "1.2.3", "1.2.3.5")
    assert spool.due(quiet_s=60) == [] and [s.instances for s in spool.due(quiet_s=0)] == [2]
    (claim,) = spool.claim_due(0, 2, lambda: "session-1")
    assert spool.claim_due(0, 2, lambda: "session-2") == []  # claimed: not twice at once
    spool.finish(claim, sessions=["session-1"], results=[], forward=[], enqueue=None)
    assert spool.due(quiet_s=0) == []
    spool.store(b"late", "1.2.3", "1.2.3.6")  # a late instance makes the study due again
    assert [s.instances for s in spool.due(quiet_s=0)] == [3]
    reopened = Spool(tmp_path / "spool")  # a restart rebuilds the index from the disk
    (state,) = reopened.pending()
    assert (state.instances, state.generation, state.scanned_generation, state.scans) == (3, 3, 2, 1)
    assert reopened.due(quiet_s=60) == []  # and waits a whole quiet period before scanning


# ------------------------------------------------------------------ with DCMTK and Orthanc


@pytest.fixture
def tools() -> dict[str, str]:
    return require("storescu", "echoscu")


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_listen_receives_a_study_and_its_results_reach_orthanc(tools, phantom_dir, tmp_path, capsys):
    pacs = Orthanc(tmp_path / "orthanc").start()
    node = Node(tmp_path / "node", "--allow", "SCANNER", "--quiet-period", QUIET, "--forward", pacs.peer,
                "--retry-interval", "0.5")
    try:
        node.start()
        echo = subprocess.run([tools["echoscu"], "-aet", "SCANNER", "-aec", "GOUT_EDGE", "127.0.0.1", str(node.port)],
                              capture_output=True, text=True, timeout=30)
        assert echo.returncode == 0, echo.stderr
        intruder = subprocess.run([tools["echoscu"], "-aet", "INTRUDER", "-aec", "GOUT_EDGE", "127.0.0.1", str(node.port)],
                                  capture_output=True, text=True, timeout=30)
        assert intruder.returncode != 0 and "Calling AE Title Not Recognized" in intruder.stdout + intruder.stderr
        files = _study(phantom_dir, "P0001")
        sent = _uids(files)
        out = storescu(tools["storescu"], node.port, files)
        assert out.returncode == 0, out.stdout + out.stderr
        assert len(list((node.spool / "studies").glob("*/*.dcm"))) == len(files)
        node.wait_log(r"forward: \d+ object\(s\) delivered", 90)
        instances = pacs.instances()
        (study,) = pacs.get("/studies?expand")
        assert study["MainDicomTags"]["StudyInstanceUID"] == next(iter(sent.values()))  # the source's study
        assert study["PatientMainDicomTags"]["PatientID"] == "P0001"
        series = {s["MainDicomTags"]["Modality"]: s for s in pacs.get("/series?expand")}
        assert set(series) == {"SR", "OT"} and len(series["SR"]["Instances"]) == 1 and len(instances) >= 3
        sr = pydicom.dcmread(io.BytesIO(pacs.file(series["SR"]["Instances"][0])))
        assert sr.SOPClassUID == SR_CLASS and sr.PatientID == "P0001"
        refs = {str(r.ReferencedSOPInstanceUID) for item in sr.CurrentRequestedProcedureEvidenceSequence
                for series in item.ReferencedSeriesSequence for r in series.ReferencedSOPSequence}
        in_pacs = {i["MainDicomTags"]["SOPInstanceUID"] for i in instances}
        assert refs & set(sent) and refs - set(sent) <= in_pacs  # key images by their source UIDs; captures in the PACS
        log = node.log()
        assert "rejected: calling AE title not on the --allow list" in log and "C-ECHO from SCANNER" in log
        assert "P0001" not in log and "PHANTOM" not in log  # no patient identifier in the log
        # gout-edge send pushes a session's results (again: the PACS keeps one copy of each)
        session = next((node.work / "scans").iterdir())
        code, out, err = _cli(capsys, "send", str(session), "--to", pacs.peer, "--json")
        assert code == 0, err
        doc = json.loads(out)
        assert doc["stored"] == doc["objects"] == len(instances) and len(pacs.instances()) == len(instances)
    finally:
        node.stop()
        pacs.stop()
    # the PACS gone: send says so with exit code 5 and keeps the results
    code, out, err = _cli(capsys, "send", str(session), "--to", pacs.peer, "--timeout", "5")
    assert code == 5 and "nothing was sent" in err and "Traceback" not in err


@pytest.mark.slow
def test_a_pacs_that_is_down_loses_nothing_and_a_killed_listener_resumes(tools, phantom_dir, tmp_path):
    pacs = Orthanc(tmp_path / "orthanc")  # not started: the PACS is down
    node = Node(tmp_path / "node", "--quiet-period", QUIET, "--forward", pacs.peer, "--retry-interval", "0.3",
                "--allow", "SCANNER")
    try:
        node.start()
        # 1. the PACS is down while the listener delivers, then comes up: the retries deliver, once
        assert storescu(tools["storescu"], node.port, _study(phantom_dir, "P0001", stills=4)).returncode == 0
        node.wait_log(r"object\(s\) kept, next try", 60)
        mark = node.mark()
        pacs.start()
        node.wait_log(r"forward: \d+ object\(s\) delivered", 60, since=mark)
        first = {i["MainDicomTags"]["SOPInstanceUID"] for i in pacs.instances()}
        # 2. down again; this time the listener is killed with SIGKILL while it waits to retry
        pacs.stop()
        mark = node.mark()
        assert storescu(tools["storescu"], node.port, _study(phantom_dir, "P0002", stills=4)).returncode == 0
        node.wait_log(r"study \w+: session .*queued for", 60, since=mark)
        node.wait_log(r"object\(s\) kept, next try", 60, since=mark)
        node.kill9()
        pending = len(list((node.spool / "forward" / "pending").glob("*.json")))
        assert pending > 0
        pacs.start()
        mark = node.mark()
        node.start()
        node.wait_log(rf"forward: {pending} object\(s\) pending from before", 30, since=mark)
        node.wait_log(r"forward: \d+ object\(s\) delivered", 60, since=mark)
        queue = node.spool / "forward"
        sent = [json.loads(p.read_text()) for p in (queue / "sent").glob("*.json")]
        assert not list((queue / "pending").glob("*.json")) and not list((queue / "failed").glob("*.json"))
        uids = [s["sop_instance_uid"] for s in sent]
        assert len(uids) == len(set(uids))  # each object delivered once
        in_pacs = {i["MainDicomTags"]["SOPInstanceUID"] for i in pacs.instances()}
        assert in_pacs == set(uids) and first < in_pacs
        assert {s["PatientMainDicomTags"]["PatientID"] for s in pacs.get("/studies?expand")} == {"P0001", "P0002"}
        assert "scanning again" not in node.log()  # the restart did not scan the studies twice
    finally:
        node.stop()
        pacs.stop()


@pytest.mark.slow
def test_kill_9_mid_study_keeps_every_acknowledged_instance(tools, phantom_dir, tmp_path):
    # a long study: copies of one phantom frame under new SOP Instance UIDs
    src = pydicom.dcmread(next(f for f in _study(phantom_dir, "P0001") if pydicom.dcmread(f, stop_before_pixels=True)
                               .file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
                               and "NumberOfFrames" not in pydicom.dcmread(f, stop_before_pixels=True)))
    study = tmp_path / "study"
    study.mkdir()
    files = []
    for i in range(100):
        src.SOPInstanceUID = src.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        src.InstanceNumber = i + 1
        files.append(study / f"IM{i:03d}.dcm")
        src.save_as(files[-1], enforce_file_format=True)
    node = Node(tmp_path / "node", "--quiet-period", QUIET)
    try:
        node.start()
        proc = subprocess.Popen([tools["storescu"], "-v", "-aet", "SCANNER", "-aec", "GOUT_EDGE", "127.0.0.1", str(node.port),
                                 *map(str, files)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wait_for(lambda: len(list((node.spool / "studies").glob("*/*.dcm"))) >= 3, 60, "3 instances in the spool",
                 interval_s=0.005)
        node.kill9()
        output = proc.communicate(timeout=60)[0]
        acknowledged = len(re.findall(r"Received Store Response \(Success\)", output))
        assert 1 <= acknowledged < len(files), output[-2000:]  # killed mid-study
        on_disk = {}
        for p in (node.spool / "studies").glob("*/*.dcm"):
            on_disk[str(pydicom.dcmread(p).SOPInstanceUID)] = p  # every file reads whole: nothing torn
        for f in files[:acknowledged]:  # storescu sends in order: the first ones were acknowledged
            assert str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) in on_disk, f.name
        mark = node.mark()
        node.args.append("--json")
        node.start()  # the restart finds the study and scans it after the quiet period
        node.wait_log(r"1 study\(ies\) in the spool still to scan", 10, since=mark)
        node.wait_log(rf"complete \({QUIET} s without new instances\): {len(on_disk)} instance", 60, since=mark)
        node.wait_log(r"study \w+: session \S+: ", 120, since=mark)
        assert node.stop() == 0
        log = node.log()
        summary = json.loads(log[log.rindex("\n{\n") + 1:])  # listen --json: one document when stopped
        (scan,) = summary["scans"]
        assert summary["studies_scanned"] == 1 and scan["instances"] == len(on_disk) and summary["pending_studies"] == 0
        assert all(Path(p).is_file() for s in scan["sessions"] for p in s["dicom"]) and summary["forward"] is None
    finally:
        node.stop()


def test_listen_over_tls_takes_dcmtk_and_gout_edge_clients_and_refuses_plain_calls(tools, phantom_dir, tmp_path, capsys):
    cert, key = _self_signed(tmp_path)
    node = Node(tmp_path / "node", "--quiet-period", "300", "--tls-cert", str(cert), "--tls-key", str(key))
    files = _study(phantom_dir, "P0002", stills=4)
    try:
        node.start()
        assert "(TLS on)" in node.log()
        tls = ["+tla", "+cf", str(cert)]  # DCMTK: TLS without a client certificate, the node's certificate trusted
        base = ["-aet", "SCANNER", "-aec", "GOUT_EDGE", "127.0.0.1", str(node.port)]
        echo = subprocess.run([tools["echoscu"], *tls, *base], capture_output=True, text=True, timeout=60)
        assert echo.returncode == 0, echo.stdout + echo.stderr
        stored = subprocess.run([tools["storescu"], *tls, "-xy", *base, *map(str, files[:2])], capture_output=True,
                                text=True, timeout=60)
        assert stored.returncode == 0, stored.stdout + stored.stderr
        plain = subprocess.run([tools["echoscu"], *base], capture_output=True, text=True, timeout=60)
        assert plain.returncode != 0  # no TLS, no association
        to = f"localhost:{node.port}:GOUT_EDGE"
        code, out, err = _cli(capsys, "send", *map(str, files[2:]), "--to", to, "--tls-ca", str(cert), "--json")
        assert code == 0, err
        assert json.loads(out)["stored"] == 2 and len(list((node.spool / "studies").glob("*/*.dcm"))) == 4
        code, out, err = _cli(capsys, "send", *map(str, files), "--to", to, "--timeout", "5")  # no TLS: refused
        assert code == 5 and "Traceback" not in err
    finally:
        node.stop()


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "node.pem", tmp / "node.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path
