"""Synthetic first-MTPJ phantoms: physics, cohort rules, ground truth and the three file forms."""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from gout_edge.edge_runtime.imaging.preprocess import find_roi
from gout_edge.errors import UsageError
from gout_edge.phantom import (
    LESION_KINDS,
    VIEWS,
    contact_sheet,
    generate_cohort,
    gout_inclusion,
    make_image_spec,
    render_image,
    write_phantoms,
)
from gout_edge.phantom import _physics as physics
from gout_edge.phantom.render import image_geometry
from gout_edge.phantom.sheet import SHEET_ROWS

# ------------------------------------------------------------------ physics


def test_homogeneous_speckle_is_rayleigh():
    power = np.full((256, 512), 0.5, np.float32)
    env = physics.speckle_envelope(power, np.random.default_rng(1), pixel_mm=0.065, freq_mhz=12.0)
    ratio = env.mean() / env.std()
    assert ratio == pytest.approx(1.913, abs=0.06)  # sqrt(pi / (4 - pi))
    assert float((env**2).mean()) == pytest.approx(0.5, rel=0.05)  # the PSF keeps the power


def test_compounding_lowers_speckle_contrast():
    rng = np.random.default_rng(2)
    n_re, n_im = physics.complex_noise(rng, 256, 512)
    psf = physics.psf_kernels(0.065, 12.0)
    one = physics.envelope(n_re, n_im, psf, looks=1)
    two = physics.envelope(n_re, n_im, psf, looks=2)
    assert two.mean() / two.std() > 1.2 * (one.mean() / one.std())


def test_transmission_shadows_below_an_absorber():
    mu = np.full((100, 10), 0.05, np.float32)
    mu[40:45, :5] = 6.0  # bone in the left half
    t = physics.transmission(mu, 0.1)
    assert t[39, 0] == pytest.approx(t[39, 9])
    assert t[60, 0] < 1e-2 * t[60, 9]


# ------------------------------------------------------------------ rendering


def test_render_is_deterministic_and_sized():
    spec = make_image_spec("dorsal", ("double_contour",), seed=3)
    a, b = render_image(spec), render_image(spec)
    assert a.bmode.shape == (320, 700) and a.bmode.dtype == np.uint8
    assert np.array_equal(a.bmode, b.bmode)
    other = render_image(dataclasses.replace(spec, seed=spec.seed + 1))
    assert not np.array_equal(a.bmode, other.bmode)
    wide = render_image(spec, 400, 760)
    assert wide.bmode.shape == (400, 760)


def test_render_speed_is_reported(capsys):
    specs = [s for p in generate_cohort(2, 5) for s in p.images][:16]
    render_image(specs[0])
    t0 = time.perf_counter()
    for s in specs:
        render_image(s)
    rate = len(specs) / (time.perf_counter() - t0)
    with capsys.disabled():
        print(f"\nphantom render_image 320x700: {rate:.1f} images/s (single process)")


def test_anatomy_bone_shadow_and_noise_floor():
    for view in VIEWS:
        spec = make_image_spec(view, seed=7, tilt_deg=0.0)
        image = render_image(spec)
        g = image_geometry(spec)
        px = g.grid.pixel_mm
        c = int(g.grid.x_px(g.head_x_mm))
        bone_row = int(g.bone[c] / px)
        cortex = image.bmode[bone_row - 2 : bone_row + 4, c - 3 : c + 4].max()
        shadow = image.bmode[bone_row + int(2.0 / px) : bone_row + int(5.0 / px), c - 10 : c + 10].mean()
        tissue = image.bmode[int(g.skin_bottom[c] / px) + 5 : int(g.tendon_top[c] / px), c - 10 : c + 10].mean()
        assert cortex > 200, view  # bright cortex
        assert shadow < 0.6 * tissue, view  # acoustic shadow beneath it
        # The electronic noise floor keeps every 9x9 block of the B-mode area above the screen.
        blocks = cv2.blur(image.bmode.astype(np.float32), (9, 9))[4:-4, 4:-4]
        assert blocks.min() >= 15, view


