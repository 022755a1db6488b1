"""DICOM networking on the cart (pynetdicom): receive studies, send results (docs/design.md §12).

- ``peer``: ``HOST:PORT:AET`` peers, AE titles, TLS contexts, ``PeerUnavailableError``.
- ``scu``: C-STORE of files to a peer over one association (``send_files``), C-ECHO (``echo``).
- ``spool``: received instances on disk, fsynced before they are acknowledged, grouped by study.
- ``forward``: the persistent queue of result objects for a PACS, with retries.
- ``listener``: the storage SCP of ``gout-edge listen``: spool, quiet-period study completion,
  scan, forward.

pynetdicom is imported inside the functions that talk to the network, so importing this package
costs nothing until a command uses it.
"""

from .forward import DeliveryReport, ForwardQueue
from .listener import ListenConfig, Listener, exam_scanner
from .peer import DEFAULT_AE_TITLE, Peer, PeerUnavailableError, check_ae_title, client_tls, parse_peer, server_tls
from .scu import SendOutcome, echo, send_files
from .spool import Spool, StudyState

__all__ = [
    "DEFAULT_AE_TITLE",
    "DeliveryReport",
    "ForwardQueue",
    "ListenConfig",
    "Listener",
    "Peer",
    "PeerUnavailableError",
    "SendOutcome",
    "Spool",
    "StudyState",
    "check_ae_title",
    "client_tls",
    "echo",
    "exam_scanner",
    "parse_peer",
    "send_files",
    "server_tls",
]
