"""What a user meets first (issue 23): the phantom folder scanned as it is laid out, the printable
report's words, bench and verify that explain themselves, and output that survives a pipe."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gout_edge.cli import main

ROOT = Path(__file__).resolve().parents[1]
GOUT_EDGE = [sys.executable, "-m", "gout_edge.cli"]


def _pdftotext(path: Path) -> str:
    tool = shutil.which("pdftotext")
    if tool is None:
        pytest.skip("pdftotext is not installed: apt-get install poppler-utils")
    text = subprocess.run([tool, str(path), "-"], check=True, capture_output=True, text=True).stdout
    return " ".join(text.split())


@pytest.mark.slow
def test_the_phantom_folder_scans_as_one_session_per_patient(tmp_path, capsys, caplog):
    """``gout-edge phantom --out ph`` then ``scan --images ph``: the contact sheet at the top is no
    third patient."""
    assert main(["phantom", "--out", str(tmp_path / "ph"), "--patients", "2", "--seed", "0"]) == 0
    assert (tmp_path / "ph" / "contact_sheet.png").is_file()
    capsys.readouterr()
    with caplog.at_level(logging.INFO):
        assert main(["scan", "--images", str(tmp_path / "ph"), "--out", str(tmp_path / "scans"), "--json",
                     "--no-display"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [p["patient_id"] for p in doc["patients"]] == ["P0001", "P0002"]
    assert len(list((tmp_path / "scans").iterdir())) == 2
    assert "top level left out (contact_sheet.png)" in caplog.text


@pytest.mark.slow
def test_a_demo_exams_printable_report_says_verdict_reason_and_patient(tmp_path, capsys):
    assert main(["scan", "--demo", "--patient", "PHANTOM-PDF-7", "--max-frames", "60", "--out", str(tmp_path),
                 "--json", "--no-display"]) == 0
    patient = json.loads(capsys.readouterr().out)["patients"][0]
    text = _pdftotext(Path(patient["pdf"]))
    assert patient["diagnosis"].upper() in text and "PHANTOM-PDF-7" in text
    if patient["diagnosis"] in ("gout", "no gout"):
        reason = (f"{patient['abnormal_key_frames']} of {patient['key_frames']} key frames abnormal: fraction "
                  f"{patient['abnormal_fraction']:.2f} is {'above' if patient['diagnosis'] == 'gout' else 'not above'} "
                  f"the threshold {patient['threshold']:.2f}")
    else:
        reason = "No verdict:"
    assert reason in text, text[:400]
    assert "RESEARCH SOFTWARE: NOT FOR CLINICAL USE" in text and "Reviewed by a clinician" in text


@pytest.mark.slow
def test_piped_scan_output_has_whole_values_and_the_progress_ends_before_the_verdict(tmp_path):
    """Not a terminal: no table cell folded at 80 columns, no colour codes, and no progress line
    after the session's verdict in the log."""
    run = subprocess.run([*GOUT_EDGE, "scan", "--demo", "--no-display", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "60"})
    assert run.returncode == 0, run.stderr[-2000:]
    out = run.stdout
    assert "\x1b[" not in out
    rows = [line for line in out.splitlines() if line.startswith("│")]
    assert rows and all(not re.match(r"│\s+│", line) for line in rows), out  # no continuation line of a cell
    why = next(line for line in rows if line.startswith("│ why"))
    assert re.search(r"key frames abnormal: fraction \d\.\d\d is (not )?above the threshold \d\.\d\d", why)
    session = next(p for p in tmp_path.iterdir())
    for name in ("summary.png", "report.pdf", "report.json", "journal.jsonl"):
        assert str(session / name) in out.splitlines()[[i for i, line in enumerate(out.splitlines())
                                                         if line.endswith(name)][0]]
    err = run.stderr.splitlines()
    verdict = max(i for i, line in enumerate(err) if f"session {session.name}: " in line and "report" in line)
    progress = [i for i, line in enumerate(err) if line.startswith(f"scan {session.name} · frames")]
    assert progress and max(progress) < verdict, run.stderr


def test_no_none_reaches_a_human(tmp_path, capsys):
    assert main(["phantom", "--out", str(tmp_path / "v"), "--patients", "1", "--format", "video",
                 "--no-contact-sheet"]) == 0
    out = capsys.readouterr().out
    assert "None" not in out and "ground truth:" in out and "index:" not in out


def test_scan_help_says_what_live_view_auto_does_as_the_readme(capsys):
    assert main(["scan", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.replace("│", " ").split())
    assert "auto: the page in the cart's browser where there is a display, else a progress line" in help_text
    assert "--paper" in help_text and "GOUT_EDGE_PAPER" in help_text
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert "opened there when the cart has a display; `--live-view window` for an OpenCV window" in readme


@pytest.mark.slow
def test_bench_says_how_long_it_has_left_and_warns_when_the_machine_is_busy(monkeypatch, capsys):
    import gout_edge.edge_runtime.field.bench as bench
    from gout_edge.commands._output import ProgressBar

    monkeypatch.setattr(ProgressBar, "PLAIN_EVERY_S", 0.0)  # every step a line (a pipe gets one per 5 s)
    monkeypatch.setattr(bench.os, "getloadavg", lambda: (7.5, 6.0, 5.0))
    monkeypatch.setattr(bench.os, "cpu_count", lambda: 2)
    assert main(["bench", "--frames", "3", "--warmup", "1", "--no-cold-start", "--no-torch", "--backends", "openvino",
                 "--precision", "int8", "--json"]) in (0, 1)  # 1: a budget missed on this machine
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["load"] == {"load_average_1m": 7.5, "cores": 2, "busy": True}
    assert any("load average 7.50" in n for n in doc["notes"])
    assert "warning: this machine is busy: load average 7.50 over the last minute on 2 cores" in captured.err
    lines = [line for line in captured.err.splitlines() if line.startswith("bench: ")]
    assert lines[0].endswith("warming up · estimating the time left")
    assert any(re.search(r"engines, interleaved · about \d+ (s|min) left$", line) for line in lines), lines
    assert lines[-1].endswith("· done")  # the last word before the result: no progress after it


def test_bench_with_no_options_is_a_quick_check(capsys):
    assert main(["bench", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.replace("│", " ").split())
    assert re.search(r"--frames N .*\[default: 40[;\]]", text) and re.search(r"--memory-frames N .*\[default: 100[;\]]", text)
    assert "--frames 200 --warmup 20 for figures you report" in text


@pytest.mark.slow
def test_verify_reports_an_unchecked_signature_as_not_checked(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("GOUT_EDGE_PUBLIC_KEY", raising=False)
    args = ["verify", "--backends", "onnxruntime", "--precision", "fp32", "--latency-frames", "0"]
    assert main([*args, "--out", str(tmp_path / "a.json")]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("│ signature"))
    assert "not checked: no public key configured" in row and "PASS" not in row
    assert re.search(r"PASSED: \d+ of \d+ checks passed; not checked: signature", out)
    record = json.loads((tmp_path / "a.json").read_text())
    check = next(c for c in record["checks"] if c["name"] == "signature")
    assert check["skipped"] is True and record["summary"]["skipped"] >= 1 and record["status"] == "passed"
    assert main([*args, "--require-signature", "--out", str(tmp_path / "b.json")]) == 1
    err = capsys.readouterr().err
    assert "verification checks failed (signature)" in err and "--public-key" in err
    record = json.loads((tmp_path / "b.json").read_text())
    check = next(c for c in record["checks"] if c["name"] == "signature")
    assert check["passed"] is False and check["skipped"] is False and record["status"] == "failed"
