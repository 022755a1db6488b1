#!/usr/bin/env python3
"""Check the import-linter contracts of pyproject.toml (layers point one way; the runtime never
imports the model owner's libraries).

import-linter finds a package's modules by walking its folder, but gout-edge maps the client's
top-level folders (``export/``, ``edge_runtime/``, ``calibration/``) into ``gout_edge`` with
setuptools ``package-dir``: ``src/gout_edge`` alone does not hold them. So this script assembles
the package as it is installed — every ``.py`` file at its import path, from the same
``package-dir`` table — in a temporary folder, puts that folder first on ``sys.path`` and runs
``lint-imports`` there. Exit code: import-linter's (0 kept, 1 broken).

    python scripts/lint-imports.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def assemble(dest: Path) -> Path:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    package_dir = config["package-dir"]
    for package in config["packages"]:
        mapped = next((k for k in sorted(package_dir, key=len, reverse=True) if k and (package == k or package.startswith(k + "."))), "")
        base = ROOT / package_dir[mapped]
        rest = package[len(mapped):].lstrip(".") if mapped else package
        source = base.joinpath(*rest.split(".")) if rest else base
        target = dest.joinpath(*package.split("."))
        target.mkdir(parents=True, exist_ok=True)
        for file in source.glob("*.py"):
            shutil.copy2(file, target / file.name)
    return dest


def lint(tree: Path) -> subprocess.CompletedProcess:
    """Run lint-imports on an assembled ``tree`` with this repository's contracts."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); sys.argv = ['lint-imports', sys.argv[2]];"
        "from importlinter.cli import lint_imports_command; lint_imports_command()"
    )
    return subprocess.run([sys.executable, "-c", code, str(tree), str(ROOT / "pyproject.toml")], cwd=tree,
                          capture_output=True, text=True)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="gout-edge-layers-") as tmp:
        result = lint(assemble(Path(tmp)))
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
