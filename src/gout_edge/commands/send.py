"""``gout-edge send``: push an exam's DICOM results (SR and SC objects) to a PACS by C-STORE.

Thin: find the objects (``dicom_results.result_files``), send them over one association
(``network.send_files``) and show each one's status (a table, or ``--json``). ``push`` is shared
with ``scan --send-to``. Exit codes (docs/design.md §8): 0 all stored · 2 usage · 3 nothing to
send · 5 the PACS could not be reached or refused an object.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from gout_edge.edge_runtime.network.scu import push

from ._options import json_option
from ._output import emit_json, stdout


def register(app: typer.Typer) -> None:
    @app.command("send", short_help="Send an exam's DICOM results (SR, SC) to a PACS.")
    def send(
        paths: list[Path] = typer.Argument(
            ..., metavar="PATH...", show_default=False,
            help="Session folders, folders of sessions (e.g. scans/), or .dcm files.",
        ),
        to: str = typer.Option(..., "--to", metavar="HOST:PORT:AET", help="The PACS: host, port and AE title."),
        ae_title: str = typer.Option("GOUT_EDGE", "--ae-title", metavar="AET", help="This node's (calling) AE title."),
        tls_ca: Optional[Path] = typer.Option(
            None, "--tls-ca", metavar="FILE", help="Use TLS; check the PACS certificate against this CA (PEM)."
        ),
        tls_cert: Optional[Path] = typer.Option(None, "--tls-cert", metavar="FILE", help="TLS client certificate (PEM)."),
        tls_key: Optional[Path] = typer.Option(None, "--tls-key", metavar="FILE", help="Its private key (PEM)."),
        timeout: float = typer.Option(30.0, "--timeout", min=1.0, max=3600.0, metavar="SECONDS",
                                      help="Network timeout (1 to 3600)."),
        json_out: bool = json_option("Print the outcome as one JSON document on stdout."),
    ) -> None:
        """Send the SR and SC objects an exam wrote (<session>/dicom/) to a PACS by C-STORE."""
        from gout_edge.edge_runtime.network import PeerUnavailableError, check_ae_title, client_tls, parse_peer
        from gout_edge.edge_runtime.present.dicom_results import result_files
        from gout_edge.errors import InputError

        parse_peer(to, "--to")  # a bad address is a usage error before anything else
        title = check_ae_title(ae_title)
        tls = client_tls(tls_ca, tls_cert, tls_key)
        files = [f for p in paths for f in result_files(p)]
        if not files:
            raise InputError(
                f"no DICOM results under {', '.join(str(p) for p in paths)}; every exam writes them into "
                "<session folder>/dicom/ (give a session folder, a scans folder or .dcm files)"
            )
        doc, error = push(files, to, calling_aet=title, tls=tls, timeout_s=timeout)
        if json_out:
            emit_json(doc)
        else:
            _render(doc)
        if error:
            raise PeerUnavailableError(error)


def _render(doc: dict[str, Any]) -> None:
    from rich.table import Table

    if not doc["files"]:  # no association: the error below says why
        stdout.print(f"0 of {doc['objects']} object(s) sent to {doc['peer']}")
        return
    table = Table(title=f"C-STORE to {doc['peer']}", show_header=True)
    for name in ("file", "status", "stored"):
        table.add_column(name)
    for f in doc["files"]:
        table.add_row(Path(f["file"]).name, f["status"] or "-", "yes" if f["stored"] else f"no ({f['error']})")
    stdout.print(table)
    stdout.print(f"{doc['stored']} of {doc['objects']} object(s) stored")
