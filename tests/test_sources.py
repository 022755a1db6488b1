"""Frame sources: DICOM variants and regions, grouping, folders, video files, devices, the registry."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
from support.screens import CT_IMAGE, region, screen, write_dicom, write_video

from gout_edge.edge_runtime.imaging.preprocess import Roi
from gout_edge.edge_runtime.sources import FrameSource, open_source, video_kind
from gout_edge.edge_runtime.sources.dicom import DicomSource, read_dicom_file
from gout_edge.edge_runtime.sources.video import CaptureSource
from gout_edge.errors import CaptureError, InputError, UsageError


def frames_of(source: FrameSource) -> list:
    try:
        return list(source)
    finally:
        source.close()


# -- DICOM ------------------------------------------------------------------------------------


def test_monochrome2_and_rgb_and_ybr_full_decode_to_the_written_pixels(tmp_path):
    from pydicom.pixels import convert_color_space

    grey = screen()
    rgb = np.ascontiguousarray(np.stack([grey, np.roll(grey, 1, axis=1), grey // 2], axis=-1))
    f_m2 = frames_of(open_source("dicom", write_dicom(tmp_path / "m2.dcm", [grey])))
    assert len(f_m2) == 1 and f_m2[0].still and f_m2[0].image.dtype == np.uint8
    assert np.array_equal(f_m2[0].image, grey)
    (f_rgb,) = frames_of(open_source("dicom", write_dicom(tmp_path / "rgb.dcm", [rgb], photometric="RGB")))
    assert np.array_equal(f_rgb.image, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    ybr = convert_color_space(rgb, "RGB", "YBR_FULL")
    (f_ybr,) = frames_of(open_source("dicom", write_dicom(tmp_path / "ybr.dcm", [ybr], photometric="YBR_FULL")))
    assert np.abs(f_ybr.image.astype(int) - cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)).max() <= 2


def test_jpeg_baseline_ybr_full_422_and_rle_decode(tmp_path):
    grey = screen()
    rgb = np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    (jpeg,) = frames_of(open_source("dicom", write_dicom(
        tmp_path / "jpeg.dcm", [rgb], photometric="YBR_FULL_422", syntax="1.2.840.10008.1.2.4.50")))
    assert jpeg.image.shape == (*grey.shape, 3)
    assert np.abs(jpeg.image.astype(int) - grey[:, :, None]).mean() < 3  # lossy, but grey stays grey
    (rle,) = frames_of(open_source("dicom", write_dicom(tmp_path / "rle.dcm", [grey], syntax="1.2.840.10008.1.2.5")))
    assert np.array_equal(rle.image, grey)


def test_monochrome1_is_inverted_and_16_bit_is_scaled(tmp_path):
    grey = screen()
    (m1,) = frames_of(open_source("dicom", write_dicom(tmp_path / "m1.dcm", [grey], photometric="MONOCHROME1")))
    assert np.array_equal(m1.image, 255 - grey)
    wide = (grey.astype(np.uint16) * 16)  # 12 bits stored
    (w,) = frames_of(open_source("dicom", write_dicom(tmp_path / "w.dcm", [wide], bits_stored=12)))
    assert np.abs(w.image.astype(int) - grey).max() <= 1


def test_palette_colour_goes_through_its_lookup_table(tmp_path):
    grey = screen()
    lut = np.stack([np.arange(256), np.arange(256)[::-1], np.full(256, 128)], axis=1).astype(np.uint16) * 257
    (pal,) = frames_of(open_source("dicom", write_dicom(tmp_path / "pal.dcm", [grey], photometric="PALETTE COLOR", palette=lut)))
    expected_bgr = np.stack([np.full_like(grey, 128), 255 - grey, grey], axis=-1)
    assert np.abs(pal.image.astype(int) - expected_bgr).max() <= 1


def test_a_multi_frame_cine_gives_every_frame_in_order(tmp_path):
    frames = [screen(seed=i) for i in range(5)]
    out = frames_of(open_source("dicom", write_dicom(tmp_path / "cine.dcm", frames)))
    assert [f.index for f in out] == list(range(5))
    assert all(np.array_equal(f.image, g) for f, g in zip(out, frames, strict=True))
    assert not out[0].still and out[1].timestamp_s == pytest.approx(0.05)
    assert out[4].origin == "cine.dcm frame 5"


def test_ultrasound_regions_are_clipped_to_the_image_and_fall_back_when_implausible(tmp_path, caplog):
    grey = screen()  # 240 × 320
    # the largest 2-D tissue region wins; Doppler (data type 3) and M-mode (spatial 2) items are ignored
    regions = [region(0, 0, 319, 239, data_type=3), region(0, 0, 319, 239, spatial=2), region(40, 30, 279, 199), region(5, 5, 30, 25)]
    (f,) = frames_of(open_source("dicom", write_dicom(tmp_path / "ok.dcm", [grey], regions=regions)))
    assert f.roi == Roi(40, 30, 280, 200) and f.pixel_mm == pytest.approx(0.05)
    # the one-past-the-end column and row given as the inclusive corner: clipped
    with caplog.at_level(logging.WARNING):
        (f,) = frames_of(open_source("dicom", write_dicom(tmp_path / "edge.dcm", [grey], regions=[region(40, 30, 320, 240)])))
    assert f.roi == Roi(40, 30, 320, 240)
    assert "clipped" in caplog.text and "DOE" not in caplog.text and "PX1" not in caplog.text
    # a down-sampled export: regions declared for 640 × 480 on a 320 × 240 image are rescaled by 1/2
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        (f,) = frames_of(open_source("dicom", write_dicom(tmp_path / "big.dcm", [grey], regions=[region(40, 30, 639, 479)])))
    assert f.roi == Roi(20, 15, 320, 240) and f.pixel_mm == pytest.approx(0.1)
    assert "rescaled by 1/2" in caplog.text and "DOE" not in caplog.text and "PX1" not in caplog.text
    # a region wholly outside the image: nothing plausible is left, the image is analysed instead
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        (f,) = frames_of(open_source("dicom", write_dicom(tmp_path / "out.dcm", [grey], regions=[region(400, 300, 800, 600)])))
    assert f.roi is None and "analysed instead" in caplog.text
    # no regions at all
    (f,) = frames_of(open_source("dicom", write_dicom(tmp_path / "none.dcm", [grey])))
    assert f.roi is None


def test_a_study_tree_is_grouped_by_patient_and_study(tmp_path):
    root = tmp_path / "tree"
    write_dicom(root / "b" / "1.dcm", [screen(seed=1)], patient="B", study="1.2.3.2", instance=2)
    write_dicom(root / "a" / "1.dcm", [screen(seed=2)], patient="A", study="1.2.3.1")
    write_dicom(root / "b" / "0.dcm", [screen(seed=3)], patient="B", study="1.2.3.2", instance=1)
    write_dicom(root / "c" / "x.dcm", [screen(seed=4)], patient="A", study="1.2.3.9")
    (root / "notes.txt").write_text("not DICOM")
    source = open_source("dicom", root)
    groups = source.groups()
    assert [(g.patient_id, g.files) for g in groups] == [("A", 1), ("B", 2), ("A", 1)]
    frames = frames_of(source)
    keys = [f.group for f in frames]
    assert len(set(keys)) == 3 and keys == sorted(keys, key=keys.index)  # each group contiguous
    assert [f.origin for f in frames if f.patient_id == "B"] == ["b/0.dcm", "b/1.dcm"]  # instance order
    only_b = frames_of(open_source("dicom", root, patient="B"))
    assert {f.patient_id for f in only_b} == {"B"} and len(only_b) == 2
    with pytest.raises(InputError, match="--patient"):
        open_source("dicom", root, patient="nobody")


def test_files_without_patient_id_take_the_given_one(tmp_path):
    path = write_dicom(tmp_path / "anon.dcm", [screen()], patient=None)
    (f,) = frames_of(open_source("dicom", path, patient="123"))
    assert f.patient_id == "123"


def test_non_ultrasound_dicom_is_warned_about_or_refused_with_strict(tmp_path, caplog):
    path = write_dicom(tmp_path / "ct.dcm", [screen()], sop=CT_IMAGE, modality="CT")
    with caplog.at_level(logging.WARNING):
        assert len(frames_of(open_source("dicom", path))) == 1
    assert "not ultrasound" in caplog.text and "CT Image Storage" in caplog.text
    with pytest.raises(InputError, match="not ultrasound.*--strict") as err:
        open_source("dicom", path, strict=True)
    assert err.value.exit_code == 3
    # a screen grab stored as Secondary Capture counts when its modality is US
    sc = write_dicom(tmp_path / "sc.dcm", [screen()], sop="1.2.840.10008.5.1.4.1.1.7")
    assert len(frames_of(open_source("dicom", sc, strict=True))) == 1


def test_a_missing_decoder_is_named_with_what_to_install(tmp_path):
    from pydicom.pixels import get_decoder

    jpeg_ls = "1.2.840.10008.1.2.4.80"
    if get_decoder(jpeg_ls).is_available:  # pragma: no cover - depends on the environment
        pytest.skip("a JPEG-LS decoder is installed here")
    path = write_dicom(tmp_path / "jls.dcm", [screen()], syntax=jpeg_ls)
    with pytest.raises(InputError, match="JPEG-LS.*not installed.*pip install pyjpegls") as err:
        open_source("dicom", path)
    assert err.value.exit_code == 3
    made_up = write_dicom(tmp_path / "odd.dcm", [screen()], syntax="1.2.826.0.1.3680043.10.999.1")
    with pytest.raises(InputError, match="transfer syntax .* cannot be decoded"):
        open_source("dicom", made_up)


def test_bad_dicom_inputs_are_input_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no DICOM files"):
        open_source("dicom", tmp_path / "empty")
    with pytest.raises(InputError, match="not found"):
        open_source("dicom", tmp_path / "missing")
    text = tmp_path / "plain.txt"
    text.write_text("hello")
    with pytest.raises(InputError, match="not a DICOM file"):
        open_source("dicom", text)
    from pydicom.dataset import Dataset, FileMetaDataset

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"  # a structured report
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = "1.2.840.10008.5.1.4.1.1.88.11", "1.2.3.4", "SR"
    ds.save_as(tmp_path / "sr.dcm", enforce_file_format=True)
    with pytest.raises(InputError, match="holds no image"):
        open_source("dicom", tmp_path / "sr.dcm")
    truncated = tmp_path / "cut.dcm"
    truncated.write_bytes(write_dicom(tmp_path / "whole.dcm", [screen()]).read_bytes()[:400])
    with pytest.raises(InputError):
        list(open_source("dicom", truncated))


def test_phantom_dicom_studies_decode_with_their_regions(phantom_dir):
    source = open_source("dicom", phantom_dir / "dicom")
    groups = source.groups()
    assert [g.patient_id for g in groups] == ["P0001", "P0002"]
    photometrics = {f.photometric for f in source.files}
    assert photometrics == {"MONOCHROME2", "RGB", "YBR_FULL_422"}
    frames = frames_of(source)
    assert len(frames) == sum(g.frames for g in groups)
    assert sum(not f.still for f in frames) == 24  # two 12-frame cines
    for f in frames:
        assert f.roi is not None and f.roi.width > 300
        if f.image.ndim == 3:  # grey B-mode stored as colour stays grey inside the region
            crop = f.image[f.roi.y0 : f.roi.y1, f.roi.x0 : f.roi.x1].astype(int)
            assert np.abs(crop[:, :, 0] - crop[:, :, 2]).mean() < 3


# -- folders of images ------------------------------------------------------------------------


def test_an_image_folder_groups_by_sub_folder_and_skips_damaged_files(phantom_dir, tmp_path, caplog):
    source = open_source("images", phantom_dir / "images")
    assert [g.patient_id for g in source.groups()] == ["P0001", "P0002"]
    frames = frames_of(open_source("images", phantom_dir / "images", patient="P0002"))
    assert {f.patient_id for f in frames} == {"P0002"} and all(f.still for f in frames)
    folder = tmp_path / "imgs"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), screen())
    cv2.imwrite(str(folder / "b.jpg"), screen(seed=1))
    write_dicom(folder / "c.dcm", [screen(seed=2)], regions=[region(40, 30, 279, 199)])
    (folder / "d.png").write_bytes(b"\x89PNG not really")
    (folder / "readme.txt").write_text("ignored")
    with caplog.at_level(logging.WARNING):
        frames = frames_of(open_source("images", folder, patient="123"))
    assert [f.origin for f in frames] == ["a.png", "b.jpg", "c.dcm"]
    assert frames[2].roi == Roi(40, 30, 280, 200) and {f.patient_id for f in frames} == {"123"}
    assert "skipped d.png" in caplog.text
    with pytest.raises(InputError, match="d.png"):
        frames_of(open_source("images", folder, strict=True))
    with pytest.raises(InputError, match="not a readable PNG or JPEG"):
        frames_of(open_source("images", folder / "d.png"))
    with pytest.raises(InputError, match="not a PNG, JPEG or DICOM"):
        open_source("images", folder / "readme.txt")
    (tmp_path / "void").mkdir()
    with pytest.raises(InputError, match="empty"):
        open_source("images", tmp_path / "void")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.txt").write_text("x")
    (notes / "b.csv").write_text("x")
    with pytest.raises(InputError, match=r"'notes' has no images among its 2 file\(s\) \(\.csv, \.txt\)") as err:
        open_source("images", notes)
    assert "empty" not in str(err.value)


def test_loose_images_beside_patient_folders_are_left_out_with_a_log_line(tmp_path, caplog):
    """What ``gout-edge phantom`` writes — images/<patient>/*.png and contact_sheet.png at the top —
    is one exam per patient: the contact sheet is no patient of its own."""
    from gout_edge.phantom import contact_sheet, write_phantoms

    write_phantoms(tmp_path, 2, seed=0, formats=("png",))
    contact_sheet(tmp_path / "contact_sheet.png", seed=0)
    with caplog.at_level(logging.INFO):
        source = open_source("images", tmp_path)
    assert [g.patient_id for g in source.groups()] == ["P0001", "P0002"]
    assert "1 image file(s) at its top level left out (contact_sheet.png)" in caplog.text
    assert all("contact_sheet" not in f.origin for f in frames_of(source))
    alone = tmp_path / "images" / "P0001"  # a folder without sub-folders: its own loose files are the exam
    assert [g.patient_id for g in open_source("images", alone, patient="X").groups()] == ["X"]


# -- video files, devices and the registry ----------------------------------------------------


def test_a_video_file_gives_every_frame_with_timestamps(tmp_path):
    path = write_video(tmp_path / "clip.avi", n=12)
    source = open_source("video", path, patient="123")
    assert not source.live
    frames = frames_of(source)
    assert [f.index for f in frames] == list(range(12))
    assert frames[0].image.shape == (240, 320, 3) and frames[0].patient_id == "123"
    assert frames[5].timestamp_s == pytest.approx(5 / 25.0, abs=1e-3)
    assert source.end_reason == "end of video" and not source.lost


def test_bad_video_inputs_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        open_source("video", tmp_path / "nope.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 10)
    with pytest.raises(InputError, match="could not be opened as a video") as err:
        open_source("video", junk)
    assert err.value.exit_code == 3


@pytest.mark.parametrize("target", ["/dev/video99", "99"])
def test_a_missing_capture_device_is_a_capture_error_saying_what_to_check(target):
    with pytest.raises(CaptureError, match=r"/dev/video99 does not exist.*ls /dev/video") as err:
        open_source("v4l2", target)
    assert err.value.exit_code == 5


class FlakyCapture:
    """A cv2.VideoCapture stand-in that gives ``n`` frames and then nothing."""

    def __init__(self, n: int) -> None:
        self.left = n

    def read(self):
        if self.left <= 0:
            return False, None
        self.left -= 1
        return True, screen(seed=self.left)

    def get(self, prop):
        return 30.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self):
        pass


def test_a_lost_live_capture_is_retried_with_back_off_then_reported_lost():
    opens = []

    def opener():
        opens.append(1)
        if len(opens) == 1:
            return FlakyCapture(3)
        if len(opens) == 2:
            return FlakyCapture(2)  # the first reconnect brings two more frames
        raise CaptureError("still gone")

    source = CaptureSource(opener, "capture device test", live=True, backoff_s=(0.01, 0.01, 0.01))
    frames = frames_of(source)
    assert len(frames) == 5 and [f.index for f in frames] == list(range(5))
    assert source.lost and "capture lost" in source.end_reason and "3 reconnect attempts" in source.end_reason
    assert len(opens) == 2 + 3  # the first open, one good reconnect, three failed ones


def test_the_registry_and_video_kind():
    assert video_kind("/dev/video0") == "v4l2" and video_kind("0") == "v4l2"
    assert video_kind("clip.mp4") == "video" and video_kind("rtsp://cart/stream") == "video"
    with pytest.raises(UsageError, match="unknown frame source"):
        open_source("webcam", "x")


def test_a_header_gives_patient_sop_class_and_frames(tmp_path):
    path = write_dicom(tmp_path / "IM1.dcm", [screen()], patient="SECRET-ID")
    info = read_dicom_file(path)
    assert info.patient_id == "SECRET-ID" and info.ultrasound and info.frames == 1
    assert isinstance(open_source("dicom", path), DicomSource)
