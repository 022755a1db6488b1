"""Running ``gout-edge`` as a cart runs it."""

from __future__ import annotations

import contextlib
import io

# A `gout-edge` process in which importing torch, onnx or nncf fails (the cart has none of them):
# ``subprocess.run([sys.executable, "-c", CLI_WITHOUT_TORCH, *args])``.
CLI_WITHOUT_TORCH = (
    "import sys\n"
    "class Block:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in ('torch', 'onnx', 'nncf'):\n"
    "            raise ImportError('torch is blocked in this test: ' + name)\n"
    "sys.meta_path.insert(0, Block())\n"
    "from gout_edge.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def run_cli(*args: str) -> tuple[int, str]:
    """Run ``gout-edge`` in this process: its exit code and what it printed on stdout."""
    from gout_edge.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(args))
    return code, out.getvalue()
