"""End to end through the hospital network: a phantom study of N ultrasound images sent by DCMTK's
``storescu`` to ``gout-edge listen``, scanned after the quiet period, its SR forwarded to an Orthanc
PACS (docs/design.md §12). Prints one JSON document with the figures the README quotes.

    python benchmarks/dicom_roundtrip.py [--images 100] [--quiet-period 2] [--bundle DIR]

Needs the Debian packages ``dcmtk`` and ``orthanc`` (``.ci/run`` installs them). Times:

- ``receive_s``: ``storescu`` start to exit (every instance fsynced in the spool and acknowledged);
  ``images_per_s`` and ``mb_per_s`` received follow from it;
- ``end_to_end_s``: ``storescu`` start to the SR answering in Orthanc's REST API (quiet period,
  scan, SR and SC writing and forwarding included); ``scan_s`` and ``forward_s`` split the rest
  from the listener's log; ``all_objects_s``: until the last secondary capture is in Orthanc too.

Not part of the test run: it writes a 100-image study (about 250 MB) and takes a minute or two.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from dicom_tools import free_port, tool, wait_for  # noqa: E402  (the tests' helpers: one copy)


def _tool(name: str) -> str:
    """The system binary, never a same-named console script of a Python environment."""
    found = tool(name)
    if found is None:
        sys.exit(f"{name} not found: apt-get install dcmtk orthanc")
    return found


def make_study(out: Path, images: int, seed: int) -> list[Path]:
    """``images`` phantom stills from as many phantom patients as needed, filed as one study."""
    import pydicom
    from pydicom.uid import generate_uid

    from gout_edge.phantom import write_phantoms

    patients = -(-images // 12)  # twelve stills per phantom patient
    raw = out / "phantoms"
    write_phantoms(raw, patients, seed=seed, formats=("dicom",))
    stills = sorted(raw.glob("dicom/*/IM*.dcm"))[:images]
    study_uid, series_uid = generate_uid(), generate_uid()
    study = out / "study"
    study.mkdir()
    files = []
    for i, path in enumerate(stills, 1):
        ds = pydicom.dcmread(path)
        ds.PatientID, ds.PatientName = "BENCH0001", "PHANTOM^BENCH"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.SeriesNumber, ds.InstanceNumber = 1, i
        ds.AccessionNumber = "BENCH1"
        files.append(study / f"IM{i:04d}.dcm")
        ds.save_as(files[-1], enforce_file_format=True)
    shutil.rmtree(raw)
    return files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--quiet-period", type=float, default=2.0)
    ap.add_argument("--bundle", default=None, help="bundle directory (default: the demo bundle)")
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    storescu, orthanc = _tool("storescu"), _tool("Orthanc")
    work = Path(tempfile.mkdtemp(prefix="gout-edge-dicom-bench-"))
    procs: list[subprocess.Popen] = []
    try:
        files = make_study(work, args.images, args.seed)
        size_mb = sum(f.stat().st_size for f in files) / 1e6
        dicom_port, http_port = free_port(), free_port()
        (work / "orthanc.json").write_text(json.dumps({
            "Name": "bench", "StorageDirectory": str(work / "pacs"), "IndexDirectory": str(work / "pacs"),
            "HttpPort": http_port, "DicomPort": dicom_port, "DicomAet": "ORTHANC", "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False, "Plugins": [], "DicomModalities": {}, "StorageCompression": False,
        }))
        procs.append(subprocess.Popen([orthanc, str(work / "orthanc.json")], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))

        def rest(path: str):  # noqa: ANN202
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}{path}", timeout=5) as r:
                return json.loads(r.read())

        def pacs_up() -> bool:
            try:
                return bool(rest("/system"))
            except OSError:
                return False

        wait_for(pacs_up, 30, "Orthanc")
        log_path = work / "listen.log"
        cmd = [sys.executable, "-m", "gout_edge.cli", "listen", "--bind", "127.0.0.1", "--port", "0",
               "--allow", "SCANNER", "--spool", str(work / "spool"), "--out", str(work / "scans"),
               "--quiet-period", str(args.quiet_period), "--forward", f"127.0.0.1:{dicom_port}:ORTHANC"]
        if args.bundle:
            cmd += ["--bundle", args.bundle]
        with open(log_path, "wb") as log:
            procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))

        def log_text() -> str:
            return log_path.read_text(errors="replace")

        port = int(wait_for(lambda: re.search(r"listening as \S+ on [\d.]+:(\d+)", log_text()), 120, "listen").group(1))
        marks: dict[str, float] = {}

        def sr_in_pacs() -> bool:
            return any(s["MainDicomTags"].get("Modality") == "SR" for s in rest("/series?expand"))

        t0 = time.monotonic()
        sent = subprocess.run([storescu, "-xy", "-aet", "SCANNER", "-aec", "GOUT_EDGE", "127.0.0.1", str(port),
                               *map(str, files)], capture_output=True, text=True)
        receive_s = time.monotonic() - t0
        if sent.returncode != 0:
            sys.exit(f"storescu failed: {sent.stderr[-2000:]}")
        while not sr_in_pacs():
            text = log_text()
            if "scan" not in marks and "; scanning" in text:
                marks["scan"] = time.monotonic() - t0
            if "queued" not in marks and "queued for" in text:
                marks["queued"] = time.monotonic() - t0
            if time.monotonic() - t0 > 900:
                sys.exit("timed out waiting for the SR in Orthanc")
            time.sleep(0.02)
        end_to_end_s = time.monotonic() - t0
        marks.setdefault("queued", end_to_end_s)
        report = next((work / "scans").glob("*/report.json"))
        result = json.loads(report.read_text())
        wait_for(lambda: rest("/statistics")["CountInstances"] >= len(result["dicom"]), 120, "every result object in Orthanc")
        all_objects_s = time.monotonic() - t0
        stats = rest("/statistics")
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
        print(json.dumps({
            "images": len(files), "study_mb": round(size_mb, 1),
            "receive_s": round(receive_s, 2), "images_per_s": round(len(files) / receive_s, 1),
            "mb_per_s": round(size_mb / receive_s, 1),
            "quiet_period_s": args.quiet_period,
            "scan_s": round(marks["queued"] - marks.get("scan", marks["queued"]), 2),
            "forward_s": round(end_to_end_s - marks["queued"], 2),
            "end_to_end_s": round(end_to_end_s, 2), "all_objects_s": round(all_objects_s, 2),
            "key_frames": result["key_frames"], "frames_scored": result["frames_scored"],
            "objects_in_pacs": stats["CountInstances"],
            "engine": f"{result['bundle'].get('backend')} {result['bundle'].get('precision')}",
            "bundle": result["bundle"].get("identity"),
            "machine": {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()},
        }, indent=2))
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
