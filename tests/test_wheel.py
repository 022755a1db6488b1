"""Build the wheel and import every module from it (a package missing from pyproject's list would
be silently dropped from the wheel)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


# What a build of the checkout would leave or pick up besides the sources: not copied.
NOT_SOURCES = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache",
                                     ".hypothesis", ".benchmarks", "gout-edge-verification-*.json")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the checkout: setuptools writes ``build/`` and ``*.egg-info``
    next to the sources, and a stale ``build/lib`` would hide a module missing from the list."""
    tree = tmp_path_factory.mktemp("source") / "gout-edge"
    shutil.copytree(ROOT, tree, ignore=NOT_SOURCES)
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(tree)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (path,) = out.glob("gout_edge-*.whl")
    return path


def _source_modules() -> set[str]:
    mapping = {"src/gout_edge": "gout_edge", "export": "gout_edge.export",
               "edge_runtime": "gout_edge.edge_runtime", "calibration": "gout_edge.calibration"}
    names = set()
    for folder, package in mapping.items():
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            names.add(".".join([package, *parts]))
    return names


def test_wheel_holds_every_module_and_no_generic_top_level_names(wheel):
    with zipfile.ZipFile(wheel) as zf:
        files = zf.namelist()
    tops = {name.split("/")[0] for name in files if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"gout_edge"}
    shipped = {n[:-3].replace("/", ".").removesuffix(".__init__") for n in files if n.endswith(".py")}
    assert _source_modules() <= shipped, sorted(_source_modules() - shipped)
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in files)


def test_every_module_imports_from_the_wheel(wheel, tmp_path):
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(tmp_path)
    script = f"""
import importlib, sys
names = {sorted(_source_modules())!r}
for name in names:
    module = importlib.import_module(name)
    assert module.__file__.startswith({str(tmp_path)!r}), (name, module.__file__)
print(len(names))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert int(proc.stdout.strip()) == len(_source_modules())


def test_no_module_imports_the_client_folders_by_their_bare_names():
    """`import export` would work from a checkout and break in the wheel (docs/design.md §3)."""
    import re

    bare = re.compile(r"^\s*(import|from)\s+(export|edge_runtime|calibration)(\s|\.)", re.M)
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("src", "export", "edge_runtime", "calibration", "tests", "benchmarks")
        for path in (ROOT / folder).rglob("*.py")
        if bare.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
