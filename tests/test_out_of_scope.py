"""The out-of-scope test set: every category and kind, deterministic per seed, realistic screens
that the runtime's preprocessing reads as it reads a scanner's (the image area is found, Doppler
is flagged colour), non-ultrasound without speckle, and files that hash the same on every run."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from gout_edge.edge_runtime.imaging.preprocess import find_roi, prepare, to_gray
from gout_edge.errors import UsageError
from gout_edge.phantom import (
    OUT_OF_SCOPE_CATEGORIES,
    OutOfScopeImage,
    generate_out_of_scope,
    write_out_of_scope,
)
from gout_edge.phantom import out_of_scope as oos

ROOT = Path(__file__).resolve().parents[1]
ONE_PER_CATEGORY = ("cardiac_sector", "doppler_carotid", "off_joint", "xray")


@pytest.fixture(scope="module")
def images() -> list[OutOfScopeImage]:
    return generate_out_of_scope(seed=3, per_category=1)


def _speckle(image: OutOfScopeImage) -> float:
    """Median local contrast (grey levels) inside the region ``prepare`` crops, after a blur of
    one pixel: speckle grains survive it, a photograph's sensor noise or a page's scan noise do not."""
    roi = prepare(image.screen).roi
    grey, _ = to_gray(image.screen)
    g = cv2.GaussianBlur(grey[roi.y0 : roi.y1, roi.x0 : roi.x1].astype(np.float32), (0, 0), 1.0)
    mean, mean_sq = cv2.blur(g, (9, 9)), cv2.blur(g * g, (9, 9))
    return float(np.median(np.sqrt(np.maximum(mean_sq - mean * mean, 0))))


def test_every_category_and_kind_is_there(images):
    assert set(OUT_OF_SCOPE_CATEGORIES) == {"other_anatomy", "doppler", "near_miss", "non_ultrasound"}
    expected = {(c, k) for c, kinds in OUT_OF_SCOPE_CATEGORIES.items() for k in kinds}
    assert {(im.category, im.kind) for im in images} == expected
    assert len(images) == len(expected)
    assert {"cardiac_sector", "obstetric", "abdominal", "muscle"} <= set(OUT_OF_SCOPE_CATEGORIES["other_anatomy"])
    assert {"gain_high", "gain_low", "depth_extreme", "off_joint", "heavy_noise"} == set(OUT_OF_SCOPE_CATEGORIES["near_miss"])
    assert {"photo", "document", "xray", "screenshot"} == set(OUT_OF_SCOPE_CATEGORIES["non_ultrasound"])
    assert all(im.note for im in images)


def test_screens_are_uint8_images_of_screen_size(images):
    for im in images:
        s = im.screen
        assert s.dtype == np.uint8 and (s.ndim == 2 or (s.ndim == 3 and s.shape[2] == 3)), (im.kind, s.shape)
        h, w = s.shape[:2]
        assert 480 <= h <= 2000 and 640 <= w <= 2000, (im.kind, s.shape)
        assert 2 < float(s.mean()) < 250, im.kind  # neither empty nor blown out as a whole screen
    assert any(im.screen.ndim == 2 for im in images if not im.ultrasound)  # some grey (radiograph, scans)


def test_the_same_seed_gives_the_same_pixels_and_another_seed_others(images):
    again = generate_out_of_scope(seed=3, per_category=1, kinds=ONE_PER_CATEGORY)
    first = {im.kind: im for im in images}
    for im in again:
        assert np.array_equal(im.screen, first[im.kind].screen), im.kind
        assert im.note == first[im.kind].note and im.bmode_rect == first[im.kind].bmode_rect
    other = generate_out_of_scope(seed=4, per_category=1, kinds=ONE_PER_CATEGORY)
    assert all(not np.array_equal(a.screen, first[a.kind].screen) for a in other)


def test_variants_differ():
    a, b = generate_out_of_scope(seed=0, per_category=2, kinds=("cardiac_sector",))
    assert (a.variant, b.variant) == (0, 1) and a.note != b.note  # another view (four-chamber, short axis)


def test_the_runtime_finds_the_ultrasound_image_area(images):
    for im in images:
        if not im.ultrasound:
            assert im.bmode_rect is None
            continue
        grey, _ = to_gray(im.screen)
        roi = find_roi(grey)
        assert roi is not None, im.kind
        x0, y0, x1, y1 = im.bmode_rect
        tol = int(np.ceil(im.screen.shape[1] / 480)) * 3  # find_roi works on a 480-wide copy
        assert roi.x0 >= x0 - tol and roi.y0 >= y0 - tol and roi.x1 <= x1 + tol and roi.y1 <= y1 + tol, (im.kind, roi)
        # a sector or convex fan: the runtime keeps the rows at least half filled, a part of the box
        assert roi.width * roi.height >= 0.25 * (x1 - x0) * (y1 - y0), (im.kind, roi)
        prepared = prepare(im.screen)
        assert not prepared.blank, im.kind


def test_doppler_screens_are_flagged_colour_and_grey_ones_are_not(images):
    for im in images:
        if not im.ultrasound:
            continue
        colour = prepare(im.screen).colour
        assert colour == (im.category == "doppler") == im.colour, (im.kind, colour)


def test_non_ultrasound_has_no_speckle(images):
    speckled = [_speckle(im) for im in images if im.category in ("other_anatomy", "doppler")]
    flat = {im.kind: _speckle(im) for im in images if im.category == "non_ultrasound"}
    assert min(speckled) > 5.0, speckled
    assert max(flat.values()) < 0.5 * min(speckled), flat


def test_near_misses_are_mtp_screens_gone_wrong(images):
    near = {im.kind: im for im in images if im.category == "near_miss"}
    area = {k: to_gray(im.screen)[0][im.bmode_rect[1] : im.bmode_rect[3], im.bmode_rect[0] : im.bmode_rect[2]]
            for k, im in near.items()}
    assert area["gain_high"].mean() > 170  # almost white
    assert area["gain_low"].mean() < 30  # almost black
    assert "no bone line" in near["off_joint"].note and "depth" in near["depth_extreme"].note


def test_written_files_hash_the_same_on_every_run(tmp_path):
    kinds = ("doppler_thyroid", "gain_low", "document")

    def run(out: Path) -> dict[str, str]:
        summary = write_out_of_scope(out, seed=5, per_category=1, formats=("png", "dicom"), kinds=kinds)
        assert summary.out_dir == out / "out_of_scope" and summary.n_images == len(kinds)
        root = summary.out_dir
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
                if p.is_file()}

    a, b = run(tmp_path / "a"), run(tmp_path / "b")
    assert a == b
    assert set(a) == {"index.json", "doppler/doppler_thyroid_0.png", "doppler/doppler_thyroid_0.dcm",
                      "near_miss/gain_low_0.png", "near_miss/gain_low_0.dcm", "non_ultrasound/document_0.png"}
    index = json.loads((tmp_path / "a" / "out_of_scope" / "index.json").read_text())
    assert index["seed"] == 5 and index["per_category"] == 1
    assert {f["path"] for f in index["files"]} == set(a) - {"index.json"}
    assert all(f["category"] and f["kind"] for f in index["files"])
    assert {e["form"] for e in index["exams"]} == {"images", "dicom"}


def test_dicom_files_carry_the_region_and_keep_doppler_in_colour(tmp_path):
    import pydicom

    summary = write_out_of_scope(tmp_path, seed=1, per_category=2, formats=("dicom",), kinds=("doppler_kidney",))
    paths = sorted(summary.out_dir.rglob("*.dcm"))
    assert len(paths) == 2
    for path in paths:
        ds = pydicom.dcmread(path)
        assert ds.Modality == "US" and ds.PhotometricInterpretation != "MONOCHROME2"
        assert ds.BodyPartExamined == "KIDNEY" and len(ds.SequenceOfUltrasoundRegions) == 1
        frame = ds.pixel_array
        assert frame.ndim == 3 and frame.shape[2] == 3


def test_clips_move_and_are_written_as_exams(tmp_path):
    frames = list(oos.clip_frames("cardiac_sector", seed=0, variant=0, seconds=0.5))
    assert len(frames) == 6 and len({f.shape for f in frames}) == 1
    assert not np.array_equal(frames[0], frames[3])  # the probe slides, the heart beats
    still = generate_out_of_scope(seed=0, per_category=1, kinds=("cardiac_sector",))[0]
    assert frames[0].shape == still.screen.shape
    with pytest.raises(UsageError):
        oos.clip_frames("photo", seed=0, variant=0)
    assert oos.CLIP_SECONDS >= 3  # an exam of a few seconds
    summary = write_out_of_scope(tmp_path, seed=0, per_category=1, formats=("video",), kinds=("gain_high",),
                                 clip_seconds=1.0)
    index = json.loads(summary.index.read_text())
    (video,) = index["files"]
    assert video["form"] == "video" and video["frames"] == oos.FPS
    path = summary.out_dir / video["path"]
    capture = cv2.VideoCapture(str(path))
    ok, frame = capture.read()
    capture.release()
    assert ok and frame.shape[:2] == generate_out_of_scope(0, 1, kinds=("gain_high",))[0].screen.shape[:2]
    assert index["exams"] == [{"exam": "near_miss/gain_high/video_0", "category": "near_miss", "kind": "gain_high",
                               "form": "video", "files": [video["path"]], "frames": video["frames"], "fps": oos.FPS}]


def test_bad_arguments_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="per_category"):
        generate_out_of_scope(seed=0, per_category=0)
    with pytest.raises(UsageError, match="not known"):
        generate_out_of_scope(seed=0, per_category=1, kinds=("knee",))
    with pytest.raises(UsageError):
        write_out_of_scope(tmp_path, seed=0, per_category=1, formats=("gif",))


def test_cli_writes_the_set_and_the_sheet(tmp_path, monkeypatch, capsys):
    from gout_edge.cli import app, main

    monkeypatch.setattr(oos, "CATEGORIES", {"near_miss": ("gain_low",), "non_ultrasound": ("screenshot",)})
    runner = CliRunner()
    out = runner.invoke(app, ["phantom", "--out", str(tmp_path), "--out-of-scope", "--per-category", "2", "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["n_images"] == 4 and doc["by_category"] == {"near_miss": 2, "non_ultrasound": 2}
    assert Path(doc["contact_sheet"]).is_file() and Path(doc["index"]).is_file()
    assert (tmp_path / "out_of_scope" / "near_miss" / "gain_low_1.png").is_file()
    capsys.readouterr()
    assert main(["phantom", "--out", str(tmp_path / "x"), "--per-category", "2"]) == 2
    assert "--out-of-scope" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_the_documented_sheet_is_small_and_there():
    sheet = ROOT / "docs" / "out-of-scope-sheet.png"
    assert sheet.is_file() and sheet.stat().st_size < 300_000
    img = cv2.imread(str(sheet))
    assert img is not None and img.shape[1] >= 1000
