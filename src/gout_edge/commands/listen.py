"""``gout-edge listen``: a DICOM node on the cart — studies in by C-STORE, results out to a PACS.

Thin: check the options, open the bundle and the scorer, build ``edge_runtime.network.Listener``
with its spool, scanner and forward queue, and run it until SIGINT or SIGTERM (docs/design.md
§12); ``--status`` reads a spool's state instead (the node running or not). Exit codes (§8):
0 stopped · 2 usage (a bad option, the port in use) · 4 bundle.

``--bind`` defaults to 127.0.0.1: a cart exposes the DICOM node only on the address it is given
(its address on the hospital network, where the scanners are); ``--bind 0.0.0.0`` (every network
the cart is on) is refused without ``--allow``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from ._options import (
    Backend,
    Precision,
    backend_option,
    bundle_option,
    json_option,
    positive,
    precision_option,
    public_key_option,
)

if TYPE_CHECKING:
    import logging
    import ssl

    from gout_edge.edge_runtime.network import Peer


def register(app: typer.Typer) -> None:
    @app.command("listen", short_help="Receive studies (C-STORE), scan them, forward results.")
    def listen(
        port: int = typer.Option(11112, "--port", min=0, max=65535, metavar="N",
                                 help="TCP port to listen on (0: any free port)."),
        ae_title: str = typer.Option("GOUT_EDGE", "--ae-title", metavar="AET", help="This node's AE title."),
        bind: str = typer.Option(
            "127.0.0.1", "--bind", metavar="HOST",
            help="Address to listen on: the cart's address on the hospital network (e.g. 10.1.2.3); the default "
                 "serves this machine only; 0.0.0.0 (every network) needs --allow.",
        ),
        allow: Optional[str] = typer.Option(
            None, "--allow", metavar="AET,...",
            help="Calling AE titles accepted (comma list); others are rejected. Default: any, with a warning.",
        ),
        spool: Path = typer.Option(
            Path("gout-edge-spool"), "--spool", metavar="DIR",
            help="Received instances (fsynced before each is acknowledged) and the forward queue.",
        ),
        out: Path = typer.Option(Path("scans"), "--out", "-o", metavar="DIR", help="Folder for session folders."),
        quiet_period: float = typer.Option(
            10.0, "--quiet-period", callback=positive, metavar="SECONDS",
            help="A study is complete after this long without a new instance (above 0).",
        ),
        forward: Optional[str] = typer.Option(
            None, "--forward", metavar="HOST:PORT:AET", help="Send each study's SR and SC objects to this PACS."
        ),
        retry_interval: float = typer.Option(
            5.0, "--retry-interval", callback=positive, metavar="SECONDS",
            help="First wait before retrying an unreachable PACS; doubles up to --retry-max (with jitter).",
        ),
        retry_max: Optional[float] = typer.Option(
            None, "--retry-max", callback=positive, metavar="SECONDS",
            help="Longest wait between tries of an unreachable PACS (default 12 × --retry-interval).",
        ),
        forward_timeout: float = typer.Option(
            30.0, "--forward-timeout", callback=positive, metavar="SECONDS",
            help="Network timeout talking to the PACS (an answer to each object included).",
        ),
        forward_horizon: float = typer.Option(
            72.0, "--forward-horizon", callback=positive, metavar="HOURS",
            help="Keep trying an unreachable PACS this long before an object moves to failed/.",
        ),
        max_associations: int = typer.Option(8, "--max-associations", min=1, max=256, metavar="N",
                                             help="Connections at once (idle ones make room for new ones)."),
        association_timeout: float = typer.Option(
            10.0, "--association-timeout", callback=positive, metavar="SECONDS",
            help="A connection must ask for an association (TLS handshake included) within this.",
        ),
        idle_timeout: float = typer.Option(60.0, "--idle-timeout", callback=positive, metavar="SECONDS",
                                           help="Abort an association that sends nothing for this long."),
        pdu_timeout: float = typer.Option(30.0, "--pdu-timeout", callback=positive, metavar="SECONDS",
                                          help="One PDU must arrive whole within this."),
        max_instance_mb: float = typer.Option(2048.0, "--max-instance-mb", callback=positive, metavar="MB",
                                              help="Refuse a received instance over this size (status A700)."),
        scan_workers: int = typer.Option(2, "--scan-workers", min=1, max=16, metavar="N",
                                         help="Studies scanned at the same time."),
        scan_time_budget: float = typer.Option(
            900.0, "--scan-time-budget", min=0.0, metavar="SECONDS",
            help="A study's scan ends after this long, with what it read (0: no limit).",
        ),
        scan_pixel_budget: float = typer.Option(
            4000.0, "--scan-pixel-budget", min=0.0, metavar="MEGAPIXELS",
            help="A study's scan ends after decoding this many pixels, with what it read (0: no limit).",
        ),
        status: bool = typer.Option(False, "--status",
                                    help="Print the state of --spool (studies, forward queue) and exit."),
        tls_cert: Optional[Path] = typer.Option(None, "--tls-cert", metavar="FILE", help="TLS: this node's certificate (PEM)."),
        tls_key: Optional[Path] = typer.Option(None, "--tls-key", metavar="FILE", help="TLS: its private key (PEM)."),
        tls_ca: Optional[Path] = typer.Option(
            None, "--tls-ca", metavar="FILE", help="TLS: accept only callers with a certificate from this CA."
        ),
        forward_tls_ca: Optional[Path] = typer.Option(
            None, "--forward-tls-ca", metavar="FILE", help="Forward over TLS, checking the PACS against this CA."
        ),
        bundle: Optional[Path] = bundle_option(),
        backend: Backend = backend_option(),
        precision: Precision = precision_option(),
        public_key: Optional[Path] = public_key_option(),
        json_out: bool = json_option("When stopped, print what was received and scanned as one JSON document."),
    ) -> None:
        """Receive studies by C-STORE (and answer C-ECHO), scan each complete study with the bundle,
        write its results (report, SR, SC) and forward the DICOM objects to a PACS.

        Every instance is fsynced into the spool before it is acknowledged; a study is complete
        after --quiet-period seconds without a new instance. The forward queue lives on disk:
        a PACS that is down loses nothing, and a restart resumes. Stop with Ctrl-C or SIGTERM.
        """
        import logging
        import signal
        import threading

        from gout_edge.edge_runtime.inference.loading import open_bundle
        from gout_edge.edge_runtime.inference.scoring import Scorer
        from gout_edge.edge_runtime.network import (
            ForwardQueue,
            ListenConfig,
            Listener,
            Spool,
            check_ae_title,
            client_tls,
            exam_scanner,
            parse_peer,
            server_tls,
        )

        log = logging.getLogger("gout_edge.listen")
        if status:
            from gout_edge.edge_runtime.network import read_status

            doc = read_status(spool)
            if json_out:
                from ._output import emit_json

                emit_json(doc)
            else:
                _render_status(doc)
            return
        title = check_ae_title(ae_title)
        # AE titles are case-sensitive: the list is kept as written
        allowed = tuple(dict.fromkeys(check_ae_title(a, "--allow") for a in (allow or "").split(",") if a.strip()))
        peer = parse_peer(forward) if forward else None
        server_ctx = server_tls(tls_cert, tls_key, tls_ca)
        forward_ctx = client_tls(forward_tls_ca, option="--forward-tls-ca")
        from gout_edge.errors import UsageError

        if forward_ctx is not None and peer is None:
            raise UsageError("--forward-tls-ca needs --forward HOST:PORT:AET")
        if bind.strip() in ("0.0.0.0", "::", "") and not allowed:
            raise UsageError(f"--bind {bind!r} listens on every network this cart is on; give --allow AET,... (the "
                             "scanners' AE titles) too, or --bind the cart's address on the scanners' network")
        opened = open_bundle(bundle, public_key)
        scorer = Scorer(opened, backend=backend.value, precision=precision.value)
        store = Spool(spool)
        queue = None
        if peer is not None:
            queue = ForwardQueue(store.root / "forward", peer, calling_aet=title, tls=forward_ctx, retry_s=retry_interval,
                                 max_wait_s=retry_max, horizon_s=forward_horizon * 3600, timeout_s=forward_timeout)
        if not allowed:
            log.warning("no --allow list: any calling AE title may store studies here")
        config = ListenConfig(
            ae_title=title, host=bind, port=port, allowed=allowed, quiet_s=quiet_period, tls=server_ctx,
            max_associations=max_associations, acse_timeout_s=association_timeout, idle_timeout_s=idle_timeout,
            pdu_timeout_s=pdu_timeout, max_instance_bytes=int(max_instance_mb * 2**20), scan_workers=scan_workers,
            scan_time_budget_s=scan_time_budget or None,
            scan_pixel_budget=int(scan_pixel_budget * 1e6) or None,
        )
        node = Listener(config, store, scan=exam_scanner(opened, scorer, out), queue=queue)
        stop = threading.Event()

        def on_signal(signum: int, _frame: object) -> None:
            log.info("stopping (%s)", signal.Signals(signum).name)
            stop.set()

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            node.start()
            if peer is not None:
                log.info("forwarding results to %s (queue %s)", peer, queue.root if queue else "")
                threading.Thread(target=_echo_peer, args=(peer, title, forward_ctx, log), daemon=True).start()
            node.wait(stop)
        finally:
            node.stop()
            scorer.close()
            for s, handler in previous.items():
                signal.signal(s, handler)
        if json_out:
            from ._output import emit_json

            emit_json(node.summary())


def _render_status(doc: dict) -> None:
    from ._output import stdout

    st = doc["studies"]
    stdout.print(f"spool {doc['spool']}: node {'running' if doc['running'] else 'not running'}"
                 + (f" (status of {doc['written_at']})" if doc.get("written_at") else ""))
    if doc.get("received") is not None:
        stdout.print(f"received {doc['received']} instance(s), {doc.get('duplicates') or 0} identical re-send(s), "
                     f"{doc.get('refused') or 0} refused; {doc.get('aborted_associations') or 0} association(s) aborted")
    stdout.print(f"studies: {st['total']} in the spool, {st['waiting']} waiting to be scanned, {st['scanning']} being "
                 f"scanned, {st['failed']} whose last scan failed")
    fw = doc.get("forward")
    if fw is None:
        stdout.print("forward: none")
        return
    stdout.print(f"forward{' to ' + fw['peer'] if fw.get('peer') else ''}: {fw['pending']} pending, {fw['sent']} sent, "
                 f"{fw['failed']} failed")
    if fw["pending"]:
        stdout.print(f"  oldest pending {fw['oldest_pending_s']:.0f} s; next try in {fw['next_attempt_in_s']:.0f} s"
                     + (f"; last error: {fw['last_error']}" if fw.get("last_error") else ""))
    for f in fw.get("recent_failures", []):
        stdout.print(f"  failed: {f['file']}: {f['reason']}")


def _echo_peer(peer: Peer, title: str, tls: ssl.SSLContext | None, log: logging.Logger) -> None:
    """C-ECHO the PACS once at start, so a wrong address or AE title shows in the log at once."""
    from gout_edge.edge_runtime.network import PeerUnavailableError, echo

    try:
        status = echo(peer, calling_aet=title, tls=tls)
    except PeerUnavailableError as exc:
        log.warning("forward: %s; results will wait in the queue until it answers", exc)
        return
    if status == 0:
        log.info("forward: %s answers C-ECHO", peer)
    elif status < 0:
        log.warning("forward: %s gave no answer to C-ECHO (the association was aborted or timed out); results wait "
                    "in the queue until it takes them", peer)
    else:
        log.warning("forward: %s answers C-ECHO with status 0x%04X", peer, status)