def test_cartilage_is_anechoic_over_the_head():
    spec = make_image_spec("dorsal", seed=11, tilt_deg=0.0)
    image = render_image(spec)
    g = image_geometry(spec)
    px = g.grid.pixel_mm
    cols = np.flatnonzero(g.cartilage & (g.bone - g.cartilage_top > 0.4))
    cart, capsule = [], []
    for c in cols[::3]:
        mid = int(((g.cartilage_top[c] + g.bone[c]) / 2) / px)
        cart.append(image.bmode[mid, c])
        capsule.append(image.bmode[int(g.capsule_top[c] / px) - 6 : int(g.capsule_top[c] / px) + 2, c].max())
    assert np.mean(cart) < 0.6 * np.mean(capsule)


def _band_brightness(spec, columns=None, half_mm=1.0):
    """Mean over columns of the brightest pixel in the 0.35 mm above the cartilage surface."""
    image = render_image(spec)
    g = image_geometry(spec)
    px = g.grid.pixel_mm
    if columns is None:
        columns = np.flatnonzero(np.abs(g.grid.x_mm - g.head_x_mm) <= half_mm)
    values = [image.bmode[int((g.cartilage_top[c] - 0.35) / px) : int(g.cartilage_top[c] / px) + 1, c].max() for c in columns]
    return float(np.mean(values)), image


def _tilted(spec, tilt_deg):
    return dataclasses.replace(spec, acquisition=dataclasses.replace(spec.acquisition, tilt_deg=tilt_deg))


@pytest.mark.parametrize("seed", [0, 2])
def test_double_contour_ignores_tilt_but_interface_sign_does_not(seed):
    dc = make_image_spec("dorsal", ("double_contour",), seed=seed, tilt_deg=0.0)
    straight, image = _band_brightness(dc)
    box = next(b for b in image.lesions if b.kind == "double_contour")
    columns = np.arange(box.x0, box.x1)
    dc_0, _ = _band_brightness(dc, columns)
    dc_12, _ = _band_brightness(_tilted(dc, 12.0), columns)
    assert abs(dc_0 - dc_12) < 20

    sign = make_image_spec("dorsal", (), ("cartilage_interface",), seed=seed, tilt_deg=0.0)
    sign_0, _ = _band_brightness(sign)
    sign_12, _ = _band_brightness(_tilted(sign, 12.0))
    assert sign_0 - sign_12 > 40


@pytest.mark.parametrize("kind", LESION_KINDS)
def test_each_lesion_changes_its_box_and_stays_inside(kind):
    view = "medial" if kind == "erosion" else "dorsal"
    spec = make_image_spec(view, (kind,), seed=4, tilt_deg=0.0)
    normal = dataclasses.replace(spec, lesions=())
    image, plain = render_image(spec), render_image(normal)
    boxes = [b for b in image.lesions if b.kind == kind]
    assert len(boxes) == 1 and image.image_label == 1
    assert not plain.lesions and plain.image_label == 0
    b = boxes[0]
    assert 0 <= b.x0 < b.x1 <= 700 and 0 <= b.y0 < b.y1 <= 320
    diff = np.abs(image.bmode.astype(float) - plain.bmode)
    inside = diff[b.y0 : b.y1, b.x0 : b.x1].max(axis=0).mean()  # per column: the strongest change
    outside = diff[:, : max(1, b.x0 - 60)].max(axis=0).mean() if b.x0 > 80 else diff[:, b.x1 + 60 :].max(axis=0).mean()
    assert inside > 40 and inside > 3 * outside  # the lesion is visible where its box says


# ------------------------------------------------------------------ cohort


def test_cohort_follows_the_paper():
    cohort = generate_cohort(40, seed=1)
    assert [p.patient_id for p in cohort[:2]] == ["P0001", "P0002"]
    gout = [p for p in cohort if p.diagnosis == "gout"]
    controls = [p for p in cohort if p.diagnosis == "control"]
    assert len(gout) == 22 and len(controls) == 18
    for p in cohort:
        assert len(p.images) >= 10
        assert {im.view for im in p.images} == set(VIEWS)
    for p in gout:
        assert gout_inclusion(p.lesion_kinds), p.lesion_kinds
        typical = {f.kind for im in p.images for f in im.lesions if not f.subtle}
        assert gout_inclusion(typical)
        assert 0.3 <= p.n_lesion_images / len(p.images) <= 0.75
    for p in controls:
        assert p.n_lesion_images == 0 and not p.lesion_kinds
    assert any(im.mimics for p in controls for im in p.images)
    lesion_images = [im for p in gout for im in p.images if im.image_label]
    subtle = sum(im.subtle for im in lesion_images) / len(lesion_images)
    assert 0.08 <= subtle <= 0.25
    assert generate_cohort(40, seed=1) == cohort  # planning is deterministic


