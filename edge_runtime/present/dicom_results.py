"""An exam's result as DICOM: a structured report and secondary captures (docs/design.md §12).

Every closed exam session writes, into ``<session>/dicom/``:

- ``SR.dcm``: a Comprehensive SR holding a TID 1500 Measurement Report (highdicom). One
  measurement group (TID 1501) carries the coded verdict (SNOMED CT Gout 90560007: Present,
  Absent or Indeterminate), the abnormal fraction, the patient threshold (DCM 122411), the image
  cut-off, the key-frame counts and the frames left out by reason (blank, colour, repeated, scored
  but not a key frame, dropped), the algorithm's identity (TID 4019: bundle name and version,
  with the checkpoint SHA-256, the bundle identity, the engine and the decision settings as
  parameters, as the IHE AI Results profile asks) and, for DICOM input, the key images by SOP
  Instance UID (and frame number in a cine) as the group's source images. The report's
  Qualitative Evaluations (TID 1500 rows 12–14) say why, where the threshold came from, the
  decision rule and the intended use — "NOT FOR CLINICAL USE" for a bundle trained on phantoms.
  An Image Library (TID 1600) lists the secondary captures. Codes without a standard equivalent
  use the private scheme ``99GOUTEDGE``, declared in the Coding Scheme Identification Sequence.
- ``SC_summary.dcm`` and ``SC_overlay_NN_keyKKKK.dcm``: Secondary Capture images (highdicom) of
  ``summary.png`` and of the CAM overlays of the most abnormal key frames; an overlay of a DICOM
  frame names it in its Source Image Sequence.

DICOM input: the objects join the source's patient and study (copied from the frames'
``SourceInstance``), in two new series (SR and SC) with new UIDs. Other input: a new study for the
patient named with ``--patient`` (``StudyIdentity.create``). Files are written atomically with
``dicom_write.write_dataset``, the one DICOM file writer.

Text from outside is data (``imaging.text``): every patient, study and source attribute is
cleaned for its VR before it is copied (control characters, backslashes, lengths, character
set; a date that is no date is left empty), and a UID that is not valid (``../``, letters, too
long) is replaced by one derived from it — the same one for every object of the study — and
recorded: the attributes' names (never their values) in the SR's "Source values corrected", in
``DicomResults.corrected`` and in one log line. highdicom's and pydicom's warnings about values
quote the values, so they are silenced here. A study scanned again after it changed gives a new
SR that names the earlier ones in its Predecessor Documents Sequence (``predecessors``); the
input files an exam left out are listed, with why, in the SR's "Files left out".
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from gout_edge.edge_runtime.imaging.dicom_identity import SourceInstance, StudyIdentity
from gout_edge.edge_runtime.imaging.dicom_write import write_dataset
from gout_edge.edge_runtime.imaging.text import clean_line, clean_uid, dicom_value
from gout_edge.edge_runtime.pipeline.results import BundleIdentity, PatientResult

__all__ = [
    "DICOM_DIR",
    "SCHEME",
    "DicomResults",
    "KeyImage",
    "result_files",
    "write_dicom_results",
]

# highdicom narrates every attribute it copies at INFO; the cart's log keeps to its own lines
if logging.getLogger("highdicom").level == logging.NOTSET:
    logging.getLogger("highdicom").setLevel(logging.WARNING)


def _silence_value_warnings() -> None:
    """highdicom's and pydicom's warnings about a value quote it, and values here are patient
    attributes (docs/design.md §8): ignored. Set again before each write (idempotent: ``warnings``
    keeps one copy of a filter), since a ``catch_warnings`` block elsewhere restores the filters."""
    warnings.filterwarnings("ignore", module=r"(highdicom|pydicom)(\.|$)")


_silence_value_warnings()

log = logging.getLogger(__name__)

DICOM_DIR = "dicom"  # inside the session folder
SCHEME = "99GOUTEDGE"  # private coding scheme (the "99" prefix marks a local scheme)
SR_SERIES_NUMBER = 9101
SC_SERIES_NUMBER = 9102
# the summary capture (text) is RLE Lossless: 1000 × 1100 px is 0.8–1.0 MB instead of 3.3 MB, every
# pixel of its text kept; a CAM overlay (ultrasound speckle, which RLE cannot shrink) is JPEG
# Baseline: 110 kB instead of 0.75 MB (RLE) or 1.1 MB, mean difference 0.6 grey levels. send falls
# back to uncompressed for a PACS that refuses either.
SUMMARY_TRANSFER_SYNTAX = "1.2.840.10008.1.2.5"  # RLE Lossless
OVERLAY_TRANSFER_SYNTAX = "1.2.840.10008.1.2.4.50"  # JPEG Baseline (Process 1)
MANUFACTURER = "gout-edge"
NOT_FOR_CLINICAL_USE = "NOT FOR CLINICAL USE"

# SNOMED CT and DICOM codes (PS3.16): the finding and its presence
GOUT = ("90560007", "SCT", "Gout")
PRESENCE = {
    "gout": ("52101004", "SCT", "Present"),
    "no gout": ("272519000", "SCT", "Absent"),
    "indeterminate": ("82334004", "SCT", "Indeterminate"),
}
PROCEDURE = ("16310003", "SCT", "Diagnostic ultrasonography")
THRESHOLD = ("122411", "DCM", "Threshold Value")
SOURCE_FOR_PROCESSING = ("121322", "DCM", "Source image for image processing operation")
QUALITATIVE_EVALUATIONS = ("C0034", "NCIt", "Qualitative Evaluations")
UNITLESS = ("1", "UCUM", "no units")
FRAMES = ("{frames}", "UCUM", "frames")

# the private codes: value (at most 16 characters), meaning
LOCAL = {
    "fraction": ("ABN-FRACTION", "Abnormal fraction of key frames"),
    "cutoff": ("IMAGE-CUTOFF", "Image probability cut-off"),
    "key_frames": ("KEY-FRAMES", "Key frames"),
    "abnormal_key_frames": ("ABN-KEY-FRAMES", "Abnormal key frames"),
    "min_key_frames": ("MIN-KEY-FRAMES", "Minimum key frames for a verdict"),
    "frames_seen": ("FRAMES-SEEN", "Frames seen"),
    "frames_scored": ("FRAMES-SCORED", "Frames scored"),
    "blank": ("EXCL-BLANK", "Frames left out: blank"),
    "colour": ("EXCL-COLOUR", "Frames left out: colour (Doppler)"),
    "scope": ("EXCL-SCOPE", "Frames left out: out of scope"),
    "repeated": ("EXCL-REPEATED", "Frames left out: repeated frame"),
    "not_key": ("EXCL-NOT-KEY", "Frames left out: scored but not a key frame"),
    "dropped": ("EXCL-DROPPED", "Frames left out: dropped by the capture"),
    "reason": ("REASON", "Reason for the verdict"),
    "left_out": ("FILES-LEFT-OUT", "Files left out"),
    "corrected": ("SOURCE-CORRECTED", "Source values corrected"),
    "threshold_source": ("THRESHOLD-SOURCE", "Source of the patient threshold"),
    "rule": ("DECISION-RULE", "Decision rule"),
    "intended_use": ("INTENDED-USE", "Intended use"),
}


@dataclass(frozen=True)
class KeyImage:
    """A CAM overlay PNG to capture: which key frame it shows and the source frame, if DICOM."""

    path: Path
    key_index: int
    probability: float
    source: SourceInstance | None = None


@dataclass(frozen=True)
class DicomResults:
    """What ``write_dicom_results`` wrote."""

    sr: Path
    sc: tuple[Path, ...]
    study_uid: str
    sr_series_uid: str
    sc_series_uid: str
    sr_sop_uid: str
    referenced_sources: int  # source instances (frames) the SR references
    corrected: tuple[str, ...] = ()  # source attributes (keywords) cleaned or replaced; never their values
    predecessors: int = 0  # earlier SRs of the study this one supersedes

    @property
    def paths(self) -> tuple[Path, ...]:
        return (self.sr, *self.sc)


def _code(triple: tuple[str, str, str]) -> Any:
    from highdicom.sr import CodedConcept

    value, scheme, meaning = triple
    return CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def _local(name: str) -> Any:
    value, meaning = LOCAL[name]
    return _code((value, SCHEME, meaning))


def _version() -> str:
    from gout_edge._version import __version__

    return str(__version__)


_PLAIN = str.maketrans({"≤": "<=", "≥": ">=", "→": "->", "–": "-", "—": "-", "…": "...", "·": "|", "×": "x"})


def _plain(text: str) -> str:
    """Our own texts in Latin-1 (typographic signs spelt out), so they fit either character set; one
    line (``clean_line``), since some carry values from the bundle or file names."""
    return clean_line(text).translate(_PLAIN).encode("latin-1", "replace").decode("latin-1")


# the VR of each StudyIdentity field (PS3.6), for cleaning before a value is copied
_STUDY_VRS = {"patient_id": "LO", "patient_name": "PN", "issuer_of_patient_id": "LO", "patient_birth_date": "DA",
              "patient_sex": "CS", "study_date": "DA", "study_time": "TM", "study_id": "SH", "accession_number": "SH",
              "referring_physician_name": "PN", "study_description": "LO", "laterality": "CS"}
_KEYWORDS = {"study_uid": "StudyInstanceUID", "patient_id": "PatientID", "patient_name": "PatientName",
             "issuer_of_patient_id": "IssuerOfPatientID", "patient_birth_date": "PatientBirthDate",
             "patient_sex": "PatientSex", "study_date": "StudyDate", "study_time": "StudyTime", "study_id": "StudyID",
             "accession_number": "AccessionNumber", "referring_physician_name": "ReferringPhysicianName",
             "study_description": "StudyDescription", "laterality": "Laterality"}


def clean_study(study: StudyIdentity) -> tuple[StudyIdentity, list[str]]:
    """``study`` with every attribute valid for its VR and a valid Study Instance UID; the keywords
    of the attributes that changed (never their values)."""
    changed: list[str] = []
    values: dict[str, str] = {}
    for name, vr in _STUDY_VRS.items():
        raw = str(getattr(study, name) or "")
        value = dicom_value(raw, vr)
        if name == "patient_sex" and value not in ("M", "F", "O"):
            value = ""
        if name == "laterality" and value not in ("R", "L"):
            value = ""
        if value != raw.strip() and not (name in ("patient_sex", "laterality") and not raw.strip()):
            changed.append(_KEYWORDS[name])
        values[name] = value
    uid, replaced = clean_uid(study.study_uid)
    if replaced:
        changed.insert(0, "StudyInstanceUID")
    return replace(study, study_uid=uid, **values), changed


def clean_source(source: SourceInstance) -> tuple[SourceInstance, list[str]]:
    """A source instance with valid UIDs (replaced ones derived from the invalid value) and a frame
    number that is one; the keywords of what was replaced."""
    study, changed = clean_study(source.study)
    uids = {}
    for name, keyword in (("series_uid", "SeriesInstanceUID"), ("sop_class_uid", "SOPClassUID"),
                          ("sop_instance_uid", "SOPInstanceUID")):
        uids[name], replaced = clean_uid(getattr(source, name))
        if replaced:
            changed.append(keyword)
    frame = source.frame_number
    if frame is not None and not (isinstance(frame, int) and 0 < frame < 2**31):
        frame = None
        changed.append("ReferencedFrameNumber")
    return replace(source, study=study, frame_number=frame, **uids), changed


def _lo(text: str, limit: int = 64) -> str:
    """A value for an LO element (at most 64 characters, no backslash)."""
    return _plain(text).replace("\\", "/")[:limit].strip()


def _intended_use(bundle: BundleIdentity) -> str:
    use = bundle.intended_use.strip() or "Research software."
    if bundle.not_for_clinical_use:
        use = f"{NOT_FOR_CLINICAL_USE}. {use}"
    provenance = bundle.provenance.strip()
    return _plain(f"{use} Training data: {provenance}" if provenance else use)


def _series_description(kind: str, research: bool) -> str:
    text = f"gout-edge {kind}"
    return _lo(f"{text} - {NOT_FOR_CLINICAL_USE}" if research else text)


def _device_uid(bundle: BundleIdentity) -> str:
    from pydicom.uid import generate_uid

    return str(generate_uid(entropy_srcs=["gout-edge device", bundle.identity,
                                          bundle.checkpoint_sha256]))


def _rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"{path.name} cannot be read as an image")
    return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))


def _describe(ds: Any, study: StudyIdentity, series_description: str, bundle: BundleIdentity) -> None:
    """The study and series description and the software identity every result object carries."""
    if study.issuer_of_patient_id:
        ds.IssuerOfPatientID = study.issuer_of_patient_id
    if study.study_description:
        ds.StudyDescription = _lo(study.study_description)
    ds.SeriesDescription = series_description
    ds.ManufacturerModelName = _lo(bundle.name)
    ds.SoftwareVersions = [_lo(f"gout-edge {_version()}"), _lo(f"bundle {bundle.version}")]


def _secondary_capture(rgb: np.ndarray, study: StudyIdentity, series_uid: str, number: int, *,
                       description: str, comments: str, research: bool, bundle: BundleIdentity,
                       source: SourceInstance | None, when: datetime, burned_in: bool, lossy: bool = False) -> Any:
    from highdicom import UID
    from highdicom.sc import SCImage
    from pydicom.dataset import Dataset

    ident = study.to_dataset()
    sc = SCImage(
        pixel_array=rgb, photometric_interpretation="YBR_FULL_422" if lossy else "RGB", bits_allocated=8,
        coordinate_system="PATIENT", patient_orientation=("L", "F"),  # cleared below: a screen has none
        study_instance_uid=study.study_uid, series_instance_uid=series_uid, series_number=SC_SERIES_NUMBER,
        sop_instance_uid=UID(), instance_number=number, manufacturer=MANUFACTURER,
        patient_id=ident.PatientID, patient_name=ident.PatientName, patient_birth_date=ident.PatientBirthDate,
        patient_sex=ident.PatientSex or None, accession_number=ident.AccessionNumber, study_id=ident.StudyID,
        study_date=ident.StudyDate or None, study_time=ident.StudyTime or None,
        referring_physician_name=ident.ReferringPhysicianName,
        laterality=study.laterality if study.laterality in ("R", "L") else None,
        specific_character_set=study.character_set,
        transfer_syntax_uid=OVERLAY_TRANSFER_SYNTAX if lossy else SUMMARY_TRANSFER_SYNTAX,
    )
    sc.PatientOrientation = ""  # type 2: a screen capture has no patient orientation
    if "Laterality" not in sc:
        sc.Laterality = ""  # type 2C: unknown (video input, or a source that does not say)
    _describe(sc, study, _series_description("key images (CAM)", research), bundle)
    sc.ContentDate = when.strftime("%Y%m%d")
    sc.ContentTime = when.strftime("%H%M%S")
    # the summary draws the patient and exam identity; CAM overlays carry labels only
    sc.BurnedInAnnotation = "YES" if burned_in else "NO"
    if lossy:  # PS3.3 C.7.6.1.1.5: say that the pixels are not the original ones
        sc.LossyImageCompression = "01"
        sc.LossyImageCompressionMethod = "ISO_10918_1"
        encoded = len(sc.PixelData)
        sc.LossyImageCompressionRatio = f"{rgb.nbytes / max(1, encoded):.2f}"[:16]
    sc.DerivationDescription = _plain(description)[:1024]
    sc.ImageComments = _plain(comments)[:10240]
    if source is not None:
        item = Dataset()
        item.ReferencedSOPClassUID = source.sop_class_uid
        item.ReferencedSOPInstanceUID = source.sop_instance_uid
        if source.frame_number is not None:
            item.ReferencedFrameNumber = source.frame_number
        purpose = Dataset()
        purpose.CodeValue, purpose.CodingSchemeDesignator, purpose.CodeMeaning = SOURCE_FOR_PROCESSING
        item.PurposeOfReferenceCodeSequence = [purpose]
        sc.SourceImageSequence = [item]
    return sc


def _evidence_stub(source: SourceInstance) -> Any:
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.StudyInstanceUID = source.study.study_uid
    ds.SeriesInstanceUID = source.series_uid
    ds.SOPClassUID = source.sop_class_uid
    ds.SOPInstanceUID = source.sop_instance_uid
    return ds


def _measurements(result: PatientResult) -> list[Any]:
    from highdicom.sr import Measurement

    unitless, frames = _code(UNITLESS), _code(FRAMES)
    values: list[tuple[Any, float | int | None, Any]] = [
        (_local("fraction"), result.abnormal_fraction, unitless),
        (_code(THRESHOLD), result.threshold, unitless),
        (_local("cutoff"), result.image_cutoff, unitless),
        (_local("key_frames"), result.key_frames, frames),
        (_local("abnormal_key_frames"), result.abnormal_key_frames, frames),
        (_local("min_key_frames"), result.min_key_frames, frames),
        (_local("frames_seen"), result.frames_seen, frames),
        (_local("frames_scored"), result.frames_scored, frames),
        (_local("blank"), result.blank_frames, frames),
        (_local("colour"), result.colour_frames, frames),
        (_local("scope"), result.out_of_scope_frames, frames),
        (_local("repeated"), result.duplicates, frames),
        (_local("not_key"), result.not_key_frames, frames),
        (_local("dropped"), result.dropped, frames),
    ]
    out = []
    for name, value, unit in values:
        if value is None:  # no key frames, or no calibrated threshold: the reason says so
            continue
        out.append(Measurement(name=name, value=value, unit=unit))
    return out


def _algorithm(result: PatientResult) -> Any:
    from highdicom.sr import AlgorithmIdentification

    b = result.bundle
    parameters = [
        f"checkpoint SHA-256 {b.checkpoint_sha256}",
        f"bundle {b.identity}",
        f"engine {b.backend or 'unknown'} {b.precision or ''}".strip(),
        f"image cut-off {result.image_cutoff:g}",
        "patient threshold " + ("not calibrated" if result.threshold is None else f"{result.threshold:g}"),
        f"minimum key frames {result.min_key_frames}",
        f"gout-edge {_version()}",
    ]
    return AlgorithmIdentification(name=_lo(b.name or "gout-edge"), version=_lo(b.version),
                                   parameters=[_plain(p)[:1024] for p in parameters], manufacturer=MANUFACTURER)


def _structured_report(result: PatientResult, study: StudyIdentity, series_uid: str, sc_datasets: Sequence[Any],
                       sources: Sequence[SourceInstance], research: bool, corrected: Sequence[str] = (),
                       previous: Sequence[Any] = ()) -> Any:
    from highdicom import UID
    from highdicom.sr import (
        ComprehensiveSR,
        ContainerContentItem,
        DeviceObserverIdentifyingAttributes,
        MeasurementReport,
        MeasurementsAndQualitativeEvaluations,
        ObservationContext,
        ObserverContext,
        QualitativeEvaluation,
        RelationshipTypeValues,
        SourceImageForMeasurementGroup,
        TextContentItem,
        TrackingIdentifier,
    )
    from pydicom.dataset import Dataset
    from pydicom.sr.codedict import codes

    b = result.bundle
    algorithm = _algorithm(result)
    observer = ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=DeviceObserverIdentifyingAttributes(
            uid=_device_uid(b), name="gout-edge", manufacturer_name=MANUFACTURER,
            model_name=_lo(f"{b.name} {b.version}".strip()),
        ),
    )
    group = MeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(uid=UID(), identifier=_lo(f"gout-edge vote, session {result.session_id}")),
        algorithm_id=algorithm,
        measurements=_measurements(result),
        qualitative_evaluations=[QualitativeEvaluation(_code(GOUT), _code(PRESENCE[result.diagnosis]))],
        source_images=[SourceImageForMeasurementGroup(s.sop_class_uid, s.sop_instance_uid,
                                                      None if s.frame_number is None else [s.frame_number])
                       for s in sources] or None,
    )
    report = MeasurementReport(
        observation_context=ObservationContext(observer_device_context=observer),
        procedure_reported=_code(PROCEDURE),
        imaging_measurements=[group],
        referenced_images=list(sc_datasets) or None,
    )
    # TID 1500 rows 12 and 14: qualitative evaluations of the whole subject, in words
    evaluations = ContainerContentItem(name=_code(QUALITATIVE_EVALUATIONS), relationship_type=RelationshipTypeValues.CONTAINS)
    texts = [
        ("reason", str(result.reason)),
        ("threshold_source", result.threshold_source or "not recorded"),
        ("rule", "abnormal fraction of key frames > patient threshold: gout; otherwise no gout; "
                 f"fewer than {result.min_key_frames} key frames or an uncalibrated bundle: indeterminate"),
        ("intended_use", _intended_use(b)),
    ]
    left_out = [f"{clean_line(getattr(f, 'name', None) or getattr(f, 'file', None) or f, 120)}: "
                f"{clean_line(getattr(f, 'reason', ''), 400)}" for f in result.skipped_files]
    if left_out:  # study-level resilience: what the verdict did not see, and why
        texts.append(("left_out", f"{len(left_out)} input file(s) not used: " + "; ".join(left_out)))
    if corrected:
        texts.append(("corrected", "not valid DICOM in the source, cleaned or replaced in these objects: "
                      + ", ".join(dict.fromkeys(corrected))))
    evaluations.ContentSequence = [
        TextContentItem(name=_local(k), value=_plain(v)[:10240], relationship_type=RelationshipTypeValues.CONTAINS)
        for k, v in texts
    ]
    report[0].ContentSequence.append(evaluations)

    evidence = [*sc_datasets, *(_evidence_stub(s) for s in sources)]
    sr = ComprehensiveSR(
        evidence=evidence, content=report[0], series_instance_uid=series_uid, series_number=SR_SERIES_NUMBER,
        sop_instance_uid=UID(), instance_number=1, manufacturer=MANUFACTURER,
        is_complete=result.complete, is_final=False, is_verified=False,
        specific_character_set=study.character_set, previous_versions=list(previous) or None,
    )
    _describe(sr, study, _series_description("AI result (structured report)", research), b)
    scheme = Dataset()
    scheme.CodingSchemeDesignator = SCHEME
    scheme.CodingSchemeName = "gout-edge result codes"
    scheme.CodingSchemeResponsibleOrganization = "gout-edge project"
    sr.CodingSchemeIdentificationSequence = [scheme]
    return sr


def _previous(paths: Sequence[Path], study_uid: str) -> list[Any]:
    """The earlier SRs of this study (headers) that a new SR supersedes; others are left out."""
    import pydicom

    out = []
    for path in paths:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            if str(ds.StudyInstanceUID) == study_uid and str(ds.SOPClassUID) == COMPREHENSIVE_SR:
                out.append(ds)
        except Exception as exc:  # a predecessor that cannot be read is not named; the new SR still is written
            log.warning("DICOM results: earlier SR %s cannot be read (%s); not named as predecessor",
                        Path(path).name, type(exc).__name__)
    return out


COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"


def write_dicom_results(result: PatientResult, *, study: StudyIdentity | None = None,
                        key_sources: Sequence[SourceInstance | None] = (), overlays: Sequence[KeyImage] = (),
                        out_dir: Path | None = None, predecessors: Sequence[Path] = ()) -> DicomResults:
    """Write the SR and SC objects of one exam into ``out_dir`` (default ``<session>/dicom``).

    ``study``: the source's patient and study (None: a new study for ``result.patient_id``).
    ``key_sources``: the source instance of each key frame (None where it has none), referenced
    by the SR. ``overlays``: the CAM overlays to capture; ``result.summary`` is captured too.
    ``predecessors``: SR files of earlier scans of the same study, which this SR supersedes.
    Every value taken from outside is cleaned for its VR first (``clean_study``, ``clean_source``).
    """
    _silence_value_warnings()
    when = datetime.now()
    if study is None:
        study = StudyIdentity.create(result.patient_id, when)
    else:
        study = study.with_patient(result.patient_id)
    study, corrected = clean_study(study)
    out_dir = Path(out_dir) if out_dir is not None else result.session_dir / DICOM_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    research = result.bundle.not_for_clinical_use
    from highdicom import UID

    sc_series, sr_series = str(UID()), str(UID())
    note = f"{NOT_FOR_CLINICAL_USE}: research software; the model was trained on synthetic phantoms. " if research else ""
    name = f"{result.bundle.name} {result.bundle.version}".strip()
    fraction = "n/a" if result.abnormal_fraction is None else f"{result.abnormal_fraction:.3f}"
    written: list[tuple[Path, Any]] = []
    if result.summary is not None and Path(result.summary).is_file():
        ds = _secondary_capture(
            _rgb(result.summary), study, sc_series, 1, research=research, bundle=result.bundle, source=None, when=when,
            burned_in=True,
            description=f"gout-edge exam summary: verdict, most abnormal key frames with their CAM, key-frame probabilities ({name})",
            comments=f"{note}Verdict {result.diagnosis} (abnormal fraction {fraction} over {result.key_frames} key frames).",
        )
        written.append((out_dir / "SC_summary.dcm", ds))
    for rank, k in enumerate(overlays, 1):
        ds = _secondary_capture(
            _rgb(k.path), study, sc_series, rank + 1, research=research, bundle=result.bundle, source=None if k.source is None else clean_source(k.source)[0], when=when,
            burned_in=False, lossy=True,
            description=f"class activation map (abnormal class) of key frame {k.key_index + 1} over its B-mode region ({name})",
            comments=f"{note}Key frame {k.key_index + 1}: probability of a gout lesion {k.probability:.3f}.",
        )
        written.append((out_dir / f"SC_overlay_{rank:02d}_key{k.key_index + 1:04d}.dcm", ds))

    seen: set[tuple[str, int | None]] = set()
    sources: list[SourceInstance] = []
    for s in key_sources:
        if s is None:
            continue
        s, changed = clean_source(s)
        corrected.extend(c for c in changed if c not in corrected)
        if (s.sop_instance_uid, s.frame_number) not in seen:
            seen.add((s.sop_instance_uid, s.frame_number))
            sources.append(s)
    sc_datasets = [ds for _, ds in written]
    if not sc_datasets and not sources:  # an SR needs evidence: fall back on the study alone
        raise ValueError("no summary, overlay or source image to reference; nothing to report as DICOM")
    previous = _previous(predecessors, study.study_uid)
    sr = _structured_report(result, study, sr_series, sc_datasets, sources, research, corrected, previous)
    sc_paths = tuple(write_dataset(ds, path) for path, ds in written)
    sr_path = write_dataset(sr, out_dir / "SR.dcm")
    if corrected:
        log.warning("session %s: source values that are not valid DICOM were cleaned or replaced in its SR and "
                    "SC: %s", result.session_id, ", ".join(dict.fromkeys(corrected)))
    return DicomResults(sr=sr_path, sc=sc_paths, study_uid=study.study_uid, sr_series_uid=sr_series,
                        sc_series_uid=sc_series, sr_sop_uid=str(sr.SOPInstanceUID), referenced_sources=len(sources),
                        corrected=tuple(dict.fromkeys(corrected)), predecessors=len(previous))


def result_files(target: str | Path) -> list[Path]:
    """The DICOM result objects under ``target``: a ``.dcm`` file itself; a session folder's
    ``dicom/*.dcm``; a folder of session folders, each one's (SR first, then the captures)."""
    target = Path(target).expanduser()
    if target.is_file():
        return [target]
    if not target.is_dir():
        return []
    own = target / DICOM_DIR
    if own.is_dir():
        files = sorted(own.glob("*.dcm"), key=lambda p: (p.name != "SR.dcm", p.name))
        return [p for p in files if not p.name.startswith(".")]
    found: list[Path] = []
    for child in sorted(p for p in target.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if (child / DICOM_DIR).is_dir():
            found.extend(result_files(child))
    return found
