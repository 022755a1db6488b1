"""DICOM networking on the cart (pynetdicom): receive studies, send results (docs/design.md §12).

- ``peer``: ``HOST:PORT:AET`` peers, AE titles, TLS contexts, ``PeerUnavailableError``.
- ``scu``: C-STORE of files to a peer over one association (``send_files``), C-ECHO (``echo``).
- ``spool``: received instances on disk, fsynced before they are acknowledged, grouped by study,
  one lock and one durable state per study (each study scanned once for what it holds).
- ``forward``: the persistent queue of result objects for a PACS: retries with backoff and jitter
  while it cannot be reached, refusals counted, damaged jobs quarantined.
- ``listener``: the storage SCP of ``gout-edge listen``: bounded connections, spool, quiet-period
  study completion, a bounded pool of scans, forward, status file.

pynetdicom is imported inside the functions that talk to the network, so importing this package
costs nothing until a command uses it.
"""

from .forward import DeliveryReport, ForwardQueue
from .listener import STATUS_NAME, ExamScanner, ListenConfig, Listener, ScanRequest, exam_scanner, read_status
from .peer import DEFAULT_AE_TITLE, Peer, PeerUnavailableError, check_ae_title, client_tls, parse_peer, server_tls
from .scu import SendOutcome, echo, send_files
from .spool import Spool, Stored, StudyState

__all__ = [
    "DEFAULT_AE_TITLE",
    "DeliveryReport",
    "ExamScanner",
    "ForwardQueue",
    "ListenConfig",
    "Listener",
    "Peer",
    "PeerUnavailableError",
    "STATUS_NAME",
    "ScanRequest",
    "SendOutcome",
    "Spool",
    "Stored",
    "StudyState",
    "check_ae_title",
    "client_tls",
    "echo",
    "exam_scanner",
    "parse_peer",
    "read_status",
    "send_files",
    "server_tls",
]
