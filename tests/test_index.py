"""The index table (docs/design.md §10), image loading, patient folds and the AUC."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from gout_edge.calibration.folds import fold_of, patient_folds
from gout_edge.calibration.index import IndexTableError, read_index
from gout_edge.calibration.stats import auc, confusion, mean_sd
from gout_edge.edge_runtime.sources.images import load_image
from gout_edge.errors import DataError, InputError, UsageError

HEADER = "patient_id,image,image_label,diagnosis,view\n"


def _png(path: Path, value: int = 100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((24, 32), value, np.uint8))


def _table(tmp_path: Path, body: str, images: tuple[str, ...] = ()) -> Path:
    for name in images:
        _png(tmp_path / name)
    csv = tmp_path / "index.csv"
    csv.write_text(HEADER + body, encoding="utf-8")
    return csv


# ---------------------------------------------------------------------------- the table


def test_a_good_table_reads_with_absolute_paths_and_patients(tmp_path):
    csv = _table(
        tmp_path,
        "p1,img/a.png,1,gout,dorsal\n"
        "p1,img/b.png,0,GOUT,\n"
        "p2,img/c.png,0,control,Plantar\n",
        images=("img/a.png", "img/b.png", "img/c.png"),
    )
    table = read_index(csv)
    assert len(table) == 3
    assert [r.line for r in table.rows] == [2, 3, 4]
    assert all(r.image.is_absolute() and r.image.is_file() for r in table.rows)
    assert table.rows[1].diagnosis == "gout" and table.rows[1].view is None
    assert table.rows[2].view == "plantar"
    assert table.labels.tolist() == [1, 0, 0]
    patients = table.patients()
    assert [(p.patient_id, p.diagnosis, p.rows) for p in patients] == [
        ("p1", "gout", (0, 1)), ("p2", "control", (2,))
    ]
    assert [p.label for p in patients] == [1, 0]
    assert table.relative(table.rows[0]) == "img/a.png"
    assert len(table.sha256) == 64


def test_every_problem_is_reported_once_with_its_line(tmp_path):
    csv = _table(
        tmp_path,
        "p1,a.png,1,gout,dorsal\n"  # 2: fine
        "p1,missing.png,1,gout,dorsal\n"  # 3: file missing
        "p2,b.png,yes,control,\n"  # 4: unknown label
        "p3,c.png,0,pseudogout,\n"  # 5: unknown diagnosis
        "p4,d.png,0,control,lateral\n"  # 6: unknown view
        "p5,e.png,1,gout,\n"  # 7: p5 gout …
        "p5,f.png,0,control,\n"  # 8: … and control
        "p6,g.png,0,control,\n"  # 9: fine
        "p6,g.png,0,control,\n"  # 10: duplicate of line 9
        "\n"  # 11: blank line, ignored
        ",h.png,0,control,\n"  # 12: empty patient id
        "p7,notes.txt,0,control,\n"  # 13: not an image format
        "p8,i.png,0,control\n",  # 14: too few fields
        images=tuple(f"{c}.png" for c in "abcdefghi"),
    )
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(IndexTableError) as info:
        read_index(csv)
    err = info.value
    assert isinstance(err, DataError) and err.exit_code == 3
    by_line = {p.line: p for p in err.problems}
    assert sorted(by_line) == [3, 4, 5, 6, 7, 10, 12, 13, 14]
    assert len(err.problems) == 9
    assert "not found" in by_line[3].message and by_line[3].column == "image"
    assert by_line[4].column == "image_label" and "'yes'" in by_line[4].message
    assert by_line[5].column == "diagnosis" and "pseudogout" in by_line[5].message
    assert by_line[6].column == "view" and "lateral" in by_line[6].message
    assert "two diagnoses" in by_line[7].message and "line(s) 8" in by_line[7].message
    assert "already listed on line 9" in by_line[10].message
    assert by_line[12].column == "patient_id"
    assert "not PNG, JPEG or DICOM" in by_line[13].message
    assert "has 4 field(s)" in by_line[14].message
    text = str(err)
    assert "9 problems" in text
    for line in by_line:
        assert f"line {line}" in text
    # patient identifiers stay out of the message
    for pid in ("p1", "p5", "p6"):
        assert f"{pid}," not in text and f"'{pid}'" not in text


def test_missing_columns_are_reported_at_the_header(tmp_path):
    csv = tmp_path / "index.csv"
    csv.write_text("patient_id,image,label\np1,a.png,1\n", encoding="utf-8")
    with pytest.raises(IndexTableError) as info:
        read_index(csv)
    (problem,) = info.value.problems
    assert problem.line == 1
    assert "image_label" in problem.message and "diagnosis" in problem.message
    assert "view" in problem.message


@pytest.mark.parametrize("content", ["", HEADER, HEADER + "\n\n"])
def test_an_empty_table_is_an_error(tmp_path, content):
    csv = tmp_path / "index.csv"
    csv.write_text(content, encoding="utf-8")
    with pytest.raises(IndexTableError, match="empty|no rows"):
        read_index(csv)


def test_a_missing_table_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_index(tmp_path / "nope.csv")


def test_bom_and_crlf_are_accepted(tmp_path):
    _png(tmp_path / "a.png")
    csv = tmp_path / "index.csv"
    csv.write_bytes(("\ufeff" + HEADER + "p1,a.png,1,gout,medial\n").replace("\n", "\r\n").encode())
    assert read_index(csv).rows[0].view == "medial"


# ---------------------------------------------------------------------------- images


def test_png_jpeg_and_16_bit_png_load_as_uint8(tmp_path):
    grey = (np.arange(40 * 60).reshape(40, 60) % 256).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "g.png"), grey)
    cv2.imwrite(str(tmp_path / "c.jpg"), np.dstack([grey, grey, grey]))
    cv2.imwrite(str(tmp_path / "w.png"), grey.astype(np.uint16) * 257)
    assert np.array_equal(load_image(tmp_path / "g.png"), grey)
    jpg = load_image(tmp_path / "c.jpg")
    assert jpg.shape == (40, 60, 3) and jpg.dtype == np.uint8
    assert np.array_equal(load_image(tmp_path / "w.png"), grey)


def test_unreadable_images_name_the_file(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(InputError, match="bad.png"):
        load_image(bad)
    with pytest.raises(InputError, match="gone.png"):
        load_image(tmp_path / "gone.png")
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"\0" * 300)
    with pytest.raises(InputError, match="junk.dcm"):
        load_image(junk)


def _write_dicom(path: Path, pixels: np.ndarray, photometric: str, frames: int = 1) -> None:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, UltrasoundImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UltrasoundImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = UltrasoundImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    ds.Rows, ds.Columns = pixels.shape[-3:-1] if pixels.shape[-1] == 3 else pixels.shape[-2:]
    ds.SamplesPerPixel = 3 if photometric in ("RGB", "YBR_FULL") else 1
    if ds.SamplesPerPixel == 3:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = ds.BitsStored = 8 * pixels.dtype.itemsize
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_dicom_monochrome_rgb_ybr_and_multiframe_load(tmp_path):
    from pydicom.pixels import convert_color_space

    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (30, 40), dtype=np.uint8)
    _write_dicom(tmp_path / "m2.dcm", grey, "MONOCHROME2")
    _write_dicom(tmp_path / "m1", grey, "MONOCHROME1")  # no extension: sniffed
    assert np.array_equal(load_image(tmp_path / "m2.dcm"), grey)
    assert np.array_equal(load_image(tmp_path / "m1"), 255 - grey)

    rgb = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    _write_dicom(tmp_path / "rgb.dcm", rgb, "RGB")
    assert np.array_equal(load_image(tmp_path / "rgb.dcm"), rgb[:, :, ::-1])

    smooth = np.dstack([np.full((30, 40), v, np.uint8) for v in (200, 120, 40)])
    _write_dicom(tmp_path / "ybr.dcm", convert_color_space(smooth, "RGB", "YBR_FULL"), "YBR_FULL")
    ybr = load_image(tmp_path / "ybr.dcm")
    assert np.abs(ybr.astype(int) - smooth[:, :, ::-1]).max() <= 2

    frames = np.stack([grey, 255 - grey])
    _write_dicom(tmp_path / "cine.dcm", frames, "MONOCHROME2", frames=2)
    assert np.array_equal(load_image(tmp_path / "cine.dcm"), grey)

    wide = (grey.astype(np.uint16) * 257)
    _write_dicom(tmp_path / "w.dcm", wide, "MONOCHROME2")
    assert np.abs(load_image(tmp_path / "w.dcm").astype(int) - grey).max() <= 1


def test_a_dicom_row_reads_through_the_table(tmp_path):
    _write_dicom(tmp_path / "a.dcm", np.full((20, 20), 9, np.uint8), "MONOCHROME2")
    csv = _table(tmp_path, "p1,a.dcm,0,control,\n")
    (row,) = read_index(csv).rows
    assert load_image(row.image).max() == 9


# ---------------------------------------------------------------------------- folds


def _cohort(n_gout: int = 13, n_control: int = 9):
    ids = [f"g{i:02d}" for i in range(n_gout)] + [f"c{i:02d}" for i in range(n_control)]
    dx = ["gout"] * n_gout + ["control"] * n_control
    return ids, dx


def test_folds_are_stratified_patient_disjoint_and_complete():
    ids, dx = _cohort()
    folds = patient_folds(ids, dx, 5, seed=3)
    assert len(folds) == 5
    flat = [p for f in folds for p in f]
    assert sorted(flat) == sorted(ids) and len(flat) == len(set(flat))
    sizes = [len(f) for f in folds]
    assert max(sizes) - min(sizes) <= 1
    for cls in ("g", "c"):
        per = [sum(p.startswith(cls) for p in f) for f in folds]
        assert max(per) - min(per) <= 1
    assert set(fold_of(folds)) == set(ids)


def test_folds_are_deterministic_and_independent_of_order():
    ids, dx = _cohort()
    a = patient_folds(ids, dx, 5, seed=1)
    b = patient_folds(ids[::-1], dx[::-1], 5, seed=1)
    assert a == b == patient_folds(ids, dx, 5, seed=1)
    assert a != patient_folds(ids, dx, 5, seed=2)


def test_folds_accept_per_image_lists_and_reject_bad_input():
    ids, dx = _cohort(4, 4)
    assert patient_folds(ids * 3, dx * 3, 2) == patient_folds(ids, dx, 2)
    with pytest.raises(UsageError):
        patient_folds(ids, dx, 1)
    with pytest.raises(DataError):
        patient_folds(ids[:3], dx[:3], 5)
    with pytest.raises(DataError):
        patient_folds(["a", "a", "b"], ["gout", "control", "gout"], 2)


# ---------------------------------------------------------------------------- statistics


def _brute_auc(labels, scores) -> float:
    pos = [s for y, s in zip(labels, scores, strict=True) if y == 1]
    neg = [s for y, s in zip(labels, scores, strict=True) if y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", range(6))
def test_auc_equals_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 60))
    labels = rng.integers(0, 2, n)
    labels[0], labels[1] = 0, 1
    scores = rng.integers(0, 6, n) / 5.0  # many ties
    assert auc(labels, scores) == pytest.approx(_brute_auc(labels, scores), abs=1e-12)


def test_auc_edge_cases():
    assert auc([0, 1], [0.2, 0.2]) == 0.5
    assert auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert auc([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4]) == 0.0
    assert math.isnan(auc([1, 1], [0.3, 0.4]))
    with pytest.raises(ValueError):
        auc([0, 1, 2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError):
        auc([0, 1], [0.1])


def test_confusion_rates_and_mean_sd():
    c = confusion([1, 1, 1, 0, 0], [1, 1, 0, 0, 1])
    assert (c.tp, c.fn, c.tn, c.fp) == (2, 1, 1, 1)
    assert c.accuracy == pytest.approx(3 / 5)
    assert c.sensitivity == pytest.approx(2 / 3) and c.specificity == pytest.approx(1 / 2)
    assert math.isnan(confusion([0, 0], [0, 1]).sensitivity)
    mean, sd = mean_sd([1.0, 2.0, 3.0, float("nan")])
    assert mean == 2.0 and sd == pytest.approx(1.0)