def test_gout_inclusion_rule():
    assert gout_inclusion({"tophus"})
    assert gout_inclusion({"double_contour", "erosion"})
    assert not gout_inclusion({"double_contour", "synovitis"})
    assert not gout_inclusion(set())


def test_planned_lesions_are_rendered():
    for p in generate_cohort(6, seed=9):
        for spec in p.images:
            image = render_image(spec)
            assert image.image_label == spec.image_label
            assert {b.kind for b in image.lesions} == {f.kind for f in spec.lesions}


# ------------------------------------------------------------------ files


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantom")
    summary = write_phantoms(out, 3, seed=2, formats=("png", "dicom", "video"))
    return out, summary


def _index(out: Path) -> list[dict[str, str]]:
    with (out / "index.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_png_index_and_ground_truth(written):
    out, summary = written
    assert (out / "index.csv").read_text().splitlines()[0] == "patient_id,image,image_label,diagnosis,view"
    rows = _index(out)
    assert len(rows) == summary.n_images == summary.files["png"]
    assert sum(int(r["image_label"]) for r in rows) == summary.n_lesion_images
    truth = json.loads((out / "ground_truth.json").read_text())
    images = {im["image"]: (p, im) for p in truth["patients"] for im in p["images"]}
    for r in rows:
        assert (out / r["image"]).is_file()
        p, im = images[r["image"]]
        assert r["patient_id"] == p["patient_id"] and r["diagnosis"] == p["diagnosis"] == ("gout" if p["lesions"] else "control")
        assert int(r["image_label"]) == im["image_label"] == int(bool(im["lesions"]))
        assert r["view"] == im["view"] in VIEWS
        w, h = im["bmode_size"]
        for lesion in im["lesions"]:
            x0, y0, x1, y1 = lesion["box"]
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        if r["diagnosis"] == "control":
            assert r["image_label"] == "0"
    for r in rows[::4]:
        screen = cv2.imread(str(out / r["image"]), cv2.IMREAD_GRAYSCALE)
        x0, y0, x1, y1 = images[r["image"]][1]["bmode_rect"]
        roi = find_roi(screen)
        assert max(abs(roi.x0 - x0), abs(roi.y0 - y0), abs(roi.x1 - x1), abs(roi.y1 - y1)) <= 6, (roi, (x0, y0, x1, y1))


def test_same_seed_same_bytes(written, tmp_path):
    out, _ = written
    again = write_phantoms(tmp_path, 1, seed=2, formats=("png", "dicom"))
    for rel in [r["image"] for r in _index(tmp_path)]:
        assert (tmp_path / rel).read_bytes() == (out / rel).read_bytes()
    for path in (tmp_path / "dicom" / "P0001").iterdir():
        assert path.read_bytes() == (out / "dicom" / "P0001" / path.name).read_bytes()
    assert again.n_images == len(_index(tmp_path))


def test_dicom_is_ultrasound_with_regions(written):
    import pydicom

    out, summary = written
    rows = _index(out)
    ids = {r["patient_id"] for r in rows}
    photometrics, cine_photometrics = set(), set()
    for path in sorted((out / "dicom").rglob("*.dcm")):
        ds = pydicom.dcmread(path)
        assert ds.Modality == "US" and ds.PatientID == path.parent.name and ds.PatientID in ids
        assert str(ds.PatientName) == f"PHANTOM^{ds.PatientID}"
        region = ds.SequenceOfUltrasoundRegions[0]
        assert (region.RegionSpatialFormat, region.RegionDataType) == (1, 1)
        assert (region.PhysicalUnitsXDirection, region.PhysicalUnitsYDirection) == (3, 3)
        assert 0.003 < region.PhysicalDeltaX < 0.01 and region.PhysicalDeltaX == region.PhysicalDeltaY
        pixels = ds.pixel_array
        frame = pixels[0] if path.name == "CINE.dcm" else pixels
        assert frame.shape[:2] == (ds.Rows, ds.Columns)
        gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        roi = find_roi(gray)
        assert abs(roi.x0 - region.RegionLocationMinX0) <= 6 and abs(roi.x1 - 1 - region.RegionLocationMaxX1) <= 6
        assert abs(roi.y0 - region.RegionLocationMinY0) <= 6 and abs(roi.y1 - 1 - region.RegionLocationMaxY1) <= 6
        if path.name == "CINE.dcm":
            assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.3.1" and int(ds.NumberOfFrames) == pixels.shape[0] > 1
            cine_photometrics.add(ds.PhotometricInterpretation)
        else:
            assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.6.1"
            photometrics.add(ds.PhotometricInterpretation)
            png = cv2.imread(str(out / "images" / ds.PatientID / f"{path.stem[2:]}.png"), cv2.IMREAD_GRAYSCALE)
            assert np.abs(gray.astype(float) - png).mean() < 2.0  # JPEG decodes close to the PNG
    assert photometrics == {"MONOCHROME2", "RGB", "YBR_FULL_422"}
    assert len(cine_photometrics) == 3


def test_video_reads_back_with_truth(written):
    out, summary = written
    assert summary.files["video"] == 3
    sizes = set()
    for truth_path in sorted((out / "video").glob("*.json")):
        truth = json.loads(truth_path.read_text())
        cap = cv2.VideoCapture(str(out / "video" / truth["video"]))
        frames = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
        cap.release()
        assert len(frames) == len(truth["frames"]) > 30
        w, h = truth["frame_size"]
        assert frames[0].shape == (h, w, 3)
        sizes.add((w, h))
        views = [f["view"] for f in truth["frames"]]
        assert set(views) == {*VIEWS, "transition"}
        frozen = [i for i, f in enumerate(truth["frames"]) if f["frozen"]]
        assert frozen
        for i in frozen[1:]:
            if truth["frames"][i - 1]["frozen"]:
                assert np.abs(frames[i].astype(int) - frames[i - 1]).mean() < 1.0
        x0, y0, x1, y1 = truth["bmode_rect"]
        tolerance = 2 + w // 240  # find_roi works on a 480-pixel-wide copy
        for frame, f in list(zip(frames, truth["frames"], strict=True))[::5]:
            if f["view"] != "transition":
                roi = find_roi(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
                assert max(abs(roi.x0 - x0), abs(roi.y0 - y0), abs(roi.x1 - x1), abs(roi.y1 - y1)) <= tolerance
        if truth["diagnosis"] == "control":
            assert not any(f["image_label"] for f in truth["frames"])
    assert sizes == {(1280, 720), (1920, 1080)}


def test_write_rejects_bad_values(tmp_path):
    with pytest.raises(UsageError, match="gif"):
        write_phantoms(tmp_path, 1, formats=("png", "gif"))
    with pytest.raises(UsageError, match="n_patients=0"):
        write_phantoms(tmp_path, 0)


def test_contact_sheet(tmp_path):
    path = contact_sheet(tmp_path / "sheet.png", seed=0)
    sheet = cv2.imread(str(path))
    assert sheet is not None and sheet.shape[0] > len(SHEET_ROWS) * 200
    labels = [label for label, _ in SHEET_ROWS]
    assert labels[0] == "normal" and any("gel" in label for label in labels) and len(labels) == 10


# ------------------------------------------------------------------ command line


def test_cli_phantom(tmp_path):
    from typer.testing import CliRunner

    from gout_edge.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["phantom", "--out", str(tmp_path), "--patients", "1", "--seed", "4", "--json", "--no-contact-sheet"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["n_patients"] == 1 and doc["files"]["png"] == doc["n_images"] >= 10
    assert (tmp_path / "index.csv").is_file() and not (tmp_path / "contact_sheet.png").exists()

    bad = runner.invoke(app, ["phantom", "--out", str(tmp_path), "--patients", "0"])
    assert isinstance(bad.exception, UsageError) and "--patients 0" in str(bad.exception)
    bad = runner.invoke(app, ["phantom", "--out", str(tmp_path), "--format", "png,tiff"])
    assert isinstance(bad.exception, UsageError) and "tiff" in str(bad.exception)
