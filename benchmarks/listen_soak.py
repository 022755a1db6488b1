"""Soak of the hospital link (issue 24, docs/design.md §12): many studies of mixed size through
``gout-edge listen`` → scan → forward, with the PACS flapping, and what must hold at the end.

    python benchmarks/listen_soak.py --studies 1000 --out soak/      # ≈ 30 min on 2 cores

- ``gout-edge listen`` runs as a child process (the demo bundle, quiet period 1 s, two scans at a
  time), forwarding to a PACS played in-process by pynetdicom (``tests/support/pacs.py``) that
  flaps: up, then aborting every association, then down (nothing listening), in turn.
- Senders (pynetdicom SCUs, four at once) push the studies, made of phantom scanner screens
  (``gout-edge phantom``, 8 patients): 70 % of 1–3 stills at half size (512 × 384), 20 % of 4–8
  stills at full size (1024 × 768), 10 % a cine of 10–30 frames (320 × 240 synthetic screens);
  one study in ten is sent twice at the same time on two associations (issue 24's item 1).
- Sampled every 2 s: the node's resident memory and open file descriptors (``/proc``).

Checked at the end (exit 1 when one fails): every acknowledged instance is in the spool once;
every study was scanned exactly once (``.state.json``: one scan, its generation scanned); every
result object of every session was delivered exactly once (one ``sent/`` record each, nothing
pending or failed, and the PACS holds each SOP Instance UID); the node's RSS and open fds are flat
(the last tenth against the second). The figures go to stdout as a table and to ``--json``.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import pydicom  # noqa: E402
from pydicom.uid import generate_uid  # noqa: E402
from support.pacs import PlayedPacs  # noqa: E402
from support.studies import write_study  # noqa: E402


def _cine(folder: Path, frames: int, seed: int) -> list[Path]:
    from support.screens import screen

    from gout_edge.edge_runtime.imaging.dicom_write import region_item, set_pixels, ultrasound_dataset, write_dataset

    folder.mkdir(parents=True, exist_ok=True)
    ds = ultrasound_dataset(str(generate_uid()), str(generate_uid()), str(generate_uid()), multiframe=True)
    ds.PatientID, ds.PatientName, ds.SeriesNumber, ds.InstanceNumber, ds.FrameTime = f"SOAK-{seed}", "SOAK^CINE", 1, 1, 40.0
    ds.SequenceOfUltrasoundRegions = [region_item((40, 30, 280, 210), 0.005)]
    set_pixels(ds, [screen(240, 320, rect=(40, 30, 280, 210), seed=seed * 100 + i) for i in range(frames)], "MONOCHROME2")
    return [write_dataset(ds, folder / "CINE.dcm")]


def screens(work: Path, seed: int) -> list:
    """Phantom scanner screens (BGR, 1024 × 768) of 8 patients, gout and control."""
    import cv2

    from gout_edge.phantom import write_phantoms

    write_phantoms(work / "phantoms", 8, seed=seed, formats=("png",))
    return [cv2.imread(str(p)) for p in sorted((work / "phantoms").rglob("*.png"))]


def make_study(folder: Path, i: int, rng: random.Random, pool: list) -> list[Path]:
    import cv2

    kind = rng.random()
    start = rng.randrange(len(pool))
    if kind < 0.7:
        n = rng.randint(1, 3)
        half = [cv2.resize(pool[(start + k) % len(pool)], (512, 384), interpolation=cv2.INTER_AREA) for k in range(n)]
        return write_study(folder, n, seed=i, patient_id=f"SOAK-{i}", images=half)
    if kind < 0.9:
        n = rng.randint(4, 8)
        return write_study(folder, n, seed=i, patient_id=f"SOAK-{i}", images=[pool[(start + k) % len(pool)] for k in range(n)])
    return _cine(folder, rng.randint(10, 30), i)


def send(files: list[Path], port: int) -> list[tuple[str, int | None]]:
    """C-STORE ``files`` over one association: (SOP Instance UID, status or None) each."""
    from pynetdicom import AE
    from pynetdicom.sop_class import UltrasoundImageStorage, UltrasoundMultiFrameImageStorage

    ae = AE(ae_title="SCANNER")
    ae.add_requested_context(UltrasoundImageStorage)
    ae.add_requested_context(UltrasoundMultiFrameImageStorage)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 60
    out = []
    for _ in range(20):  # the node is bounded: a sender that finds it full tries again
        assoc = ae.associate("127.0.0.1", port, ae_title="GOUT_EDGE")
        if assoc.is_established:
            break
        time.sleep(0.5)
    else:
        return [(str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID), None) for f in files]
    for f in files:
        ds = pydicom.dcmread(f)
        status = assoc.send_c_store(ds)
        out.append((str(ds.SOPInstanceUID), int(status.Status) if "Status" in status else None))
    assoc.release()
    return out


def sample(pid: int) -> tuple[float, int]:
    rss = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    return rss, len(list(Path(f"/proc/{pid}/fd").iterdir()))


def flap(pacs: PlayedPacs, stop: threading.Event, period_s: float, log: list) -> None:
    """up → aborting → down → up …, each for ``period_s`` seconds (up twice as long)."""
    while not stop.is_set():
        for phase, length in (("up", 2 * period_s), ("aborting", period_s), ("down", period_s)):
            if stop.is_set():
                break
            if phase == "up":
                pacs.aborting = False
                if pacs._server is None:
                    pacs.start()
            elif phase == "aborting":
                pacs.aborting = True
            else:
                pacs.stop()
                pacs.aborting = False
            log.append((time.time(), phase))
            stop.wait(length)
    pacs.aborting = False
    if pacs._server is None:
        pacs.start()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--studies", type=int, default=1000)
    ap.add_argument("--senders", type=int, default=4)
    ap.add_argument("--flap-s", type=float, default=20.0, help="length of the PACS's aborting and down phases")
    ap.add_argument("--out", type=Path, default=Path("soak"))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    work = args.out.resolve()
    if work.exists():
        raise SystemExit(f"{work} exists; give a new --out")
    work.mkdir(parents=True)
    rng = random.Random(args.seed)
    pool = screens(work, args.seed)
    pacs = PlayedPacs(aet="SOAKPACS").start()
    log_path = work / "listen.log"
    node = subprocess.Popen(
        [sys.executable, "-m", "gout_edge.cli", "listen", "--port", "0", "--spool", str(work / "spool"), "--out",
         str(work / "scans"), "--quiet-period", "1", "--allow", "SCANNER", "--forward", pacs.peer,
         "--retry-interval", "0.5", "--retry-max", "5", "--forward-timeout", "5", "--scan-workers", "2"],
        stdout=open(work / "listen.json", "w"), stderr=open(log_path, "w"), cwd=work)
    port = None
    while port is None:
        if node.poll() is not None:
            raise SystemExit(f"listen exited: {log_path.read_text()[-2000:]}")
        m = re.search(r"listening as \S+ on [\d.]+:(\d+)", log_path.read_text())
        port = int(m.group(1)) if m else None
        time.sleep(0.2)
    stop = threading.Event()
    phases: list = []
    flapper = threading.Thread(target=flap, args=(pacs, stop, args.flap_s, phases), daemon=True)
    flapper.start()
    samples: list[tuple[float, float, int]] = []

    def sampler() -> None:
        while not stop.is_set() and node.poll() is None:
            samples.append((time.time(), *sample(node.pid)))
            stop.wait(2.0)

    threading.Thread(target=sampler, daemon=True).start()
    acknowledged: dict[str, set[str]] = collections.defaultdict(set)  # study UID → SOP UIDs acknowledged
    not_ack = 0
    lock = threading.Lock()
    todo = list(range(args.studies))
    plan = {i: (rng.random() < 0.1, random.Random(args.seed * 100003 + i)) for i in todo}
    t0 = time.time()

    def sender() -> None:
        nonlocal not_ack
        while True:
            with lock:
                if not todo:
                    return
                i = todo.pop(0)
            twice, r = plan[i]
            files = make_study(work / "studies" / f"{i:05d}", i, r, pool)
            study_uid = str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
            results: list = []
            if twice:  # the same instances on two associations at once
                threads = [threading.Thread(target=lambda fs=files, out=results: out.extend(send(fs, port)))
                           for _ in range(2)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
            else:
                results = send(files, port)
            with lock:
                for uid, status in results:
                    if status == 0:
                        acknowledged[study_uid].add(uid)
                    else:
                        not_ack += 1
            for f in files:
                f.unlink()

    senders = [threading.Thread(target=sender) for _ in range(args.senders)]
    for t in senders:
        t.start()
    for t in senders:
        t.join()
    sent_done = time.time()
    print(f"{args.studies} studies sent in {sent_done - t0:.0f} s; waiting for scans and deliveries", flush=True)
    # let the PACS flap for a while longer, then keep it up until everything is delivered
    spool = work / "spool"

    def settled() -> bool:
        states = [json.loads(p.read_text()) for p in (spool / "studies").glob("*/.state.json")]
        done = len(states) == len(acknowledged) and all(s["status"] == "idle" and s["scanned_generation"] == s["generation"]
                                                        for s in states)
        return done and not list((spool / "forward" / "pending").glob("*.json"))

    deadline = time.time() + 3 * 3600
    while not settled() and time.time() < deadline:
        time.sleep(2)
        if time.time() - sent_done > 6 * args.flap_s and not stop.is_set():
            stop.set()  # the flapping ends; the PACS stays up
    stop.set()
    flapper.join(30)
    all_done = time.time()
    time.sleep(4)
    samples.append((time.time(), *sample(node.pid)))
    node.terminate()
    node.wait(120)

    # ---- the checks
    failures = []
    studies = {}
    for folder in (spool / "studies").iterdir():
        if folder.is_dir():
            studies[folder.name] = (json.loads((folder / ".state.json").read_text()),
                                    {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
                                     for p in folder.glob("*.dcm")})
    from gout_edge.edge_runtime.imaging.dicom_identity import study_key

    for study_uid, uids in acknowledged.items():
        state, on_disk = studies.get(study_key(study_uid), ({}, set()))
        if not uids <= on_disk:
            failures.append(f"study {study_key(study_uid)}: {len(uids - on_disk)} acknowledged instance(s) not in the spool")
        if state.get("scans") != 1:
            failures.append(f"study {study_key(study_uid)}: scanned {state.get('scans')} times")
    results = [p for s, _ in studies.values() for r in s.get("results", []) for p in Path(r).parent.glob("*.dcm")]
    result_uids = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in results}
    sent = [json.loads(p.read_text()) for p in (spool / "forward" / "sent").glob("*.json")]
    sent_uids = collections.Counter(j["sop_instance_uid"] for j in sent)
    pending = len(list((spool / "forward" / "pending").glob("*.json")))
    failed = len(list((spool / "forward" / "failed").glob("*.json")))
    if pending or failed:
        failures.append(f"forward queue: {pending} pending, {failed} failed")
    if set(sent_uids) != result_uids or any(n != 1 for n in sent_uids.values()):
        failures.append(f"sent records: {len(sent_uids)} objects, {sum(n > 1 for n in sent_uids.values())} twice; "
                        f"{len(result_uids - set(sent_uids))} result object(s) never sent")
    missing_in_pacs = result_uids - set(pacs.stored)
    twice_in_pacs = sum(n > 1 for n in pacs.stored.values())
    if missing_in_pacs:
        failures.append(f"{len(missing_in_pacs)} result object(s) not in the PACS")
    warm = [s for s in samples if s[0] > t0 + 60] or samples
    tenth = max(1, len(warm) // 10)
    early, late = warm[tenth: 2 * tenth] or warm[:1], warm[-tenth:]
    rss_early, rss_late = statistics.median(s[1] for s in early), statistics.median(s[1] for s in late)
    fds_early, fds_late = statistics.median(s[2] for s in early), statistics.median(s[2] for s in late)
    doc = {
        "studies": args.studies, "instances_acknowledged": sum(len(u) for u in acknowledged.values()),
        "instances_not_acknowledged": not_ack, "sent_twice_at_once": sum(t for t, _ in plan.values()),
        "send_s": round(sent_done - t0, 1), "all_delivered_s": round(all_done - t0, 1),
        "studies_per_min": round(args.studies / ((all_done - t0) / 60), 1),
        "scans": sum(s.get("scans", 0) for s, _ in studies.values()), "result_objects": len(result_uids),
        "sent_records": len(sent), "pacs_associations": pacs.associations, "pacs_aborted": pacs.aborted,
        "pacs_stored_twice": twice_in_pacs, "pacs_phases": len(phases),
        "rss_mb": {"early": round(rss_early, 1), "late": round(rss_late, 1), "max": round(max(s[1] for s in samples), 1)},
        "open_fds": {"early": fds_early, "late": fds_late, "max": max(s[2] for s in samples)},
        "spool_mb": round(sum(p.stat().st_size for p in spool.rglob("*") if p.is_file()) / 2**20, 1),
        "scans_mb": round(sum(p.stat().st_size for p in (work / "scans").rglob("*") if p.is_file()) / 2**20, 1),
        "failures": failures,
    }
    if rss_late > rss_early * 1.25 + 50:
        failures.append(f"RSS grew: {rss_early:.0f} → {rss_late:.0f} MB")
    if fds_late > fds_early + 20:
        failures.append(f"open fds grew: {fds_early} → {fds_late}")
    for k, v in doc.items():
        print(f"{k:28s} {v}")
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2))
    pacs.stop()
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
