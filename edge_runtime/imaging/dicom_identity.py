"""Who and what a DICOM result belongs to: the patient and study of the source, and each source
instance a key frame came from (docs/design.md §12).

``StudyIdentity`` carries the Patient and General Study attributes that a result object copies
so that it files beside the images it describes; ``SourceInstance`` names one source image (and
frame of a multi-frame cine) by its UIDs, for the references of the structured report and the
Source Image Sequence of a secondary capture. The DICOM frame source attaches a
``SourceInstance`` to every frame it yields (``Frame.dicom``); other sources attach none, and an
exam without one gets a new study (``StudyIdentity.new``).

Patient attributes are kept out of ``repr`` so that a stray log line cannot show them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

__all__ = ["SourceInstance", "StudyIdentity", "study_key"]


def study_key(study_uid: str) -> str:
    """A short pseudonym of a study for logs and folder names (16 hex digits of its SHA-256)."""
    return hashlib.sha256(study_uid.encode("ascii", "replace")).hexdigest()[:16]


def _text(ds: Any, keyword: str) -> str:
    value = ds.get(keyword, "") if hasattr(ds, "get") else getattr(ds, keyword, "")
    return "" if value is None else str(value).strip()


@dataclass(frozen=True)
class StudyIdentity:
    """The Patient and General Study attributes a result copies (empty string: absent)."""

    study_uid: str
    patient_id: str = field(default="", repr=False)
    patient_name: str = field(default="", repr=False)
    issuer_of_patient_id: str = field(default="", repr=False)
    patient_birth_date: str = field(default="", repr=False)
    patient_sex: str = field(default="", repr=False)
    study_date: str = ""
    study_time: str = ""
    study_id: str = field(default="", repr=False)
    accession_number: str = field(default="", repr=False)
    referring_physician_name: str = field(default="", repr=False)
    study_description: str = ""
    laterality: str = ""  # of the source series (R or L: which foot), copied into the captures
    new: bool = False  # made for this exam (video, images), not taken from a source

    @classmethod
    def from_dataset(cls, ds: Any) -> StudyIdentity | None:
        """From a source file's header (pydicom ``Dataset``); None without a Study Instance UID."""
        study_uid = _text(ds, "StudyInstanceUID")
        if not study_uid:
            return None
        return cls(
            study_uid=study_uid,
            patient_id=_text(ds, "PatientID"),
            patient_name=_text(ds, "PatientName"),
            issuer_of_patient_id=_text(ds, "IssuerOfPatientID"),
            patient_birth_date=_text(ds, "PatientBirthDate"),
            patient_sex=_text(ds, "PatientSex"),
            study_date=_text(ds, "StudyDate"),
            study_time=_text(ds, "StudyTime"),
            study_id=_text(ds, "StudyID"),
            accession_number=_text(ds, "AccessionNumber"),
            referring_physician_name=_text(ds, "ReferringPhysicianName"),
            study_description=_text(ds, "StudyDescription"),
            laterality=_text(ds, "Laterality") or _text(ds, "ImageLaterality"),
        )

    @classmethod
    def create(cls, patient_id: str | None, when: datetime | None = None,
               description: str = "MTP1 ultrasound (gout-edge bedside exam)") -> StudyIdentity:
        """A new study for an exam without DICOM input (video, capture, image folder): the patient
        named on the command line (``--patient``), the date and time of the exam."""
        from pydicom.uid import generate_uid

        when = when or datetime.now()
        return cls(
            study_uid=str(generate_uid()),
            patient_id=(patient_id or "").strip(),
            study_date=when.strftime("%Y%m%d"),
            study_time=when.strftime("%H%M%S"),
            study_id=when.strftime("%y%m%d%H%M%S"),
            study_description=description,
            new=True,
        )

    def with_patient(self, patient_id: str | None) -> StudyIdentity:
        """The same study with ``patient_id`` filled in when the source left Patient ID empty."""
        if self.patient_id or not patient_id:
            return self
        return replace(self, patient_id=patient_id)

    @property
    def character_set(self) -> str:
        """ISO_IR 100 (Latin-1) when every attribute fits in it, else ISO_IR 192 (UTF-8)."""
        text = "".join(str(v) for v in vars(self).values())
        try:
            text.encode("latin-1")
        except UnicodeEncodeError:
            return "ISO_IR 192"
        return "ISO_IR 100"

    def to_dataset(self) -> Any:
        """The attributes as a pydicom ``Dataset`` (Patient and General Study modules)."""
        from pydicom.dataset import Dataset

        ds = Dataset()
        ds.SpecificCharacterSet = self.character_set
        ds.PatientName = self.patient_name
        ds.PatientID = self.patient_id
        if self.issuer_of_patient_id:
            ds.IssuerOfPatientID = self.issuer_of_patient_id
        ds.PatientBirthDate = self.patient_birth_date
        ds.PatientSex = self.patient_sex
        ds.StudyInstanceUID = self.study_uid
        ds.StudyDate = self.study_date
        ds.StudyTime = self.study_time
        ds.StudyID = self.study_id
        ds.AccessionNumber = self.accession_number
        ds.ReferringPhysicianName = self.referring_physician_name
        if self.study_description:
            ds.StudyDescription = self.study_description
        return ds


@dataclass(frozen=True)
class SourceInstance:
    """One source image: its study, series and SOP UIDs, and the frame (1-based) of a multi-frame."""

    study: StudyIdentity = field(repr=False)
    series_uid: str
    sop_class_uid: str
    sop_instance_uid: str
    frame_number: int | None = None
