"""C-STORE to a peer (pynetdicom): one association for a batch of DICOM files.

``send_files`` proposes one presentation context per SOP class in the batch, with the files' own
transfer syntax and the uncompressed ones, sends each file and reports each outcome; it raises
``PeerUnavailableError`` only when no association could be made (refused, rejected, no answer).
Success and the warning statuses (coercion, elements discarded, data set does not match) count
as stored. A DICOM failure status, or no presentation context accepted for the object, is a
*refusal*; an association aborted or lost, or no answer, is *transient* (``SendOutcome.transient``):
the object never reached the peer's judgement and is worth another try. A compressed file whose
syntax the peer does not accept is sent uncompressed when pydicom can decompress it alone (RLE).
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gout_edge.errors import InputError

from .peer import DEFAULT_AE_TITLE, Peer, PeerUnavailableError, parse_peer

__all__ = ["STORED", "SendOutcome", "echo", "read_header", "send_files"]

log = logging.getLogger(__name__)

STORED = {0x0000, 0xB000, 0xB006, 0xB007}  # success and the C-STORE warnings
MAX_CONTEXTS = 128


@dataclass(frozen=True)
class SendOutcome:
    """What happened to one file: the peer's status (None when no answer came) and whether stored."""

    path: Path
    sop_instance_uid: str
    stored: bool
    status: int | None
    error: str | None = None
    transient: bool = False  # not stored for a reason of the network (lost, aborted, no answer): try again

    def to_dict(self) -> dict[str, object]:
        return {"file": str(self.path), "sop_instance_uid": self.sop_instance_uid, "stored": self.stored,
                "status": None if self.status is None else f"0x{self.status:04X}", "error": self.error}


class _NoTraceback(logging.Filter):
    """One line per pynetdicom warning or error: a peer that drops a connection is not a crash."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and not logging.getLogger().isEnabledFor(logging.DEBUG):
            record.msg = f"{record.getMessage()} ({record.exc_info[1]!r})"
            record.args = None
            record.exc_info = record.exc_text = None
        return True


def _quiet_pynetdicom() -> None:
    """pynetdicom narrates every PDU and repeats each failure that gout-edge reports in its own
    words; it speaks only with ``--verbose`` (DEBUG), then one line per warning or error."""
    import pynetdicom  # noqa: F401 - creates its module loggers

    lg = logging.getLogger("pynetdicom")
    if lg.level == logging.NOTSET and not logging.getLogger().isEnabledFor(logging.DEBUG):
        lg.setLevel(logging.CRITICAL)
    for name in [n for n in logging.Logger.manager.loggerDict if n == "pynetdicom" or n.startswith("pynetdicom.")]:
        child = logging.getLogger(name)
        if not any(isinstance(f, _NoTraceback) for f in child.filters):
            child.addFilter(_NoTraceback())


def _ae(calling_aet: str, timeout_s: float):  # noqa: ANN202 - pynetdicom.AE
    from pynetdicom import AE

    _quiet_pynetdicom()
    ae = AE(ae_title=calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
    ae.connection_timeout = timeout_s
    return ae


class _Heard(logging.Handler):
    """Keeps what pynetdicom says about a failed connection, for gout-edge's own message."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            self.lines.append(record.getMessage())


_ASSOCIATING = threading.Lock()  # one association request at a time: the capture above is shared


def _associate(ae, peer: Peer, tls: ssl.SSLContext | None):  # noqa: ANN001, ANN202
    with _ASSOCIATING:
        return _associate_once(ae, peer, tls)


def _associate_once(ae, peer: Peer, tls: ssl.SSLContext | None):  # noqa: ANN001, ANN202
    transport = logging.getLogger("pynetdicom.transport")
    heard, level, propagate = _Heard(), transport.level, transport.propagate
    transport.addHandler(heard)
    transport.setLevel(logging.DEBUG)
    transport.propagate = logging.getLogger().isEnabledFor(logging.DEBUG)  # shown with --verbose only
    try:
        assoc = ae.associate(peer.host, peer.port, ae_title=peer.ae_title,
                             tls_args=(tls, peer.host) if tls is not None else None)
    except (OSError, ssl.SSLError) as exc:
        raise PeerUnavailableError(f"{peer} cannot be reached ({type(exc).__name__}: {exc})") from None
    finally:
        transport.removeHandler(heard)
        transport.setLevel(level)
        transport.propagate = propagate
    if assoc.is_established:
        return assoc
    tcp = next((line.split("Error: ", 1)[-1] for line in heard.lines if "Initialisation Error" in line), None)
    if tcp is not None:
        why = f"cannot be reached ({tcp})"
    elif assoc.is_rejected:
        why = "rejected the association (is this node's AE title on its list of known peers?)"
    elif assoc.is_aborted:
        why = "aborted the association (busy or restarting; or it wants TLS, or does not know this AE title)"
    else:
        why = "did not answer in time"
    raise PeerUnavailableError(f"{peer} {why}")


def echo(peer: Peer, *, calling_aet: str = DEFAULT_AE_TITLE, tls: ssl.SSLContext | None = None,
         timeout_s: float = 10.0) -> int:
    """C-ECHO: the peer's status (0 is success); ``PeerUnavailableError`` when it cannot be reached."""
    from pynetdicom.sop_class import Verification

    ae = _ae(calling_aet, timeout_s)
    ae.add_requested_context(Verification)
    assoc = _associate(ae, peer, tls)
    try:
        status = assoc.send_c_echo()
        return int(status.Status) if "Status" in status else -1
    finally:
        assoc.release()


