"""The verification record: checks with their measured values and tolerances, the device and the
bundle's identity. ``to_dict()`` is what ``gout-edge verify --out`` writes. No patient data: the
host name is hashed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import platform
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gout_edge._io import sha256_file, to_json
from gout_edge._version import __version__
from gout_edge.edge_runtime.inference.device import device_info
from gout_edge.edge_runtime.inference.loading import default_bundle_path
from gout_edge.edge_runtime.inference.shipped import default_bundle
from gout_edge.manifest import MANIFEST_NAME, Manifest, read_manifest
from gout_edge.signing import SIGNATURE_NAME, configured_public_key

__all__ = ["Check", "VerificationRecord", "bundle_record", "default_bundle_record", "device_record", "refused_record",
           "utc_now"]

RECORD_FORMAT = "gout-edge-verification"

RECORD_VERSION = 1


@dataclass(frozen=True)
class Check:
    """One verification check: what was measured, against what tolerance, and the verdict."""

    name: str
    group: str  # integrity | reference | decisions | latency
    passed: bool
    measured: Any
    tolerance: Any
    detail: str = ""
    skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class VerificationRecord:
    """The outcome of ``verify_bundle``; ``to_dict()`` is the JSON record written to disk."""

    status: str  # passed | failed | refused
    created_utc: str
    device: dict[str, Any]
    bundle: dict[str, Any]
    options: dict[str, Any]
    checks: tuple[Check, ...]
    error: str | None = None
    default_bundle: dict[str, Any] | None = None  # which shipped bundle was the default here, and why (no bundle given)
    format: str = RECORD_FORMAT
    format_version: int = RECORD_VERSION

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.passed)

    def to_dict(self) -> dict[str, Any]:
        return to_json({
            "format": self.format,
            "format_version": self.format_version,
            "status": self.status,
            "created_utc": self.created_utc,
            "device": self.device,
            "bundle": self.bundle,
            "default_bundle": self.default_bundle,
            "options": self.options,
            "summary": {
                "checks": len(self.checks),
                "passed": sum(c.passed and not c.skipped for c in self.checks),
                "failed": len(self.failures),
                "skipped": sum(c.skipped for c in self.checks),
                "failed_checks": [c.name for c in self.failures],
            },
            "checks": [c.to_dict() for c in self.checks],
            "error": self.error,
        })


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def device_record() -> dict[str, Any]:

    info = device_info()
    return {
        "node_sha256": hashlib.sha256(platform.node().encode("utf-8")).hexdigest()[:16],
        "machine": info.machine,
        "system": info.system,
        "cpu_model": info.cpu_model,
        "logical_cores": info.logical_cores,
        "physical_cores": info.physical_cores,
        "cpu_features": list(info.features),
        "backends": list(info.backends),
        "versions": {"gout_edge": __version__, **info.versions},
    }


def bundle_record(root: Path, manifest: Manifest | None, key: Path | None, checked: bool) -> dict[str, Any]:

    manifest_path = root / MANIFEST_NAME
    out: dict[str, Any] = {
        "path": str(root),
        "manifest_sha256": sha256_file(manifest_path) if manifest_path.is_file() else None,
        "signed": (root / SIGNATURE_NAME).is_file(),
        "signature_checked": checked,
        "public_key_sha256": hashlib.sha256(key.read_bytes()).hexdigest() if key is not None and key.is_file() else None,
    }
    if manifest is not None:
        m = manifest.model
        out.update({
            "model": {"name": m.name, "version": m.version, "architecture": m.architecture, "blocks": m.blocks,
                      "checkpoint_sha256": m.checkpoint_sha256},
            "files": {e.path: {"role": e.role, "sha256": e.sha256} for e in manifest.files},
            "decision": dataclasses.asdict(manifest.decision),
        })
    return out


def default_bundle_record(path: Path | str | None) -> dict[str, Any] | None:
    """The record's ``default_bundle``: which shipped bundle is the default on this device and why,
    when no bundle was given (``path`` None); None otherwise."""
    return None if path is not None else default_bundle().to_dict()


def refused_record(path: Path | str | None, error: Exception, public_key: Path | str | None = None,
                   options: dict[str, Any] | None = None) -> VerificationRecord:
    """The record of a bundle refused before any output was compared (invalid or tampered)."""


    root = Path(path) if path is not None else default_bundle_path()
    key = configured_public_key(public_key)
    manifest = None
    try:

        manifest = read_manifest(root)
    except Exception:  # noqa: BLE001 - the record describes what could be read
        pass
    check = Check("bundle", "integrity", False, "refused", "a valid bundle: signature and every file's SHA-256 match", str(error))
    return VerificationRecord(
        status="refused", created_utc=utc_now(), device=device_record(),
        bundle=bundle_record(root, manifest, key, key is not None), options=dict(options or {}),
        checks=(check,), error=str(error), default_bundle=default_bundle_record(path),
    )

