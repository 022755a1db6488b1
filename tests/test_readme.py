"""The README's Python example runs as written — twice in a row, as an integrator would rerun it —
from a folder holding ``screen.png`` and ``stills/`` (phantom screens: no patient data)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    from gout_edge.phantom import write_phantoms

    data = tmp_path_factory.mktemp("phantoms")
    write_phantoms(data, 1, seed=3, formats=("png",))
    pngs = sorted((data / "images").rglob("*.png"))
    work = tmp_path_factory.mktemp("integrator")
    (work / "stills").mkdir()
    for png in pngs:
        shutil.copy(png, work / "stills" / png.name)
    shutil.copy(pngs[0], work / "screen.png")
    return work


def test_the_python_example_runs_twice_in_a_row(workdir):
    code = _example()
    assert "from gout_edge import" in code and "gout_edge.edge_runtime" not in code  # the public API only
    runs = [subprocess.run([sys.executable, "-c", code], cwd=workdir, capture_output=True, text=True, timeout=300)
            for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr[-2000:]
        assert re.search(r"p\(lesion\) = [01]\.\d\d, CAM \(\d+, \d+\)", run.stdout)
        # stills need no flag: each distinct one is a key frame, so the exam reaches a verdict
        assert re.search(r"^(gout|no gout) 0?\.\d+ .*report\.json$", run.stdout, re.M), run.stdout
    sessions = sorted((workdir / "scans").iterdir())
    assert len(sessions) == 2 and all((s / "report.json").is_file() for s in sessions)


def test_the_public_names_are_exported_and_documented():
    import gout_edge

    for name in ("open_bundle", "Scorer", "ExamSession", "Frame", "open_source"):
        assert name in gout_edge.__all__
        obj = getattr(gout_edge, name)
        assert obj.__doc__ and obj.__doc__.strip(), name
