"""A PACS played in-process by pynetdicom: a storage SCP on a free localhost port that can abort its
first associations, refuse with a DICOM failure status, or be down, and that records every SOP
Instance UID it stored (how many times each), so a test sees what really reached it."""

from __future__ import annotations

import collections
import socket
import threading

from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PlayedPacs:
    """``abort_first``: abort that many associations as soon as they are accepted (nothing stored);
    ``aborting``: abort every association while True (a PACS that flaps); ``refuse``: answer every
    C-STORE with this failure status (e.g. 0xA700); ``start``/``stop``: up and down on the same
    port."""

    def __init__(self, aet: str = "PACS", abort_first: int = 0, refuse: int | None = None) -> None:
        self.aet = aet
        self.port = free_port()
        self.abort_first = abort_first
        self.aborting = False
        self.refuse = refuse
        self.associations = 0
        self.aborted = 0
        self.stored: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._server = None

    @property
    def peer(self) -> str:
        return f"127.0.0.1:{self.port}:{self.aet}"

    def _on_accepted(self, event):  # noqa: ANN001, ANN202
        with self._lock:
            self.associations += 1
            abort = self.associations <= self.abort_first or self.aborting
            if abort:
                self.aborted += 1
        if abort:  # as soon as the association is up: the caller's first C-STORE finds it gone
            event.assoc.abort()

    def _on_store(self, event):  # noqa: ANN001, ANN202
        if self.refuse is not None:
            return self.refuse
        with self._lock:
            self.stored[str(event.request.AffectedSOPInstanceUID)] += 1
        return 0x0000

    def start(self) -> PlayedPacs:
        ae = AE(ae_title=self.aet)
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification)
        self._server = ae.start_server(("127.0.0.1", self.port), block=False,
                                       evt_handlers=[(evt.EVT_C_STORE, self._on_store),
                                                     (evt.EVT_ACCEPTED, self._on_accepted)])
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None
