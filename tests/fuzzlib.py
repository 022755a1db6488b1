"""The fuzzing harness shared by ``tests/test_fuzz.py`` (short seeded runs under hypothesis) and
``scripts/fuzz.py`` (the long run in a watched worker process).

Four targets, each fed mutants of real seed files, each allowed to answer only with success or a
``GoutEdgeError`` (docs/design.md §8):

- ``dicom``: ``read_dicom_file`` then every frame of ``decode_frames`` — seeds are small files
  shipped with pydicom (native, RLE, JPEG Baseline and Extended, JPEG 2000; grey, RGB, YBR,
  multi-frame) and ultrasound files made by gout-edge's own DICOM writer (with a Sequence of
  Ultrasound Regions; MONOCHROME2, RGB, RLE, JPEG 4:2:2, a cine).
- ``image``: ``read_image`` on mutated PNG and JPEG files.
- ``index``: ``read_index`` on mutated index tables (their images exist).
- ``manifest``: ``read_manifest`` on mutated ``manifest.json`` bytes and on JSON whose values
  were replaced by others of any type.

Mutations are a list of ``(op, where, value)`` steps, so hypothesis can draw and shrink them and
``random_ops`` can draw them from a seeded ``random.Random`` for the long run.
"""

from __future__ import annotations

import json
import random
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "OPS",
    "TARGETS",
    "Outcome",
    "make_seeds",
    "mutate",
    "random_ops",
    "run_target",
]

PYDICOM_SEEDS = (
    "MR_small.dcm",  # 16-bit native, explicit VR little endian
    "MR_small_RLE.dcm",
    "SC_rgb_rle_2frame.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",  # JPEG Baseline, RGB
    "SC_jpeg_no_color_transform.dcm",
    "SC_rgb_jpeg_lossy_gdcm.dcm",
    "JPGExtended.dcm",  # 12-bit JPEG Extended: refused (no decoder here), still a parser seed
    "JPEG2000.dcm",
    "MR_small_jp2klossless.dcm",
    "SC_rgb_rle.dcm",
    "SC_ybr_full_422_uncompressed.dcm",
    "ExplVR_BigEnd.dcm",
    "MR_small_implicit.dcm",
)
OPS = ("flip", "overwrite", "truncate", "insert", "delete", "vr", "length", "value", "splice", "repeat")
VRS = (b"XX", b"SQ", b"UN", b"OB", b"US", b"UL", b"DS", b"IS", b"FD", b"AT", b"  ", b"\x00\x00")
PIXEL_TAGS = ((0x0028, 0x0010), (0x0028, 0x0011), (0x0028, 0x0008), (0x0028, 0x0100), (0x0028, 0x0101),
              (0x0028, 0x0002), (0x0028, 0x0103), (0x0018, 0x6011), (0x7FE0, 0x0010), (0x0028, 0x0004))
INTERESTING = (0, 1, 2, 3, 7, 8, 15, 16, 255, 256, 4095, 32767, 32768, 65535)

Op = tuple[str, float, int]


def _pydicom_seed(name: str) -> Path | None:
    """A test file shipped inside pydicom (never one that pydicom would download)."""
    import pydicom.data

    path = Path(pydicom.data.__file__).parent / "test_files" / name
    return path if path.is_file() else None


def _us_seeds(out: Path) -> list[Path]:
    """Small ultrasound files from gout-edge's own writer, with a Sequence of Ultrasound Regions."""
    import cv2
    from pydicom.sequence import Sequence as DicomSequence

    from gout_edge.edge_runtime.imaging.dicom_write import region_item, set_pixels, ultrasound_dataset, write_dataset

    rng = np.random.default_rng(0)
    grey = np.zeros((60, 80), np.uint8)
    grey[8:52, 10:70] = rng.rayleigh(40.0, (44, 60)).clip(0, 255).astype(np.uint8)
    cv2.putText(grey, "G", (1, 7), cv2.FONT_HERSHEY_SIMPLEX, 0.25, 255, 1)
    paths = []
    for i, (photometric, rle, frames) in enumerate(
        [("MONOCHROME2", False, 1), ("RGB", False, 1), ("MONOCHROME2", True, 1), ("YBR_FULL_422", False, 1),
         ("MONOCHROME2", False, 3), ("RGB", True, 2)]
    ):
        uid = f"1.2.826.0.1.3680043.10.999.{i + 1}"
        ds = ultrasound_dataset(uid + ".1", "1.2.826.0.1.3680043.10.999", uid, multiframe=frames > 1)
        ds.PatientID, ds.PatientName = "FUZZ", "FUZZ^SEED"
        ds.SeriesNumber, ds.InstanceNumber = 1, i + 1
        ds.SequenceOfUltrasoundRegions = DicomSequence([region_item((10, 8, 70, 52), pixel_cm=0.01)])
        if frames > 1:
            ds.FrameTime = "40"
        set_pixels(ds, [np.roll(grey, k, axis=1) for k in range(frames)], photometric, rle=rle)
        paths.append(write_dataset(ds, out / f"us_{i}_{photometric.lower()}{'_rle' if rle else ''}_{frames}.dcm"))
    return paths


