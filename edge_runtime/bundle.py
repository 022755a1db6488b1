"""Open a bundle on the cart: validate the manifest and check every file's SHA-256 (torch-free).

The runtime reads nothing but what the manifest lists, and refuses a file whose hash differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from gout_edge._io import sha256_file
from gout_edge.bundle import MANIFEST_NAME, Manifest, read_manifest
from gout_edge.errors import BundleError, BundleTamperedError
from gout_edge.signing import configured_public_key, verify_manifest_signature

__all__ = ["Bundle", "default_bundle_path", "open_bundle", "verify_files"]


@dataclass(frozen=True)
class Bundle:
    root: Path
    manifest: Manifest

    def path(self, role: str) -> Path:
        """Absolute path of the file with ``role`` (its hash was checked when the bundle opened)."""
        return self.root / self.manifest.file(role).path

    def has(self, role: str) -> bool:
        return role in self.manifest.roles()

    @property
    def identity(self) -> str:
        m = self.manifest.model
        return f"{m.name} {m.version} ({m.blocks} stages, checkpoint {m.checkpoint_sha256[:12]})"


def default_bundle_path() -> Path:
    """The demo bundle shipped inside the package."""
    return Path(str(resources.files("gout_edge") / "demo" / "bundle"))


def verify_files(root: Path, manifest: Manifest) -> None:
    """Raise ``BundleTamperedError`` naming the first file that is missing or whose hash differs."""
    for entry in manifest.files:
        rel = Path(entry.path)
        if rel.is_absolute() or ".." in rel.parts:
            raise BundleError(f"manifest file path {entry.path!r} leaves the bundle directory; refused")
        path = root / rel
        if not path.is_file():
            raise BundleTamperedError(
                f"bundle file {entry.path} ({entry.role}) is missing from {root}; restore the bundle from its source"
            )
        digest = sha256_file(path)
        if digest != entry.sha256:
            raise BundleTamperedError(
                f"bundle file {entry.path} ({entry.role}) has been modified: SHA-256 {digest[:16]}… "
                f"differs from the manifest's {entry.sha256[:16]}…; the bundle is refused — "
                "restore it from its source"
            )


def open_bundle(path: Path | str | None = None, public_key: Path | str | None = None) -> Bundle:
    """Open the bundle at ``path`` (the demo bundle when ``None``), checking every file's hash.

    With a public key (given, or configured on the device: ``gout_edge.signing``), the manifest
    must carry a valid Ed25519 signature by that key.
    """
    root = Path(path) if path is not None else default_bundle_path()
    if not root.exists():
        hint = (
            "the demo bundle is not installed with this copy of gout-edge; pass --bundle DIR"
            if path is None
            else "give the directory made by `gout-edge export`"
        )
        raise BundleError(f"bundle {root} does not exist; {hint}")
    if root.is_file():
        raise BundleError(f"{root} is a file; a bundle is a directory holding {MANIFEST_NAME}")
    key = configured_public_key(public_key)
    if key is not None:
        verify_manifest_signature(root, key)
    manifest = read_manifest(root)
    verify_files(root, manifest)
    return Bundle(root.resolve(), manifest)
