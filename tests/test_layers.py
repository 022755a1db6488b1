"""Layers point one way and the runtime stays free of the model owner's libraries: the
import-linter contracts in pyproject.toml, run by ``scripts/lint-imports.py`` (as in CI), hold
for the tree as it is, and break when a runtime module reaches up a layer."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("importlinter", reason="import-linter is a dev dependency (pip install -e '.[dev]')")


def _script():
    spec = importlib.util.spec_from_file_location("lint_imports", ROOT / "scripts" / "lint-imports.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_contracts_hold_for_the_tree(tmp_path):
    script = _script()
    result = script.lint(script.assemble(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 kept, 0 broken" in result.stdout
    assert (tmp_path / "gout_edge" / "edge_runtime" / "inference" / "scoring.py").is_file()  # the mapped folders are there


@pytest.mark.parametrize(("where", "line"), [
    ("imaging", "def f():\n    from gout_edge.calibration import index\n"),  # even inside a function
    ("imaging", "import gout_edge.export.model\n"),
    ("imaging", "import torch\n"),
    ("imaging", "from gout_edge.edge_runtime.pipeline import verdict\n"),  # up a layer inside the runtime
    ("pipeline", "def f():\n    from gout_edge.edge_runtime.exam import session\n"),  # a circle hidden in a function
    ("present", "from gout_edge.edge_runtime.inference.scoring import Scorer\n"),  # rendering never runs a model
    ("sources", "from gout_edge.edge_runtime.inference import loading\n"),  # inputs and inference are independent
])
def test_a_module_reaching_up_breaks_a_contract(tmp_path, where, line):
    script = _script()
    tree = script.assemble(tmp_path)
    (tree / "gout_edge" / "edge_runtime" / where / "bad_idea.py").write_text(line)
    result = script.lint(tree)
    assert result.returncode == 1 and "BROKEN" in result.stdout


def test_a_module_outside_the_runtime_layers_breaks_the_contract(tmp_path):
    """The runtime's contract is exhaustive: a new top-level module must be given a layer."""
    script = _script()
    tree = script.assemble(tmp_path)
    (tree / "gout_edge" / "edge_runtime" / "misc.py").write_text("X = 1\n")
    result = script.lint(tree)
    assert result.returncode == 1 and "misc" in result.stdout


def test_no_runtime_file_names_calibration_or_export():
    """Belt and braces, and readable in a diff: not even a string import of the upper layers."""
    pattern = re.compile(r"gout_edge\.(calibration|export)\b")
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in (ROOT / "edge_runtime").rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not hits, hits