def make_seeds(out: Path) -> dict[str, list[Path]]:
    """Write (or reuse) every target's seed files under ``out``; ``{target: [paths]}``."""
    import cv2

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dicom = [p for p in (_pydicom_seed(n) for n in PYDICOM_SEEDS) if p is not None]
    dicom += _us_seeds(out / "dicom")
    rng = np.random.default_rng(1)
    images = []
    img = rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)
    for name, arr, params in [
        ("grey.png", img[:, :, 0], []), ("rgb.png", img, []), ("rgba16.png", np.dstack([img, img[:, :, :1]]).astype(np.uint16) * 257, []),
        ("base.jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80]),
        ("progressive.jpg", img, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
        ("grey.jpg", img[:, :, 0], []),
    ]:
        path = out / "images" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        ok, buf = cv2.imencode(path.suffix, arr, params)
        assert ok
        path.write_bytes(buf.tobytes())
        images.append(path)
    table = out / "index" / "index.csv"
    table.parent.mkdir(parents=True, exist_ok=True)
    for i in range(4):
        (table.parent / f"im{i}.png").write_bytes(images[0].read_bytes())
    table.write_text(
        "patient_id,image,image_label,diagnosis,view\n"
        "P1,im0.png,1,gout,dorsal\nP1,im1.png,0,gout,medial\nP2,im2.png,0,control,\nP2,im3.png,1,control,plantar\n"
    )
    from gout_edge.edge_runtime.inference.loading import default_bundle_path

    manifest = out / "manifest" / "manifest.json"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_bytes((default_bundle_path() / "manifest.json").read_bytes())
    return {"dicom": dicom, "image": images, "index": [table], "manifest": [manifest]}


# -- mutations ------------------------------------------------------------------------------


def _tag_positions(data: bytes) -> list[int]:
    """Offsets of the group/element of pixel-module and region tags (little endian)."""
    found = []
    for group, element in PIXEL_TAGS:
        needle = struct.pack("<HH", group, element)
        start = 0
        while (i := data.find(needle, start)) >= 0 and len(found) < 64:
            found.append(i)
            start = i + 1
    return found


def mutate(data: bytes, ops: Sequence[Op], other: bytes = b"") -> bytes:
    """Apply ``ops`` (op name, where in [0, 1), an integer) to ``data``; ``other``: a second seed
    for ``splice``."""
    buf = bytearray(data)
    for op, where, value in ops:
        n = len(buf)
        pos = min(int(where * n), max(n - 1, 0))
        rng = random.Random(value)
        if op == "flip" and n:
            for _ in range(1 + value % 16):
                buf[rng.randrange(n)] ^= 1 << rng.randrange(8)
        elif op == "overwrite" and n:
            span = 1 + value % 64
            fill = rng.choice([b"\x00", b"\xff", bytes([rng.randrange(256)]), None])
            chunk = bytes(rng.randrange(256) for _ in range(span)) if fill is None else fill * span
            buf[pos:pos + span] = chunk[: max(0, n - pos)]
        elif op == "truncate":
            del buf[pos:]
        elif op == "insert":
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(1 + value % 32))
        elif op == "delete":
            del buf[pos:pos + 1 + value % 64]
        elif op in ("vr", "length", "value"):
            tags = _tag_positions(bytes(buf))
            if not tags:
                continue
            t = tags[value % len(tags)]
            if op == "vr" and t + 6 <= n:
                buf[t + 4:t + 6] = VRS[value % len(VRS)]
            elif op == "length" and t + 8 <= n:
                length = rng.choice([0, 1, 3, 0xFFFF, 0xFFFFFFFF, 0x7FFFFFFF, rng.randrange(1 << 16)])
                if bytes(buf[t + 4:t + 6]) in (b"OB", b"OW", b"SQ", b"UN", b"UT", b"OF") and t + 12 <= n:
                    buf[t + 8:t + 12] = struct.pack("<I", length & 0xFFFFFFFF)
                else:
                    buf[t + 6:t + 8] = struct.pack("<H", length & 0xFFFF)
            elif op == "value" and t + 10 <= n:
                buf[t + 8:t + 10] = struct.pack("<H", rng.choice(INTERESTING))
        elif op == "splice" and other:
            cut = int(where * len(other))
            buf = buf[:pos] + bytearray(other[cut:cut + 1 + value % 4096]) + buf[pos:]
        elif op == "repeat" and n:
            chunk = buf[pos:pos + 1 + value % 256]
            buf[pos:pos] = chunk * (1 + value % 8)
    return bytes(buf)


def random_ops(rng: random.Random, most: int = 4) -> list[Op]:
    return [(rng.choice(OPS), rng.random(), rng.randrange(1 << 30)) for _ in range(rng.randint(1, most))]


def mutate_json(data: bytes, rng: random.Random) -> bytes:
    """Replace a few values of a JSON document with values of any type (or drop keys)."""
    doc = json.loads(data)
    nodes: list[tuple[object, object]] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                nodes.append((node, k))
                walk(v)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                nodes.append((node, i))
                walk(v)

    walk(doc)
    choices: list[object] = [None, True, -1, 0, 1, 2**63, -1e308, float("nan"), 1e400, "", "x" * 300, [], {},
                             [[[[]]]], "../../etc/passwd", 100_000, 0.5, "a" * 64]
    for _ in range(rng.randint(1, 4)):
        if not nodes:
            break
        parent, key = rng.choice(nodes)
        if isinstance(parent, dict) and rng.random() < 0.2:
            parent.pop(key, None)  # type: ignore[call-overload]
            nodes = [(p, k) for p, k in nodes if not (p is parent and k == key)]
        else:
            parent[key] = rng.choice(choices)  # type: ignore[index]
    return json.dumps(doc).encode()


# -- targets ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What one input did: ``ok`` (no error), ``refused`` (a GoutEdgeError) or ``crash``."""

    status: str
    error: str = ""
    message: str = ""


def _dicom(path: Path) -> None:
    from gout_edge.edge_runtime.sources.dicom import decode_frames, read_dicom_file

    file = read_dicom_file(path, strict_image=False)
    if file is not None:
        for _ in decode_frames(file):
            pass


def _image(path: Path) -> None:
    from gout_edge.edge_runtime.sources.images import read_image

    read_image(path)


def _index(path: Path) -> None:
    from gout_edge.calibration.index import read_index
    from gout_edge.edge_runtime.sources.images import load_image

    table = read_index(path)
    for row in table.rows[:4]:
        load_image(row.image)


def _manifest(path: Path) -> None:
    from gout_edge.manifest import read_manifest

    read_manifest(path.parent)


TARGETS: dict[str, Callable[[Path], None]] = {"dicom": _dicom, "image": _image, "index": _index, "manifest": _manifest}
SUFFIX = {"dicom": ".dcm", "image": None, "index": ".csv", "manifest": ".json"}


def _index_images(folder: Path) -> None:
    """The images the index seed lists (im0.png … im3.png), written once."""
    if (folder / "im3.png").is_file():
        return
    import cv2

    ok, buf = cv2.imencode(".png", np.random.default_rng(2).integers(0, 255, (40, 56), dtype=np.uint8))
    for i in range(4):
        (folder / f"im{i}.png").write_bytes(buf.tobytes())


def run_target(target: str, data: bytes, workdir: Path, suffix: str | None = None) -> Outcome:
    """Write ``data`` into ``workdir`` and feed it to ``target``; never raises for an input."""
    from gout_edge.errors import GoutEdgeError

    workdir.mkdir(parents=True, exist_ok=True)
    if target == "manifest":
        path = workdir / "manifest.json"
    elif target == "index":
        path = workdir / "index.csv"
        _index_images(workdir)
    else:
        path = workdir / f"input{suffix or SUFFIX[target] or '.png'}"
    path.write_bytes(data)
    try:
        TARGETS[target](path)
    except GoutEdgeError as exc:
        return Outcome("refused", type(exc).__name__, str(exc)[:300])
    except Exception as exc:  # noqa: BLE001 - what the harness is looking for
        return Outcome("crash", type(exc).__name__, str(exc)[:300])
    return Outcome("ok")
