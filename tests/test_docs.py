"""The repository is self-contained: every file the code, the README and the docs cite exists in
it, the design document has the sections the code cites, and a LICENSE is there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEXT_FILES = [p for pattern in ("*.py", "*.md", "*.toml", "*.sh") for p in ROOT.rglob(pattern)
              if not {".venv", ".git", "build", "node_modules"} & set(p.relative_to(ROOT).parts)]
TOP = ("docs", "scripts", "tests", "benchmarks", "edge_runtime", "export", "calibration", "src", ".ci")
# a repository path: starts at a top-level folder (or is a root file) and names a file with a suffix
_TOPS = "|".join(re.escape(t) for t in TOP)
PATH = re.compile(rf"(?<![\w./-])((?:{_TOPS})/[\w./-]*\.\w+|README\.md|LICENSE|pyproject\.toml)(?![\w/-])")


def _citations():
    for file in TEXT_FILES:
        for n, line in enumerate(file.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            for m in PATH.finditer(line):
                yield file.relative_to(ROOT), n, m.group(1).rstrip(".")


def test_every_cited_path_exists():
    missing = [f"{f}:{n}: {p}" for f, n, p in _citations()
               if "*" not in p and "<" not in p and not (ROOT / p).exists()]
    assert not missing, "cited but not in the repository:\n" + "\n".join(missing)


def test_nothing_cites_documents_outside_the_repository():
    outside = re.compile(r"DESIGN\.md|shared/(notes|seeds)|seeds/\d")
    hits = [f"{p.relative_to(ROOT)}:{n}" for p in TEXT_FILES
            for n, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
            if outside.search(line)]
    assert not hits, hits


def test_design_sections_cited_by_the_code_exist():
    design = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    sections = {int(m) for m in re.findall(r"^## (\d+)\. ", design, re.M)}
    cited = {(f, int(s)) for f in TEXT_FILES
             for s in re.findall(r"docs/design\.md §(\d+)", f.read_text(encoding="utf-8", errors="replace"))}
    assert cited, "the code cites the design document"
    assert not [c for c in cited if c[1] not in sections], sorted(c for c in cited if c[1] not in sections)


def test_licence_and_model_card():
    assert "Apache License" in (ROOT / "LICENSE").read_text(encoding="utf-8")
    card = (ROOT / "docs" / "model-card.md").read_text(encoding="utf-8").lower()
    assert "not for clinical use" in card and "phantom" in card