def read_header(path: Path) -> tuple[str, str, str]:
    """(SOP Class UID, SOP Instance UID, transfer syntax) of a file to send; ``InputError`` naming
    the file (base name) when it is no DICOM file that can be sent."""
    import pydicom

    from gout_edge.edge_runtime.imaging.text import clean_line

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        return str(ds.SOPClassUID), str(ds.SOPInstanceUID), str(ds.file_meta.TransferSyntaxUID)
    except Exception as exc:
        raise InputError(f"{clean_line(path.name, 120)} is not a DICOM file that can be sent "
                         f"({type(exc).__name__}: {clean_line(exc, 200)})") from None


_header = read_header


def send_files(paths: Sequence[Path], peer: Peer, *, calling_aet: str = DEFAULT_AE_TITLE,
               tls: ssl.SSLContext | None = None, timeout_s: float = 30.0) -> list[SendOutcome]:
    """C-STORE ``paths`` to ``peer`` over one association; one ``SendOutcome`` per file, in order."""
    import pydicom
    from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    paths = [Path(p) for p in paths]
    if not paths:
        return []
    headers = [_header(p) for p in paths]
    # one context per SOP class and encoding: a compressed file needs its own syntax accepted, while
    # uncompressed data can travel in any uncompressed syntax the peer picks
    uncompressed = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
    contexts: dict[tuple[str, str], list[str]] = {}
    for sop_class, _, syntax in headers:
        compressed = UID(syntax).is_compressed
        contexts.setdefault((sop_class, syntax if compressed else ""), [syntax] if compressed else uncompressed)
        if compressed and syntax in _DECOMPRESSES:  # the fallback for a peer that refuses the compression
            contexts.setdefault((sop_class, ""), uncompressed)
    if len(contexts) > MAX_CONTEXTS:
        raise InputError(f"{len(contexts)} kinds of object in one batch; at most {MAX_CONTEXTS} fit one association")
    ae = _ae(calling_aet, timeout_s)
    for (sop_class, _), offered in contexts.items():
        ae.add_requested_context(sop_class, offered)
    assoc = _associate(ae, peer, tls)
    outcomes: list[SendOutcome] = []
    try:
        for path, (sop_class, sop_uid, syntax) in zip(paths, headers, strict=True):
            if not assoc.is_established:
                outcomes.append(SendOutcome(path, sop_uid, False, None, "association lost", transient=True))
                continue
            try:
                ds = pydicom.dcmread(path)
                if syntax in _DECOMPRESSES and not _accepts(assoc, sop_class, syntax):
                    ds.decompress()  # the peer takes this class uncompressed only
                status = assoc.send_c_store(ds)
            except (ValueError, RuntimeError, NotImplementedError) as exc:
                if not assoc.is_established:  # aborted or lost while this one was on its way
                    outcomes.append(SendOutcome(path, sop_uid, False, None, "association lost", transient=True))
                else:  # no accepted presentation context for it: the peer will not take it
                    outcomes.append(SendOutcome(path, sop_uid, False, None,
                                                f"the peer accepted no presentation context for it ({type(exc).__name__})"))
                continue
            except OSError as exc:
                outcomes.append(SendOutcome(path, sop_uid, False, None, f"connection failed ({exc.strerror or exc})",
                                            transient=True))
                continue
            code = int(status.Status) if status is not None and "Status" in status else None
            stored = code in STORED
            if stored:
                outcomes.append(SendOutcome(path, sop_uid, True, code))
            elif code is None:  # the association was aborted or timed out before the answer came
                lost = "association lost" if not assoc.is_established else "no answer"
                outcomes.append(SendOutcome(path, sop_uid, False, None, lost, transient=True))
            else:
                outcomes.append(SendOutcome(path, sop_uid, False, code, "refused by the peer"))
    finally:
        if assoc.is_established:
            assoc.release()
    return outcomes


# what pydicom decodes with what a cart has (RLE alone, JPEG Baseline with Pillow): a file in one of
# these is sent uncompressed to a peer that refuses its compression
_DECOMPRESSES = {"1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.50"}


def _accepts(assoc, sop_class: str, syntax: str) -> bool:  # noqa: ANN001
    return any(cx.abstract_syntax == sop_class and cx.transfer_syntax and cx.transfer_syntax[0] == syntax
               for cx in assoc.accepted_contexts)


def push(files: list[Path], to: str, *, calling_aet: str = "GOUT_EDGE", tls: Any = None,
         timeout_s: float = 30.0) -> tuple[dict[str, Any], str | None]:
    """Send ``files`` to ``to`` (HOST:PORT:AET): (a JSON-ready summary, an error message or None)."""
    peer = parse_peer(to, "--to")
    doc: dict[str, Any] = {"peer": str(peer), "objects": len(files), "stored": 0, "files": []}
    try:
        outcomes = send_files(files, peer, calling_aet=calling_aet, tls=tls, timeout_s=timeout_s)
    except PeerUnavailableError as exc:
        doc["error"] = str(exc)
        return doc, f"{exc}; nothing was sent (the results stay in their session folders)"
    doc["files"] = [o.to_dict() for o in outcomes]
    doc["stored"] = sum(o.stored for o in outcomes)
    failed = [o for o in outcomes if not o.stored]
    if failed:
        doc["error"] = f"{len(failed)} of {len(outcomes)} object(s) not stored"
        return doc, f"{peer}: {len(failed)} of {len(outcomes)} object(s) not stored (first: {failed[0].path.name}, {failed[0].error})"
    return doc, None
