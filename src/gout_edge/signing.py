"""Ed25519 signatures over a bundle's manifest (docs/design.md §4).

The manifest lists every file with its SHA-256, so signing ``manifest.json``'s exact bytes signs
the whole bundle. The signature lives beside it in ``manifest.sig`` (base64). Keys are PEM files:
``NAME.key`` (PKCS#8 private key, owner-only permissions) and ``NAME.pub`` (SubjectPublicKeyInfo).

Policy on the device: when a public key is configured (``--public-key``, the environment variable
``GOUT_EDGE_PUBLIC_KEY``, or ``~/.config/gout-edge/trusted.pub`` / ``/etc/gout-edge/trusted.pub``),
every bundle must carry a valid signature by that key; otherwise unsigned bundles are accepted.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from ._io import atomic_write_bytes
from .errors import BundleError, BundleTamperedError, InputError, UsageError
from .manifest import MANIFEST_NAME

__all__ = [
    "SIGNATURE_NAME",
    "configured_public_key",
    "generate_keypair",
    "sign_manifest",
    "signature_for",
    "verify_manifest_signature",
]

SIGNATURE_NAME = "manifest.sig"
PUBLIC_KEY_ENV = "GOUT_EDGE_PUBLIC_KEY"
DEFAULT_PUBLIC_KEYS = (Path("~/.config/gout-edge/trusted.pub"), Path("/etc/gout-edge/trusted.pub"))


def generate_keypair(name: Path | str) -> tuple[Path, Path]:
    """Write ``NAME.key`` (0600) and ``NAME.pub``; refuse to overwrite an existing key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    base = Path(name)
    key_path, pub_path = base.with_name(base.name + ".key"), base.with_name(base.name + ".pub")
    for path in (key_path, pub_path):
        if path.exists():
            raise UsageError(f"{path} already exists; choose another --out name or remove the old key pair first")
    key_path.parent.mkdir(parents=True, exist_ok=True)
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    pub_path.write_bytes(
        private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return key_path, pub_path


def _load(path: Path, private: bool):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

    kind = "private" if private else "public"
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the {kind} key {path} ({exc.strerror}); make one with `gout-edge keygen`") from None
    try:
        key = (serialization.load_pem_private_key(data, None) if private else serialization.load_pem_public_key(data))
    except (ValueError, TypeError) as exc:
        raise InputError(f"{path} is not a PEM {kind} key ({exc}); make one with `gout-edge keygen`") from None
    expected = Ed25519PrivateKey if private else Ed25519PublicKey
    if not isinstance(key, expected):
        raise InputError(f"{path} holds a {type(key).__name__}; gout-edge signs with Ed25519 keys (`gout-edge keygen`)")
    return key


def signature_for(data: bytes, private_key: Path) -> bytes:
    """The content of ``manifest.sig`` for manifest bytes ``data`` (base64 Ed25519 signature)."""
    key = _load(private_key, private=True)
    return base64.b64encode(key.sign(data)) + b"\n"


def sign_manifest(bundle_dir: Path, private_key: Path) -> Path:
    """Sign ``manifest.json`` as it is on disk; write ``manifest.sig`` atomically."""
    data = (Path(bundle_dir) / MANIFEST_NAME).read_bytes()
    return atomic_write_bytes(Path(bundle_dir) / SIGNATURE_NAME, signature_for(data, private_key))


def configured_public_key(explicit: Path | str | None = None) -> Path | None:
    """The device's trusted public key: the explicit path, the environment, or a default location."""
    if explicit is not None:
        return Path(explicit)
    if os.environ.get(PUBLIC_KEY_ENV):
        return Path(os.environ[PUBLIC_KEY_ENV])
    for candidate in DEFAULT_PUBLIC_KEYS:
        if candidate.expanduser().is_file():
            return candidate.expanduser()
    return None


def verify_manifest_signature(bundle_dir: Path, public_key: Path) -> None:
    """Raise ``BundleTamperedError`` unless ``manifest.sig`` is a valid signature by ``public_key``."""
    from cryptography.exceptions import InvalidSignature

    key = _load(public_key, private=False)
    sig_path = Path(bundle_dir) / SIGNATURE_NAME
    if not sig_path.is_file():
        raise BundleTamperedError(
            f"the bundle {bundle_dir} is not signed (no {SIGNATURE_NAME}) but this device requires bundles "
            f"signed by {public_key}; export it with --sign-key"
        )
    try:
        signature = base64.b64decode(sig_path.read_text(encoding="ascii").strip(), validate=True)
    except (ValueError, UnicodeDecodeError):
        raise BundleError(f"{sig_path} is not a base64 signature; the bundle is damaged") from None
    try:
        key.verify(signature, (Path(bundle_dir) / MANIFEST_NAME).read_bytes())
    except InvalidSignature:
        raise BundleTamperedError(
            f"the manifest signature of {bundle_dir} does not verify with the public key {public_key}: "
            "the manifest was changed after signing, or it was signed by another key; the bundle is refused"
        ) from None
