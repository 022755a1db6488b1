"""Open a bundle on the cart: validate the manifest and check every file's SHA-256 (torch-free).

The runtime reads nothing but what the manifest lists, and refuses a file whose hash differs.
**The engines run the bytes that were hashed**: ``open_bundle`` reads each file once, hashes
those bytes and keeps the model files' bytes in the ``Bundle``; the backends load models from
these bytes (``Bundle.model_bytes``), never from the path again, so a file swapped on disk after
the check is never run. Every path the manifest lists is resolved (symbolic links followed) and
must stay inside the bundle's folder.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gout_edge.errors import BundleError, BundleTamperedError
from gout_edge.manifest import MANIFEST_NAME, SCOPE_ROLE, FileEntry, Manifest, Role, read_manifest
from gout_edge.reference_format import REFERENCE_ROLE, ReferenceOutputs, decode_cam, reference_section
from gout_edge.signing import configured_public_key, verify_manifest_signature

__all__ = ["MODEL_ROLES", "Bundle", "default_bundle_path", "load_expected", "open_bundle", "read_verified", "reference_file",
           "verify_files"]

# The files an engine (or the scope guard) loads; their checked bytes stay in memory with the Bundle
# (a few MB to tens).
MODEL_ROLES = frozenset({Role.ONNX_FP32, Role.ONNX_INT8, Role.OPENVINO_INT8, Role.OPENVINO_INT8_BIN, SCOPE_ROLE})


@dataclass(frozen=True)
class Bundle:
    """An opened bundle: its folder, its manifest and the checked bytes of its model files
    (``blobs``, by role; empty for a bundle assembled in memory by ``export``)."""

    root: Path
    manifest: Manifest
    blobs: Mapping[str, bytes] = field(default_factory=dict, repr=False, compare=False)

    def path(self, role: str) -> Path:
        """Absolute path of the file with ``role``, for reports and tools; engines load
        ``model_bytes(role)`` instead, the bytes whose hash was checked."""
        return self.root / self.manifest.file(role).path

    def has(self, role: str) -> bool:
        return role in self.manifest.roles()

    def model_bytes(self, role: str) -> bytes:
        """The bytes of the file with ``role`` whose SHA-256 matched the manifest: those read when
        the bundle opened, or (for a bundle made in memory) read once now and checked."""
        data = self.blobs.get(role)
        if data is not None:
            return data
        return read_verified(self.root, self.manifest.file(role))

    @property
    def identity(self) -> str:
        m = self.manifest.model
        return f"{m.name} {m.version} ({m.blocks} stages, checkpoint {m.checkpoint_sha256[:12]})"


def default_bundle_path() -> Path:
    """The bundle a command opens when none is given: the shipped bundle made for this device's CPU
    (``shipped.default_bundle``: the paper's model, or the compact one on a cart without VNNI)."""
    from .shipped import default_bundle

    return default_bundle().path


def _inside(root: Path, entry: FileEntry) -> Path:
    """The entry's file, resolved (symbolic links followed); refused when it leaves ``root``."""
    rel = Path(entry.path)
    if rel.is_absolute() or ".." in rel.parts:
        raise BundleError(f"manifest file path {entry.path!r} leaves the bundle directory; refused")
    base = root.resolve()
    try:
        path = (base / rel).resolve()
    except (OSError, RuntimeError):  # a symlink loop
        raise BundleError(f"bundle file {entry.path} ({entry.role}) is a symbolic link that cannot be resolved; refused") from None
    if not path.is_relative_to(base):
        raise BundleError(
            f"bundle file {entry.path} ({entry.role}) is a symbolic link to a file outside the bundle; refused — "
            "a bundle must hold its files itself (copy them in, or re-export it)"
        )
    return path


def read_verified(root: Path, entry: FileEntry) -> bytes:
    """Read the entry's file once, check its size and SHA-256 against the manifest, return the bytes."""
    path = _inside(Path(root), entry)
    if not path.is_file():
        raise BundleTamperedError(
            f"bundle file {entry.path} ({entry.role}) is missing from the bundle; restore the bundle from its source"
        )
    try:
        with open(path, "rb") as fh:
            data = fh.read(entry.size + 1)  # never more than the manifest says, plus one byte to notice more
    except OSError as exc:
        raise BundleError(f"bundle file {entry.path} ({entry.role}) cannot be read ({exc.strerror})") from None
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != entry.size or digest != entry.sha256:
        raise BundleTamperedError(
            f"bundle file {entry.path} ({entry.role}) has been modified: SHA-256 {digest[:16]}… "
            f"differs from the manifest's {entry.sha256[:16]}…; the bundle is refused — "
            "restore it from its source"
        )
    return data


def verify_files(root: Path, manifest: Manifest) -> dict[str, bytes]:
    """Check every listed file (inside the bundle, size and SHA-256); raise ``BundleError`` /
    ``BundleTamperedError`` naming the first that fails. Returns the checked bytes of the model
    files (``MODEL_ROLES``), by role, for the engines."""
    blobs: dict[str, bytes] = {}
    for entry in manifest.files:
        data = read_verified(root, entry)
        if entry.role in MODEL_ROLES:
            blobs[entry.role] = data
    return blobs


def open_bundle(path: Path | str | None = None, public_key: Path | str | None = None) -> Bundle:
    """Open the bundle at ``path`` (the demo bundle when ``None``), checking every file's hash.

    With a public key (given, or configured on the device: ``gout_edge.signing``), the manifest
    must carry a valid Ed25519 signature by that key.
    """
    root = Path(path) if path is not None else default_bundle_path()
    if not root.exists():
        hint = (
            "no bundle is installed with this copy of gout-edge; pass --bundle DIR"
            if path is None
            else "give the directory made by `gout-edge export`"
        )
        raise BundleError(f"bundle {root} does not exist; {hint}")
    if root.is_file():
        raise BundleError(f"{root} is a file; a bundle is a directory holding {MANIFEST_NAME}")
    manifest_path = root / MANIFEST_NAME
    if manifest_path.is_symlink() and not manifest_path.resolve().is_relative_to(root.resolve()):
        raise BundleError(f"{MANIFEST_NAME} is a symbolic link to a file outside the bundle; refused")
    key = configured_public_key(public_key)
    if key is not None:
        verify_manifest_signature(root, key)
    manifest = read_manifest(root)
    blobs = verify_files(root, manifest)
    return Bundle(root.resolve(), manifest, blobs)


def reference_file(bundle, rel: str) -> Path:
    """A reference file, only when the manifest lists (and so hashes) it with role ``reference``."""
    for entry in bundle.manifest.files:
        if entry.path == rel and entry.role == REFERENCE_ROLE:
            return bundle.root / entry.path
    raise BundleError(
        f"the reference set names {rel!r}, which the manifest's files do not list with role "
        f"{REFERENCE_ROLE!r}; an unlisted file is never read — re-export the bundle"
    )


def load_expected(bundle) -> tuple[dict[str, ReferenceOutputs], int]:
    """Expected outputs per model file (role), decoded; and the number of reference inputs."""
    ref = reference_section(bundle.manifest)
    n = len(ref.inputs)
    path = reference_file(bundle, ref.expected)
    out: dict[str, ReferenceOutputs] = {}
    with np.load(path, allow_pickle=False) as z:
        try:
            roi, blank, colour = z["roi"], z["blank"], z["colour"]
            for role in ref.engines:
                out[role] = ReferenceOutputs(
                    probability=z[f"{role}.probability"],
                    cam=decode_cam(z[f"{role}.cam"], z[f"{role}.cam_lo"], z[f"{role}.cam_scale"]),
                    roi=roi,
                    blank=blank,
                    colour=colour,
                    scope=None if bundle.manifest.scope is None else z[f"{role}.scope"],
                )
        except KeyError as exc:
            raise BundleError(f"{ref.expected} lacks {exc}; the reference set is incomplete — re-export") from None
    for role, o in out.items():
        if len(o.probability) != n or len(o.cam) != n or len(o.roi) != n or (o.scope is not None and len(o.scope) != n):
            raise BundleError(f"{ref.expected} holds outputs for {len(o.probability)} inputs of {role}, the manifest lists {n}")
    return out, n
