"""The README's Python example runs as written — twice in a row, as an integrator would rerun it —
from a folder made by the README's own shell block before it (``gout-edge phantom``: no patient
data); and a missing input gives the documented one-line error and exit code, not a traceback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _blocks() -> tuple[str, str]:
    """The shell block that makes the example's inputs, and the Python example."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Python API"):]
    shell = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert section.index("```bash") < section.index("```python")  # where the inputs come from, first
    return shell, code


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The README's shell block, run as written with the installed ``gout-edge`` on PATH."""
    shell, _ = _blocks()
    work = tmp_path_factory.mktemp("integrator")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", shell], cwd=work, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (work / "screen.png").is_file() and (work / "stills").is_dir()
    return work


@pytest.mark.slow
def test_the_python_example_runs_twice_in_a_row(workdir):
    _, code = _blocks()
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


@pytest.mark.slow
def test_a_missing_input_is_one_line_and_exit_3_not_a_traceback(workdir, tmp_path):
    """``cv2.imread`` gives None for a file that is not there; ``Scorer.score`` says so (InputError)."""
    _, code = _blocks()
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 3, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    line = run.stderr.strip().splitlines()[-1]  # (OpenCV's own warning about the file may come before it)
    assert line.startswith("error: image 0 given to Scorer.score is None")
    assert "missing or unreadable" in line and "check the path" in line


def test_the_public_names_are_exported_and_documented():
    import gout_edge

    for name in ("open_bundle", "Scorer", "ExamSession", "Frame", "open_source"):
        assert name in gout_edge.__all__
        obj = getattr(gout_edge, name)
        assert obj.__doc__ and obj.__doc__.strip(), name
