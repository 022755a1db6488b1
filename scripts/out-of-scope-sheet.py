#!/usr/bin/env python3
"""Write the out-of-scope set's contact sheet for the documentation: one screen of every kind of
every category (other anatomy, Doppler, near misses, non-ultrasound), seed 0, as an 8-bit palette
PNG under 300 KB.

    python scripts/out-of-scope-sheet.py [PATH] [--seed N] [--variants N] [--tile-width PX]

PATH defaults to docs/out-of-scope-sheet.png. ``gout-edge phantom --out DIR --out-of-scope``
writes the same kind of sheet (full colour) as DIR/out_of_scope/contact_sheet.png.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    from gout_edge.phantom import out_of_scope_sheet

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=ROOT / "docs" / "out-of-scope-sheet.png")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", type=int, default=1)
    parser.add_argument("--tile-width", type=int, default=200)
    args = parser.parse_args(argv)
    path = out_of_scope_sheet(args.path, args.seed, args.variants, args.tile_width, palette=True)
    print(f"{path}: {path.stat().st_size // 1024} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
