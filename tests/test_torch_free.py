"""The edge path never imports torch (docs/design.md §1): every edge_runtime module and the CLI root."""

from __future__ import annotations

import subprocess
import sys

from support.cli import CLI_WITHOUT_TORCH

SCRIPT = """
import importlib, pkgutil, sys
import gout_edge, gout_edge.cli, gout_edge.edge_runtime as er
names = ["gout_edge.cli", "gout_edge.manifest", "gout_edge.errors"]
for info in pkgutil.walk_packages(er.__path__, er.__name__ + "."):
    importlib.import_module(info.name)
    names.append(info.name)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "onnx", "nncf", "safetensors"))
print(len(names), heavy)
sys.exit(1 if heavy else 0)
"""


def test_edge_runtime_and_cli_leave_torch_unloaded():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    count = int(proc.stdout.split()[0])
    assert count >= 8  # the walk really visited the edge_runtime modules


def test_the_info_command_runs_without_torch(small_bundle):
    """Block torch imports outright, then run `gout-edge info --json` on a bundle."""
    result, _ = small_bundle
    proc = subprocess.run([sys.executable, "-c", CLI_WITHOUT_TORCH, "info", str(result.bundle), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert '"onnx-fp32"' in proc.stdout
