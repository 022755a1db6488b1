"""DICOM peers and the small things every network piece shares: ``HOST:PORT:AET`` addresses, AE
titles, TLS contexts and the error raised when a peer cannot be reached.

Logs name peers as ``AET@host:port`` and never carry patient attributes (docs/design.md §8).
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from pathlib import Path

from gout_edge.errors import CaptureError, UsageError

__all__ = [
    "DEFAULT_AE_TITLE",
    "Peer",
    "PeerUnavailableError",
    "check_ae_title",
    "client_tls",
    "parse_peer",
    "server_tls",
]

DEFAULT_AE_TITLE = "GOUT_EDGE"
# AE title: 1–16 characters of the default repertoire, no backslash or control characters, not all spaces
_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")


class PeerUnavailableError(CaptureError):
    """A DICOM peer (a PACS) refused the association, could not be reached or did not store an
    object. Exit code 5, as for a capture device: a device on the network failed."""


def check_ae_title(title: str, option: str = "--ae-title") -> str:
    """``title`` stripped, or ``UsageError`` naming ``option`` when it is not a valid AE title."""
    text = str(title).strip()
    if not _AE_TITLE.match(text):
        raise UsageError(
            f"{option} {title!r} is not a valid AE title; use 1 to 16 characters (letters, digits, "
            "spaces, _ . -), no backslash, e.g. GOUT_EDGE"
        )
    return text


@dataclass(frozen=True)
class Peer:
    """A remote application entity: host, port and called AE title."""

    host: str
    port: int
    ae_title: str

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.ae_title}@{host}:{self.port}"

    @property
    def spec(self) -> str:
        """The ``HOST:PORT:AET`` form ``parse_peer`` reads."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}:{self.ae_title}"


def parse_peer(text: str, option: str = "--forward") -> Peer:
    """``HOST:PORT:AET`` (an IPv6 host in brackets: ``[::1]:104:PACS``) → ``Peer``."""
    value = str(text).strip()
    parts = value.rsplit(":", 2)
    if len(parts) != 3 or not all(p.strip() for p in parts):
        raise UsageError(f"{option} {text!r} is not HOST:PORT:AET; e.g. {option} pacs.example.org:104:PACS")
    host, port_text, aet = (p.strip() for p in parts)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise UsageError(f"{option} {text!r}: port {port_text!r} is not a number from 1 to 65535")
    return Peer(host, port, check_ae_title(aet, option))


def _readable(path: Path | None, option: str) -> Path | None:
    if path is None:
        return None
    path = Path(path).expanduser()
    if not path.is_file():
        raise UsageError(f"{option} {path} is not a file; give a PEM file")
    return path


def server_tls(cert: Path | None, key: Path | None, ca: Path | None = None) -> ssl.SSLContext | None:
    """The TLS context of a listening node: its certificate and key (PEM); with ``ca``, callers must
    present a certificate signed by it. None when no certificate is given."""
    if cert is None and key is None:
        if ca is not None:
            raise UsageError("--tls-ca needs --tls-cert and --tls-key: give the node's own certificate too")
        return None
    if cert is None or key is None:
        raise UsageError("TLS needs both --tls-cert FILE and --tls-key FILE (PEM)")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(_readable(cert, "--tls-cert")), str(_readable(key, "--tls-key")))
        if ca is not None:
            ctx.load_verify_locations(str(_readable(ca, "--tls-ca")))
            ctx.verify_mode = ssl.CERT_REQUIRED
    except ssl.SSLError as exc:
        raise UsageError(f"the TLS certificate or key cannot be used ({exc.reason or exc}); give PEM files that match") from None
    return ctx


def client_tls(ca: Path | None, cert: Path | None = None, key: Path | None = None,
               option: str = "--tls-ca") -> ssl.SSLContext | None:
    """The TLS context for calling a peer: its certificate is checked against ``ca`` (PEM), with
    the host name; ``cert``/``key`` present ours when the peer asks. None without ``ca``."""
    if ca is None:
        if cert is not None or key is not None:
            raise UsageError(f"a client certificate needs {option} FILE too (the CA that signed the peer's certificate)")
        return None
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(_readable(ca, option)))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if (cert is None) != (key is None):
        raise UsageError("a client certificate needs both --tls-cert FILE and --tls-key FILE (PEM)")
    if cert is not None and key is not None:
        try:
            ctx.load_cert_chain(str(_readable(cert, "--tls-cert")), str(_readable(key, "--tls-key")))
        except ssl.SSLError as exc:
            raise UsageError(f"the TLS client certificate or key cannot be used ({exc.reason or exc})") from None
    return ctx
