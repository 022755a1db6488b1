"""The rules the test suite keeps (tests/conftest.py): helpers and fakes live in ``tests/support``,
and no test module imports another test module or the conftest (a shared fixture goes into
``conftest.py``, a shared helper into ``support``)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
# Top-level helpers that scripts outside the suite import by path (scripts/fuzz.py,
# benchmarks/dicom_roundtrip.py); everything else shared is in support/.
SHARED_WITH_SCRIPTS = {"dicom_tools.py", "fuzzlib.py"}


def _imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_no_test_module_imports_another_or_the_conftest():
    modules = {p.stem for p in TESTS.glob("test_*.py")} | {"conftest"}
    offenders = {p.name: sorted(_imported(p) & modules) for p in sorted(TESTS.rglob("*.py"))}
    assert {name: found for name, found in offenders.items() if found} == {}


def test_shared_helpers_live_in_the_support_package():
    loose = {p.name for p in TESTS.glob("*.py") if not p.name.startswith("test_") and p.name != "conftest.py"}
    assert loose <= SHARED_WITH_SCRIPTS, sorted(loose - SHARED_WITH_SCRIPTS)
    assert (TESTS / "support" / "__init__.py").is_file()
