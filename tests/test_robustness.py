"""Issue 12, case by case: no traceback, bounded memory, nothing dropped in silence, bundles that
cannot be swapped. Every case runs through ``gout_edge.cli.main`` and checks the exit code of
docs/design.md §8, one message on stderr and no traceback."""

from __future__ import annotations

import json
import shutil
import struct
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.screens import region, screen, write_dicom

from gout_edge.cli import main
from gout_edge.edge_runtime.inference.loading import default_bundle_path, open_bundle
from gout_edge.edge_runtime.sources import open_source
from gout_edge.edge_runtime.sources._guard import MAX_FRAME_PIXELS, raster_size
from gout_edge.edge_runtime.sources.dicom import read_dicom_file
from gout_edge.edge_runtime.sources.images import read_image
from gout_edge.errors import INTERNAL_ERROR_EXIT, BundleError, BundleTamperedError, InputError

PATIENT_FOLDER = "DOE^JOHN"  # a PACS export names folders after patients: never in a message
ENGINE = ["--backend", "onnxruntime", "--precision", "int8", "--no-display"]


# No signing key configured (unsigned bundles open), crash files in the test's folder.
pytestmark = pytest.mark.usefixtures("no_device_key")


def run(capfd, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capfd.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    """The error lines of stderr (log lines aside): exactly one, and no traceback anywhere."""
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    return errors[0]


# -- nasty DICOM files ------------------------------------------------------------------------


def _patch(raw: bytes, group: int, element: int, vr: bytes, new: bytes) -> bytes:
    tag = struct.pack("<HH", group, element) + vr
    i = raw.index(tag)
    return raw[:i] + new + raw[i + len(new):]


def deep_region(raw: bytes, depth: int) -> bytes:
    """The file with a sequence nested ``depth`` deep inside its ultrasound region item."""
    tag = struct.pack("<HH", 0x0018, 0x6011) + b"SQ\0\0"
    i = raw.index(tag)
    seq_len = struct.unpack("<I", raw[i + 8:i + 12])[0]
    item = i + 12
    assert raw[item:item + 4] == b"\xfe\xff\x00\xe0"
    item_len = struct.unpack("<I", raw[item + 4:item + 8])[0]
    content = raw[item + 8:item + 8 + item_len]
    undefined = struct.pack("<I", 0xFFFFFFFF)
    opening = struct.pack("<HH", 0x0008, 0x1140) + b"SQ\0\0" + undefined + b"\xfe\xff\x00\xe0" + undefined
    closing = b"\xfe\xff\x0d\xe0\0\0\0\0" + b"\xfe\xff\xdd\xe0\0\0\0\0"
    new_item = b"\xfe\xff\x00\xe0" + undefined + content + opening * depth + closing * depth + b"\xfe\xff\x0d\xe0\0\0\0\0"
    return raw[:i] + tag + undefined + new_item + b"\xfe\xff\xdd\xe0\0\0\0\0" + raw[i + 12 + seq_len:]


def nasty_dicoms(folder: Path) -> dict[str, Path]:
    """The hand-made files of the stress run, by what is wrong with them."""
    folder.mkdir(parents=True, exist_ok=True)
    good = write_dicom(folder / "good.dcm", [screen()], regions=[region(40, 30, 279, 199)])
    raw = good.read_bytes()
    good.unlink()
    jpeg = write_dicom(folder / "jpeg.dcm", [screen()], syntax="1.2.840.10008.1.2.4.50").read_bytes()
    (folder / "jpeg.dcm").unlink()
    soi = jpeg.index(b"\xff\xd8\xff")
    dht = jpeg.index(b"\xff\xc4", soi)
    files = {
        "unknown VR on BitsStored": _patch(raw, 0x0028, 0x0101, b"US", struct.pack("<HH", 0x0028, 0x0101) + b"XX"),
        "Rows of odd length": _patch(raw, 0x0028, 0x0010, b"US",
                                     struct.pack("<HH", 0x0028, 0x0010) + b"US" + struct.pack("<H", 3)),
        "sequence 5000 deep": deep_region(raw, 5000),
        "damaged JPEG": jpeg[:dht + 4] + b"\0" * 40 + jpeg[dht + 44:],
        "truncated in its header": raw[:300],
        "0 bytes": b"",
        "random bytes": np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes(),
    }
    out = {}
    for i, (what, data) in enumerate(files.items()):
        path = folder / f"IM{i}.dcm"
        path.write_bytes(data)
        out[what] = path
    return out


def two_deltas(path: Path) -> Path:
    import pydicom

    p = write_dicom(path, [screen()], regions=[region(40, 30, 279, 199)])
    ds = pydicom.dcmread(p)
    ds.SequenceOfUltrasoundRegions[0].PhysicalDeltaX = [0.005, 0.006]
    ds.save_as(p)
    return p


def test_each_nasty_dicom_is_an_input_error_naming_the_file_by_base_name(tmp_path):
    for what, path in nasty_dicoms(tmp_path / PATIENT_FOLDER).items():
        with pytest.raises(InputError) as err:
            list(open_source("dicom", path))  # the header is read on opening, the pixels when iterated
        message = str(err.value)
        assert path.name in message and PATIENT_FOLDER not in message and str(tmp_path) not in message, (what, message)
        assert err.value.exit_code == 3
    file = read_dicom_file(two_deltas(tmp_path / "deltas.dcm"))  # PhysicalDeltaX with 2 values: spacing unknown
    assert file is not None and file.region.roi is not None and file.region.pixel_mm is None


def test_a_study_folder_with_damaged_files_is_scanned_and_names_each_with_its_reason(capfd, tmp_path):
    study = tmp_path / "pacs" / PATIENT_FOLDER
    nasty = nasty_dicoms(study)
    for k in range(3):
        write_dicom(study / f"ok{k}.dcm", [screen(seed=k)], regions=[region(40, 30, 279, 199)], instance=k + 1)
    two_deltas(study / "deltas.dcm")
    code, out, err = run(capfd, "scan", "--dicom", str(tmp_path / "pacs"), "--out", str(tmp_path / "scans"), "--json", *ENGINE)
    assert code == 0, err
    assert "Traceback" not in err and PATIENT_FOLDER not in err
    doc = json.loads(out)
    skipped = {s["file"]: s["reason"] for s in doc["source"]["skipped_files"]}
    assert set(skipped) == {p.name for p in nasty.values()}, skipped
    assert all(reason and PATIENT_FOLDER not in reason for reason in skipped.values())
    assert "nested too deeply" in skipped[nasty["sequence 5000 deep"].name]
    assert "could not be decoded" in skipped[nasty["damaged JPEG"].name]
    assert doc["frames_seen"] == 4 and PATIENT_FOLDER not in doc["ended_by"]
    report = json.loads(Path(doc["patients"][0]["report"]).read_text())
    assert {s["file"] for s in report["skipped_files"]} == set(skipped)  # the report says so too
    # --strict: refused before the first frame, with one message
    code, _, err = run(capfd, "scan", "--dicom", str(tmp_path / "pacs"), "--strict", "--out", str(tmp_path / "strict"), *ENGINE)
    line = one_line(err)
    assert code == 3 and "--strict" in line and PATIENT_FOLDER not in line
    assert not list((tmp_path / "strict").rglob("journal.jsonl"))


def test_each_nasty_dicom_alone_exits_3_with_one_line(capfd, tmp_path):
    for what, path in nasty_dicoms(tmp_path / PATIENT_FOLDER).items():
        code, _, err = run(capfd, "scan", "--dicom", str(path), "--out", str(tmp_path / "scans"), *ENGINE)
        line = one_line(err)
        assert code == 3 and path.name in line and PATIENT_FOLDER not in line, (what, err)


def test_damaged_files_under_images_are_skipped_and_a_folder_of_only_damaged_ones_refused(capfd, tmp_path):
    folder = tmp_path / "images" / PATIENT_FOLDER
    nasty = nasty_dicoms(folder)
    cv2.imwrite(str(folder / "a.png"), screen())
    (folder / "empty.png").write_bytes(b"")
    code, out, err = run(capfd, "scan", "--images", str(tmp_path / "images"), "--out", str(tmp_path / "scans"), "--json", *ENGINE)
    assert code == 0 and "Traceback" not in err, err
    doc = json.loads(out)
    skipped = {s["file"] for s in doc["source"]["skipped_files"]}
    assert skipped == {p.name for p in nasty.values()} | {"empty.png"}
    (folder / "a.png").unlink()
    code, _, err = run(capfd, "scan", "--images", str(tmp_path / "images"), "--out", str(tmp_path / "scans2"), *ENGINE)
    line = one_line(err)
    assert code == 3 and "none of the 8 image file(s)" in line and "IM0.dcm" in line and PATIENT_FOLDER not in line


def test_a_folder_of_only_damaged_dicom_files_is_refused_naming_why(capfd, tmp_path):
    nasty_dicoms(tmp_path / "pacs")
    code, _, err = run(capfd, "scan", "--dicom", str(tmp_path / "pacs"), "--out", str(tmp_path / "scans"), *ENGINE)
    line = one_line(err)
    assert code == 3 and "none of the 7 DICOM file(s)" in line and "IM0.dcm" in line


def test_pydicom_tracebacks_never_reach_the_terminal(capfd, tmp_path):
    nasty = nasty_dicoms(tmp_path / "x")
    code, out, err = run(capfd, "scan", "--dicom", str(nasty["damaged JPEG"]), "--out", str(tmp_path / "s"), *ENGINE)
    assert code == 3 and "Traceback" not in err and "Traceback" not in out
    assert "Unable to decode" in one_line(err)


# -- limits before allocation -----------------------------------------------------------------


def bomb_dicom(path: Path, rows: int = 30000, columns: int = 32000) -> Path:
    """An RLE file whose header declares rows × columns RGB; a few bytes of pixel data."""
    p = write_dicom(path, [np.zeros((16, 16, 3), np.uint8)], photometric="RGB", syntax="1.2.840.10008.1.2.5")
    raw = p.read_bytes()
    raw = _patch(raw, 0x0028, 0x0010, b"US", struct.pack("<HH", 0x0028, 0x0010) + b"US" + struct.pack("<HH", 2, rows))
    raw = _patch(raw, 0x0028, 0x0011, b"US", struct.pack("<HH", 0x0028, 0x0011) + b"US" + struct.pack("<HH", 2, columns))
    p.write_bytes(raw)
    return p


def png_bomb(path: Path, side: int = 30000) -> Path:
    """A valid PNG header declaring side × side pixels (a few bytes of data: the IHDR is what counts)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" + b"\0" * side
    idat = zlib.compress(row * 64, 9)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def test_decompression_bombs_are_refused_from_their_headers_quickly(capfd, tmp_path):
    import resource

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    bomb = bomb_dicom(tmp_path / "bomb.dcm")
    with pytest.raises(InputError, match="over the ceiling"):
        read_dicom_file(bomb)
    code, _, err = run(capfd, "scan", "--dicom", str(bomb), "--out", str(tmp_path / "s"), *ENGINE)
    assert code == 3 and "32000 × 30000" in one_line(err)
    png = png_bomb(tmp_path / "big.png")
    assert raster_size(png.read_bytes()) == ("png", 30000, 30000)
    with pytest.raises(InputError, match="over the ceiling"):
        read_image(png)
    code, _, err = run(capfd, "scan", "--images", str(png), "--out", str(tmp_path / "s2"), *ENGINE)
    assert code == 3 and "30000 × 30000" in one_line(err)
    assert time.monotonic() - start < 20
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert grown_mb < 500  # a decoded bomb would be 2.7 GB (DICOM) or 0.9 GB (PNG)


def test_a_jpeg_inside_dicom_larger_than_its_header_says_is_refused_by_pillow(tmp_path):
    import io

    from PIL import Image
    from pydicom.encaps import encapsulate

    side = int((MAX_FRAME_PIXELS * 1.2) ** 0.5)
    buf = io.BytesIO()
    Image.new("L", (side, side), 90).save(buf, format="JPEG", quality=50)
    path = write_dicom(tmp_path / "j.dcm", [screen()], syntax="1.2.840.10008.1.2.4.50")
    import pydicom

    ds = pydicom.dcmread(path)
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.SamplesPerPixel = 1
    ds.PixelData = encapsulate([buf.getvalue()])
    ds.save_as(path)
    with pytest.raises(InputError, match="could not be decoded"):
        for _ in open_source("dicom", path):
            pass


def test_tiny_images_are_refused_not_crashed_on(tmp_path):
    cv2.imwrite(str(tmp_path / "t.png"), np.zeros((3, 3, 3), np.uint8))
    with pytest.raises(InputError, match="too small"):
        read_image(tmp_path / "t.png")


# -- the index table ----------------------------------------------------------------------------


def index_with_empty_png(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["patient_id,image,image_label,diagnosis,view"]
    for i in range(4):
        name = f"im{i}.png"
        if i == 2:
            (folder / name).write_bytes(b"")
        else:
            cv2.imwrite(str(folder / name), screen(seed=i))
        rows.append(f"P{i // 2},{name},{i % 2},{'gout' if i < 2 else 'control'},")
    (folder / "index.csv").write_text("\n".join(rows) + "\n")
    return folder / "index.csv"


def test_an_empty_png_in_the_index_is_one_message_in_evaluate_and_calibrate(capfd, tmp_path):
    table = index_with_empty_png(tmp_path / "data")
    code, _, err = run(capfd, "evaluate", "--data", str(table), "--out", str(tmp_path / "ev"), "--backend", "onnxruntime")
    assert code == 3 and "Traceback" not in err and "im2.png" in err and "line 4" in err, err
    copy = tmp_path / "bundle"
    shutil.copytree(default_bundle_path(), copy)
    code, _, err = run(capfd, "calibrate", "--bundle", str(copy), "--data", str(table), "--out", str(tmp_path / "cal"),
                       "--backend", "onnxruntime")
    assert code == 3 and "Traceback" not in err and "im2.png" in err, err


def test_index_paths_with_control_characters_are_problems_not_crashes(tmp_path):
    from gout_edge.calibration.index import IndexTableError, read_index

    (tmp_path / "index.csv").write_text("patient_id,image,image_label,diagnosis,view\nP1,a\x00b.png,1,gout,\n")
    with pytest.raises(IndexTableError, match="control character"):
        read_index(tmp_path / "index.csv")


@pytest.mark.parametrize("command", ["bench", "evaluate", "calibrate"])
def test_negative_threads_are_a_usage_error(capfd, command, tmp_path):
    extra = {"evaluate": ["--data", "x.csv"], "calibrate": ["--data", "x.csv"], "bench": []}[command]
    code, _, err = run(capfd, command, "--threads", "-1", *extra)
    assert code == 2 and "Traceback" not in err and "--threads" in err


# -- checkpoints --------------------------------------------------------------------------------


def _resnet_like(blocks_per_stage=(2, 2, 2, 2), classes=2, bottleneck=False):
    import torch

    from gout_edge.export.model import GoutResNet

    if bottleneck:
        state = {"conv1.weight": torch.zeros(64, 3, 7, 7), "bn1.weight": torch.ones(64)}
        for s, (n, w) in enumerate(zip(blocks_per_stage, (64, 128, 256, 512), strict=True), 1):
            for j in range(n):
                for c, (o, i, k) in enumerate([(w, w * 4, 1), (w, w, 3), (w * 4, w, 1)], 1):
                    state[f"layer{s}.{j}.conv{c}.weight"] = torch.zeros(o, i, k, k)
                    state[f"layer{s}.{j}.bn{c}.weight"] = torch.ones(o)
        state["fc.weight"], state["fc.bias"] = torch.zeros(classes, 2048), torch.zeros(classes)
        return state
    base = GoutResNet(4).state_dict()
    state = dict(base)
    for s, n in enumerate(blocks_per_stage, 1):
        for j in range(2, n):
            for k, v in base.items():
                if k.startswith(f"layer{s}.1."):
                    state[k.replace(f"layer{s}.1.", f"layer{s}.{j}.")] = v
    state["fc.weight"], state["fc.bias"] = torch.zeros(classes, 512), torch.zeros(classes)
    return state


@pytest.mark.parametrize(
    "name, make, says",
    [
        ("wrong-shape", lambda: {**_resnet_like(), "layer2.0.conv1.weight": __import__("torch").zeros(128, 64, 5, 5)},
         "layer2.0.conv1.weight is [128, 64, 5, 5] where [128, 64, 3, 3] is expected"),
        ("resnet50-2-outputs", lambda: _resnet_like((3, 4, 6, 3), bottleneck=True), "Bottleneck"),
        ("resnet34", lambda: _resnet_like((3, 4, 6, 3)), "only two BasicBlocks per stage"),
        ("imagenet-1000", lambda: _resnet_like(classes=1000), "1000 classes"),
    ],
)
def test_unusable_checkpoints_exit_3_with_one_message_saying_what_is_supported(capfd, tmp_path, name, make, says):
    import torch

    torch.save(make(), tmp_path / f"{name}.pt")
    code, out, err = run(capfd, "export", str(tmp_path / f"{name}.pt"), "--out", str(tmp_path / "b"), "--no-int8")
    line = one_line(err)
    assert code == 3 and says in line and "supported: a ResNet-18-style trunk" in line, err
    assert "size mismatch" not in err and len(line) < 1000


# -- manifests ---------------------------------------------------------------------------------


def demo_copy(dest: Path, edit=None) -> Path:
    shutil.copytree(default_bundle_path(), dest)
    if edit is not None:
        path = dest / "manifest.json"
        data = json.loads(path.read_text())
        edit(data)
        path.write_text(json.dumps(data))
    return dest


def _decision(data, **values):
    data["decision"].update(values)


@pytest.mark.parametrize(
    "edit, says",
    [
        (lambda d: _decision(d, patient_threshold=-1, calibrated=True), "manifest.decision.patient_threshold is -1"),
        (lambda d: _decision(d, min_key_frames=0), "manifest.decision.min_key_frames is 0"),
        (lambda d: d["input"].update(height=100000, width=100000), "manifest.input.height is 100000"),
    ],
)
def test_out_of_range_manifest_values_exit_4_in_info_verify_and_scan(capfd, tmp_path, edit, says):
    bundle = demo_copy(tmp_path / "b", edit)
    for args in (["info"], ["verify"], ["scan", "--demo", "--out", str(tmp_path / "s"), "--no-display"]):
        code, _, err = run(capfd, *args, "--bundle", str(bundle))
        assert code == 4 and says in one_line(err), (args, err)


def test_a_manifest_nested_100000_deep_exits_4_in_info_verify_and_scan(capfd, tmp_path):
    bundle = demo_copy(tmp_path / "b")
    (bundle / "manifest.json").write_text('{"a": ' * 100_000 + "1" + "}" * 100_000)
    for args in (["info"], ["verify"], ["scan", "--demo", "--out", str(tmp_path / "s"), "--no-display"]):
        code, _, err = run(capfd, *args, "--bundle", str(bundle))
        assert code == 4 and "nested too deeply" in one_line(err), (args, err)


# -- bundles that cannot be swapped ----------------------------------------------------------


def _other_model(path: Path) -> bytes:
    """The same ONNX graph with one weight changed: another model of the same shape."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    for init in model.graph.initializer:
        if init.name.startswith("fc") or "fc" in init.name:
            arr = numpy_helper.to_array(init).copy()
            arr += 3.0
            init.CopyFrom(numpy_helper.from_array(arr, init.name))
            break
    else:  # pragma: no cover - the exported graphs name their linear layer fc
        raise AssertionError("no fc initializer")
    return model.SerializeToString()


@pytest.mark.parametrize("backend, precision", [("onnxruntime", "fp32"), ("openvino", "fp32"), ("openvino", "int8")])
def test_a_model_replaced_after_open_bundle_is_never_run(tmp_path, backend, precision):
    from gout_edge.edge_runtime.inference.backends import SessionOptions, open_session

    copy = demo_copy(tmp_path / "b")
    bundle = open_bundle(copy)
    m = bundle.manifest.input
    batch = np.random.default_rng(0).standard_normal((1, 1, m.height, m.width)).astype(np.float32)
    options = SessionOptions(precision=precision, threads=1, cache_dir=str(tmp_path / "ov"))
    first = open_session(bundle, backend, options)
    before = first.run(batch)
    first.close()
    (copy / "model.fp32.onnx").write_bytes(_other_model(copy / "model.fp32.onnx"))
    if precision == "int8":
        weights = bytearray((copy / "model.int8.bin").read_bytes())
        weights[: len(weights) // 2] = bytes(len(weights) // 2)
        (copy / "model.int8.bin").write_bytes(bytes(weights))
    again = open_session(bundle, backend, options)  # the same Bundle: the bytes checked at open
    after = again.run(batch)
    again.close()
    np.testing.assert_array_equal(before.logits, after.logits)
    np.testing.assert_array_equal(before.cam, after.cam)
    with pytest.raises(BundleTamperedError, match="has been modified"):
        open_bundle(copy)


def test_a_symlink_to_a_file_outside_the_bundle_is_refused(capfd, tmp_path):
    copy = demo_copy(tmp_path / "b")
    outside = tmp_path / "elsewhere.onnx"
    shutil.move(str(copy / "model.fp32.onnx"), outside)
    (copy / "model.fp32.onnx").symlink_to(outside)  # same bytes, same hash: refused all the same
    with pytest.raises(BundleError, match="outside the bundle"):
        open_bundle(copy)
    code, _, err = run(capfd, "info", "--bundle", str(copy))
    assert code == 4 and "outside the bundle" in one_line(err)
    inside = tmp_path / "c"
    demo_copy(inside)
    (inside / "model.fp32.onnx").rename(inside / "real.onnx")
    (inside / "model.fp32.onnx").symlink_to(inside / "real.onnx")  # a link that stays inside is fine
    assert open_bundle(inside).blobs["onnx-fp32"] == (inside / "real.onnx").read_bytes()


# -- truncated video ---------------------------------------------------------------------------


def test_a_video_cut_in_half_says_it_was_cut_short(capfd, caplog, tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (320, 240))
    for i in range(16):
        writer.write(cv2.cvtColor(screen(seed=i), cv2.COLOR_GRAY2BGR))
    writer.release()
    data = path.read_bytes()
    half = tmp_path / PATIENT_FOLDER / "half.avi"
    half.parent.mkdir()
    half.write_bytes(data[: len(data) // 2])
    code, out, err = run(capfd, "scan", "--video", str(half), "--out", str(tmp_path / "s"), "--json", *ENGINE)
    assert code == 0 and "Traceback" not in err, err
    doc = json.loads(out)
    assert doc["complete"] is False and "half.avi cut short" in doc["ended_by"] and "of the 16 frames" in doc["ended_by"]
    assert doc["frames_seen"] < 16 and PATIENT_FOLDER not in doc["ended_by"]
    report = json.loads(Path(doc["patients"][0]["report"]).read_text())
    assert report["complete"] is False and "cut short" in report["ended_by"]
    assert "half.avi cut short" in caplog.text  # the warning names the file
    whole = open_source("video", path)
    assert len(list(whole)) == 16 and whole.complete and whole.end_reason == "end of video"  # the whole file


# -- output folders and unexpected errors ----------------------------------------------------


def test_unusable_out_folders_are_clean_refusals(capfd, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "a.png"), screen())
    code, _, err = run(capfd, "scan", "--images", str(images), "--out", "/proc/nope", *ENGINE)
    assert code == 3 and "/proc/nope" in one_line(err)
    (tmp_path / "afile").write_text("x")
    code, _, err = run(capfd, "scan", "--images", str(images), "--out", str(tmp_path / "afile"), *ENGINE)
    assert code == 2 and "is a file" in one_line(err)


def test_an_internal_error_is_one_line_and_a_crash_file_without_patient_data(capfd, monkeypatch, tmp_path):
    import gout_edge.edge_runtime.sources as sources

    secret = tmp_path / PATIENT_FOLDER / "IM1.dcm"
    patient = "PATIENT-" + "4711"  # not literally in this file: the crash file quotes its code lines

    def broken(*_a, **_k):
        raise KeyError(f"boom in {secret} for {patient}")

    monkeypatch.setattr(sources, "open_source", broken)
    code, out, err = run(capfd, "scan", "--dicom", str(secret), "--patient", patient, "--out", str(tmp_path / "s"), *ENGINE)
    line = one_line(err)
    assert code == INTERNAL_ERROR_EXIT == 70 and "internal error (KeyError)" in line
    assert patient not in err and PATIENT_FOLDER not in err and out == ""
    crash = Path(line.split("details saved to ", 1)[1].split(";", 1)[0])
    assert crash.parent == tmp_path / "state" / "gout-edge"
    text = crash.read_text()
    assert "Traceback (most recent call last)" in text and "KeyError" in text and 'File "' in text
    assert patient not in text and PATIENT_FOLDER not in text and "--patient" in text


def test_third_party_logs_lose_their_tracebacks_and_pydicom_warnings_are_silenced(capfd):
    import logging
    import warnings

    from gout_edge.cli import quiet_libraries

    handler = logging.StreamHandler()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        quiet_libraries()
        try:
            raise ValueError("inner")
        except ValueError:
            logging.getLogger("somelibrary.module").error("third party", exc_info=True)  # not nncf: it may own a handler
            logging.getLogger("pydicom").exception("plugin failed")
        warnings.warn_explicit("Invalid value for VR LO: 'DOE^JOHN'", UserWarning, "valuerep.py", 1,
                               module="pydicom.valuerep")
    finally:
        root.removeHandler(handler)
    _, err = capfd.readouterr()
    assert "third party" in err and "Traceback" not in err and "plugin failed" not in err and "DOE^JOHN" not in err


def test_nncf_progress_and_prints_go_to_stderr_during_quantization(capfd):
    import logging
    import os
    import sys

    from rich.progress import track

    from gout_edge.export.quantize import stdout_to_stderr

    nncf_logger = logging.getLogger("nncf")
    handler = logging.StreamHandler(sys.stdout)  # as NNCF sets itself up
    nncf_logger.addHandler(handler)
    try:
        with stdout_to_stderr():
            for _ in track(range(3), description="Statistics collection"):
                pass
            nncf_logger.error("nncf says hello")
            print("a print")
            os.write(1, b"from C++\n")
    finally:
        nncf_logger.removeHandler(handler)
    print('{"json": true}')
    out, err = capfd.readouterr()
    assert json.loads(out) == {"json": True}
    assert "nncf says hello" in err and "a print" in err and "from C++" in err
