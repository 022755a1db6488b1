"""The live page: a small HTTP server on the cart (standard library only) that the cart's browser
shows while ``scan`` runs (docs/live-view.md).

``WebView`` is a live view (``live.open_view``): ``scan`` calls it with every fed frame. It
renders the frame (``live.render_live``: CAM on the bundle's fixed scale, legend, region) at up
to ``fps`` pictures a second and keeps the newest; the browser asks for it as a JPEG, encoded
once per picture in the server's thread, so a page that falls behind just skips pictures.

Endpoints, on ``127.0.0.1`` only:

- ``GET /``: the page (no outside resources; the current state is written into it, so it shows
  something before any script runs);
- ``GET /frame.jpg``: the newest picture;
- ``GET /status``: the state as JSON — the frame's probability and why it counts or not, the
  running abnormal fraction against the threshold, the key-frame count, paused or ended, and
  the verdict of every patient once the exam is over;
- ``POST /control?action=pause|resume|end|done``: the page's buttons and keys (Space pauses, q
  or Esc ends the exam). Requests must carry the header ``X-Gout-Edge: 1`` — which a page from
  another site cannot send without a CORS preflight that this server never grants — and a
  ``Host`` of this machine.

Pausing holds the exam where it is: ``view`` does not return until the page resumes or ends it,
so nothing is scored meanwhile (a live capture drops the frames that arrive, and counts them as
dropped). When the exam is over (``close``), the page shows the verdict; the server keeps
serving it until a page has shown it (and every page still polling has), Done is pressed
or ``hold_s`` passes.
No patient identifier is ever served: the page names the session only.

**Bounded.** At most ``max_connections`` connections at once (``LIVE_MAX_CONNECTIONS``): when
they are all taken, the oldest one that has not sent its request makes room, so a flood of idle
connections can neither lock the page out nor use up the process's file descriptors (which the
report needs for its font and files). A connection has ``timeout_s`` to send its request; a
client that goes away mid-answer (a reset during ``/frame.jpg``) is dropped quietly, without a
traceback. The table of pages watching forgets a page that has not asked for 30 s.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import sys
import threading
import time
import webbrowser
from collections import deque
from functools import lru_cache
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np

from gout_edge.edge_runtime.present.report import why_line
from gout_edge.edge_runtime.sources._base import Frame
from gout_edge.errors import UsageError

from .render import ProgressLine, frame_state, render_live

__all__ = ["PAGE", "WebView"]

log = logging.getLogger(__name__)

JPEG_QUALITY = 82
LIVE_MAX_CONNECTIONS = 32
LIVE_TIMEOUT_S = 5.0
VIEWER_TTL_S = 30.0  # a page that has not polled for this long is forgotten
MAX_VIEWERS = 64
_VIEWER_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")  # the page makes 8 hex digits


class WebView:
    """The live page's server and state; a live view (``view(frame, result, session) -> bool``,
    ``close()``)."""

    def __init__(self, port: int = 8765, host: str = "127.0.0.1", *, stop: Any = None, hold_s: float = 10.0,
                 fps: float = 20.0, max_width: int = 1280, stream: TextIO | None = None,
                 open_browser: bool = False, max_connections: int = LIVE_MAX_CONNECTIONS,
                 timeout_s: float = LIVE_TIMEOUT_S) -> None:
        self.stop = stop
        self.hold_s = hold_s
        self.min_interval_s = 1.0 / fps if fps > 0 else 0.0
        self.max_width = max_width
        self.progress = ProgressLine(stream or sys.stderr)
        self._lock = threading.Lock()
        self._seq = 0
        self._picture: np.ndarray | None = None
        self._jpeg: tuple[int, bytes] | None = None
        self._last_render = 0.0
        self._last_state: str | None = None
        self._status: dict[str, Any] = {"seq": 0, "state": "waiting", "frame": None, "verdicts": []}
        self._sessions: list[Any] = []
        self._viewers: dict[str, float] = {}  # page id → last poll (monotonic)
        self._acked: set[str] = set()
        self._paused = threading.Event()
        self._history: deque[tuple[int, np.ndarray, dict[str, Any]]] = deque(maxlen=32)  # recent pictures, to freeze on
        self._end = threading.Event()
        self._done = threading.Event()
        self._ended = False
        self._closed = False
        try:
            self.server = _BoundedServer((host, port), _handler(self, timeout_s), max_connections)
        except OSError as exc:
            raise UsageError(f"the live page cannot listen on {host}:{port} ({exc.strerror or exc}); another scan may "
                             "be using it — pass --live-port 0 for any free port, or --no-display") from None
        self.server.daemon_threads = True
        self.host, self.port = host, int(self.server.server_address[1])
        self.url = f"http://{host}:{self.port}/"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="gout-edge-live-page", daemon=True)
        self._thread.start()
        self.progress.stream.write(f"live view: {self.url}  (Space: pause, q or Esc: end the exam)\n")
        self.progress.stream.flush()
        if open_browser:  # unless a page is already watching (a kiosk browser left open on this address)
            threading.Thread(target=self._open_browser_unless_watched, daemon=True).start()

    # -- the exam's side
    def __call__(self, frame: Frame, result: Any, session: Any) -> bool:
        if self._end.is_set() or (self.stop is not None and self.stop.is_set()):
            return False
        if not self._sessions or self._sessions[-1] is not session:
            self._sessions.append(session)
        if self._paused.is_set():  # frozen on the picture the page showed: nothing more is fed until resumed
            while self._paused.is_set() and not self._end.is_set() and not (self.stop is not None and self.stop.is_set()):
                time.sleep(0.05)
            self._set_state("scanning")
        state = frame_state(result)
        now = time.monotonic()
        if now - self._last_render >= self.min_interval_s or state[0] != self._last_state or result.key_frame:
            picture = render_live(frame, result, getattr(session, "cam_scale", None), self.max_width, status=False)
            self._last_render, self._last_state = now, state[0]
            with self._lock:  # a pause that came while this frame was drawn keeps the picture the page showed
                if not self._paused.is_set():
                    self._seq += 1
                    self._picture = picture
                    self._status = self._frame_status(frame, result, session, state)
                    self._history.append((self._seq, picture, self._status))
        self.progress(frame, result, session)
        return not self._end.is_set()

    def _frame_status(self, frame: Frame, result: Any, session: Any, state: tuple[str, bool, str]) -> dict[str, Any]:
        d = session.decision
        scale = getattr(session, "cam_scale", None)
        return {
            "seq": self._seq,
            "state": "scanning",
            "session": session.session_id,
            "frames_seen": session.tally.frames_seen,
            "frames_scored": session.tally.frames_scored,
            "dropped": session.dropped,
            "frame": {"index": frame.index, "time_s": round(frame.timestamp_s, 2),
                      "probability": None if result.probability is None else round(float(result.probability), 4),
                      "abnormal": None if result.abnormal is None else bool(result.abnormal),
                      "state": state[0], "counted": state[1], "why": state[2],
                      "key_index": result.key_index},
            "key_frames": result.key_frames,
            "abnormal_key_frames": result.abnormal_key_frames,
            "abnormal_fraction": result.abnormal_fraction,
            "threshold": d.patient_threshold,
            "image_cutoff": d.image_cutoff,
            "min_key_frames": d.min_key_frames,
            "cam_scale": None if scale is None else {"lo": scale.lo, "hi": scale.hi, "fitted_on": scale.fitted_on},
            "verdicts": [],
        }

    def _set_state(self, state: str) -> None:
        with self._lock:
            if self._status.get("state") != state:
                self._seq += 1
                self._status = {**self._status, "state": state, "seq": self._seq}

    def flush(self) -> None:
        """End the progress line on stderr before a session's verdict is logged."""
        self.progress.flush()

    def close(self) -> None:
        """Show the verdict, hold it for the pages watching, then stop the server."""
        if self._closed:
            return
        self._closed = True
        self.progress.close()
        verdicts = []
        for s in self._sessions:
            try:
                r = s.result()
            except Exception:  # pragma: no cover - a session that cannot say: nothing to show for it
                continue
            verdicts.append({
                "session": r.session_id, "diagnosis": r.diagnosis, "why": why_line(r), "reason": str(r.reason),
                "abnormal_fraction": r.abnormal_fraction, "abnormal_key_frames": r.abnormal_key_frames,
                "key_frames": r.key_frames, "threshold": r.threshold, "ended_by": r.ended_by,
                "summary": None if r.summary is None else str(r.summary),
                "pdf": None if getattr(r, "pdf", None) is None else str(r.pdf),
                "report": None if r.report is None else str(r.report),
            })
        with self._lock:
            self._seq += 1
            self._ended = True
            self._status = {**self._status, "state": "ended", "seq": self._seq, "verdicts": verdicts}
        deadline = time.monotonic() + max(0.0, self.hold_s)
        while time.monotonic() < deadline and not self._done.is_set():
            with self._lock:  # done once a page has shown the verdict and every page still polling has
                recent = {v for v, t in self._viewers.items() if time.monotonic() - t < 3.0}
                if self._acked and recent <= self._acked:
                    break
            time.sleep(0.05)
        self.server.shutdown()
        self.server.server_close()

    def _open_browser_unless_watched(self, wait_s: float = 3.0) -> None:
        """Open the page in the system's browser, unless a page left open from an earlier exam
        (it keeps asking, every 2 s) has found this one within ``wait_s``."""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and not self._closed:
            with self._lock:
                if self._viewers:
                    return
            time.sleep(0.1)
        if not self._closed:
            _open_browser(self.url)

    # -- the page's side (server threads)
    def status(self, viewer: str | None = None) -> dict[str, Any]:
        with self._lock:
            if viewer and _VIEWER_ID.match(viewer):
                now = time.monotonic()
                self._viewers[viewer] = now
                if len(self._viewers) > MAX_VIEWERS // 2:  # forget pages that stopped asking
                    for v, t in list(self._viewers.items()):
                        if now - t > VIEWER_TTL_S:
                            del self._viewers[v]
                    for v in sorted(self._viewers, key=self._viewers.__getitem__)[:-MAX_VIEWERS]:
                        del self._viewers[v]
                    self._acked &= set(self._viewers)
            return dict(self._status)

    def jpeg(self) -> bytes | None:
        with self._lock:
            seq, picture, cached = self._seq, self._picture, self._jpeg
        if picture is None:
            return None
        if cached is not None and cached[0] == seq:
            return cached[1]
        ok, buf = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        data = buf.tobytes() if ok else b""
        with self._lock:
            self._jpeg = (seq, data)
        return data

    def control(self, action: str, viewer: str | None = None, seq: int | None = None) -> dict[str, Any]:
        """A button or key of the page. ``pause`` with ``seq`` (the picture the page shows) freezes on
        that picture: the exam may have moved on by a frame or two, but stops at the next."""
        if action == "pause":
            if not self._ended:
                self._paused.set()
                with self._lock:
                    shown = next((h for h in self._history if h[0] == seq), None)
                    if shown is not None:
                        self._picture, self._status = shown[1], shown[2]
                        self._jpeg = None
                self._set_state("paused")
        elif action == "resume":
            self._paused.clear()
            if not self._ended:
                self._set_state("scanning")
        elif action == "end":
            self._end.set()
            self._paused.clear()
            if self.stop is not None:
                self.stop.request("ended from the live view")
        elif action == "done":
            self._done.set()
        elif action == "ack":
            if viewer and _VIEWER_ID.match(viewer):
                with self._lock:
                    if len(self._acked) < MAX_VIEWERS:
                        self._acked.add(viewer)
        else:
            raise ValueError(action)
        return self.status()


def _open_browser(url: str) -> None:
    try:
        webbrowser.open(url)
    except Exception as exc:  # pragma: no cover - depends on the desktop
        log.info("could not open a browser (%s); open %s", exc, url)


class _BoundedServer(ThreadingHTTPServer):
    """The page's server: at most ``max_connections`` at once; when full, the oldest connection
    that has not sent a request line is closed to make room, else the new one is; errors of a
    client that went away are logged at debug level only."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], max_connections: int) -> None:
        self.max_connections = max(2, int(max_connections))
        self._open: dict[int, list[Any]] = {}  # id(socket) → [socket, accepted at, sent a request]
        self._open_lock = threading.Lock()
        self._last_full_log = 0.0
        super().__init__(address, handler)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        now = time.monotonic()
        evict = []
        with self._open_lock:
            over = len(self._open) + 1 - self.max_connections
            if over > 0:
                idle = sorted((c for c in self._open.values() if not c[2]), key=lambda c: c[1])  # the newest last
                evict = idle[:over]
                for c in evict:
                    self._open.pop(id(c[0]), None)
                over -= len(evict)
            if over > 0:
                if now - self._last_full_log > 10:
                    self._last_full_log = now
                    log.warning("live page: %d connections open; a new one was refused", len(self._open))
                return False
            self._open[id(request)] = [request, now, False]
        for c in evict:
            try:
                c[0].shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return True

    def requested(self, request: Any) -> None:
        with self._open_lock:
            entry = self._open.get(id(request))
            if entry is not None:
                entry[2] = True

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.pop(id(request), None)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("live page: a connection failed", exc_info=True)  # a client that went away: no traceback


def _handler(view: WebView, timeout_s: float = LIVE_TIMEOUT_S) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "gout-edge-live"
        sys_version = ""
        timeout = timeout_s  # to send the request, and for each read and write

        def parse_request(self) -> bool:
            ok = super().parse_request()
            self.server.requested(self.request)  # type: ignore[attr-defined]
            return ok

        def handle(self) -> None:
            try:
                super().handle()
            except (ConnectionError, TimeoutError, OSError):  # reset, broken pipe, timed out: quietly
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            log.debug("live page: " + format, *args)

        def _host_ok(self) -> bool:
            host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
            return host in ("127.0.0.1", "localhost", "::1", view.host)

        def _send(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, doc: dict[str, Any], status: int = 200) -> None:
            self._send(status, json.dumps(doc, allow_nan=False, default=str).encode(), "application/json")

        def do_GET(self) -> None:  # noqa: N802 - the base class's name
            if not self._host_ok():
                return self._send(HTTPStatus.FORBIDDEN, b"forbidden", "text/plain")
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            if url.path == "/":
                state = json.dumps(view.status(), allow_nan=False, default=str).replace("</", "<\\/")
                page = PAGE.replace("__STATUS__", state)
                return self._send(200, page.encode(), "text/html; charset=utf-8")
            if url.path == "/status":
                return self._json(view.status((query.get("viewer") or [None])[0]))
            if url.path == "/frame.jpg":
                return self._send(200, view.jpeg() or _blank_jpeg(), "image/jpeg")
            return self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")

        do_HEAD = do_GET

        def do_POST(self) -> None:  # noqa: N802 - the base class's name
            if not self._host_ok() or self.headers.get("X-Gout-Edge") != "1":
                return self._send(HTTPStatus.FORBIDDEN, b"forbidden", "text/plain")
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            if url.path != "/control":
                return self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")
            try:
                seq = (query.get("seq") or [""])[0]
                doc = view.control((query.get("action") or [""])[0], (query.get("viewer") or [None])[0],
                                   int(seq) if seq.isdigit() else None)
            except ValueError:
                return self._json({"error": "action must be pause, resume, end, done or ack"}, 400)
            return self._json(doc)

    return Handler


@lru_cache(maxsize=1)
def _blank_jpeg() -> bytes:
    """What the page shows before the first frame: a black 16:9 picture."""
    return cv2.imencode(".jpg", np.zeros((360, 640, 3), np.uint8))[1].tobytes()


# The page: no outside resources; __STATUS__ is the state when the page was served.
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>gout-edge · live exam</title>
<style>
:root { --bg:#141414; --panel:#1e1e1e; --ink:#ececec; --muted:#9a9a9a; --rule:#333;
        --gout:#d23c3c; --ok:#3c9c50; --amber:#e6a01e; }
* { box-sizing:border-box; }
html,body { margin:0; height:100%; background:var(--bg); color:var(--ink);
        font:16px/1.35 "DejaVu Sans","Segoe UI",Roboto,Helvetica,Arial,sans-serif; }
header { display:flex; align-items:center; gap:14px; padding:8px 14px; background:#0c0c0c; border-bottom:1px solid var(--rule); }
header h1 { font-size:18px; margin:0; font-weight:700; }
header .session { color:var(--muted); font-size:14px; }
header .state { margin-left:auto; font-weight:700; padding:3px 10px; border-radius:4px; background:#2a2a2a; }
header .state.paused { background:var(--amber); color:#000; }
header .state.ended { background:#444; }
button { font:inherit; font-weight:700; color:var(--ink); background:#2d2d2d; border:1px solid #555;
         border-radius:6px; padding:6px 14px; cursor:pointer; }
button:hover { background:#3a3a3a; } button.end { border-color:var(--gout); }
button:disabled { opacity:.4; cursor:default; }
main { display:flex; gap:12px; padding:12px; height:calc(100% - 84px); }
#view { flex:1 1 auto; display:flex; align-items:center; justify-content:center; background:#000; border-radius:6px; min-width:0; }
#frame { max-width:100%; max-height:100%; display:block; }
aside { flex:0 0 330px; display:flex; flex-direction:column; gap:10px; overflow:auto; }
.card { background:var(--panel); border-radius:6px; padding:10px 12px; }
.card h2 { font-size:13px; text-transform:uppercase; letter-spacing:.06em; color:var(--muted); margin:0 0 6px; }
.big { font-size:40px; font-weight:700; line-height:1.1; }
.why { font-size:15px; margin-top:4px; }
.why.no { color:var(--amber); } .why.yes { color:#7fd18b; }
.gauge { position:relative; height:18px; background:#2b2b2b; border-radius:3px; margin:24px 0 34px; }
.gauge .fill { position:absolute; left:0; top:0; bottom:0; border-radius:3px; }
.gauge .thr { position:absolute; top:-6px; bottom:-6px; width:3px; background:#fff; }
.gauge .thr span { position:absolute; top:28px; left:-60px; width:124px; text-align:center; font-size:13px; color:var(--ink); white-space:nowrap; }
.gauge .ticks { position:absolute; top:-18px; left:0; right:0; font-size:11px; color:var(--muted); }
.gauge .ticks span { position:absolute; transform:translateX(-50%); }
.row { display:flex; justify-content:space-between; font-size:15px; }
.row b { font-size:17px; }
#verdict { display:none; }
#verdict.shown { display:block; }
#verdict .big { font-size:44px; }
#verdict.gout { background:var(--gout); } #verdict.nogout { background:var(--ok); } #verdict.indeterminate { background:var(--amber); color:#000; }
#verdict .paths { font-size:12px; word-break:break-all; margin-top:6px; opacity:.9; }
footer { height:28px; padding:4px 14px; font-size:12px; color:var(--muted); border-top:1px solid var(--rule); }
.keys { color:var(--muted); font-size:13px; }
#note { color:var(--amber); font-size:13px; }
#note:empty { display:none; }
</style></head>
<body>
<header><h1>gout-edge · live exam</h1><span class="session" id="session"></span>
<span class="keys">Space: pause · q / Esc: end exam</span>
<button id="pause" onclick="toggle()">Pause</button><button class="end" id="end" onclick="act(last.state === 'ended' ? 'done' : 'end')">End exam</button>
<span class="state" id="state">…</span></header>
<main>
<div id="view"><img id="frame" alt="the current frame with its CAM" src="/frame.jpg?seq=0"></div>
<aside>
<div id="note"></div>
<div class="card" id="verdict"><h2>Verdict</h2><div class="big" id="v-dx"></div><div class="why" id="v-why"></div><div class="paths" id="v-paths"></div></div>
<div class="card"><h2>This frame</h2>
<div class="big" id="p">–</div><div class="why" id="why"></div></div>
<div class="card"><h2>Exam so far: abnormal fraction</h2>
<div class="row"><b id="fraction">–</b><span id="counts"></span></div>
<div class="gauge" id="gauge"><div class="ticks"><span style="left:0">0</span><span style="left:50%">0.5</span><span style="left:100%">1</span></div>
<div class="fill" id="fill"></div><div class="thr" id="thr"><span id="thr-label"></span></div></div>
<div class="why" id="running"></div></div>
<div class="card"><h2>Key frames</h2>
<div class="row"><span>key frames (voting)</span><b id="keys">0</b></div>
<div class="row"><span>frames seen</span><span id="seen">0</span></div>
<div class="row"><span>scored by the model</span><span id="scored">0</span></div>
<div class="row"><span>dropped (model busy)</span><span id="dropped">0</span></div></div>
</aside></main>
<footer id="footer">Research software: not for clinical use.</footer>
<script>
"use strict";
const first = __STATUS__;
const viewer = Math.random().toString(16).slice(2, 10);
let shown = -1, loading = false, last = first, acked = false, lost = 0, over = false;
const $ = (id) => document.getElementById(id);
function fmt(x, d) { return x === null || x === undefined ? "–" : Number(x).toFixed(d); }
function render(s) {
  last = s;
  $("session").textContent = s.session ? "session " + s.session : "waiting for the first frame";
  const st = $("state"); st.textContent = s.state; st.className = "state " + s.state;
  $("pause").textContent = s.state === "paused" ? "Resume" : "Pause";
  $("pause").disabled = s.state === "ended";
  $("end").textContent = s.state === "ended" ? "Done" : "End exam";
  const f = s.frame;
  if (f) {
    $("p").textContent = f.probability === null ? "not scored" : "p = " + fmt(f.probability, 2);
    $("p").style.color = f.probability === null ? "var(--muted)" : (f.abnormal ? "var(--gout)" : "var(--ok)");
    $("why").textContent = f.why; $("why").className = "why " + (f.counted ? "yes" : "no");
  }
  const t = s.threshold, fr = s.abnormal_fraction;
  $("fraction").textContent = fr === null || fr === undefined ? "–" : fmt(fr, 2);
  $("counts").textContent = (s.abnormal_key_frames || 0) + " of " + (s.key_frames || 0) + " key frames abnormal";
  $("fill").style.width = (100 * (fr || 0)) + "%";
  $("fill").style.background = t !== null && fr > t ? "var(--gout)" : "var(--ok)";
  if (t === null || t === undefined) { $("thr").style.display = "none"; }
  else { $("thr").style.display = ""; $("thr").style.left = (100 * t) + "%"; $("thr-label").textContent = "threshold " + fmt(t, 2); }
  const need = (s.min_key_frames || 0) - (s.key_frames || 0);
  $("running").textContent = s.session === undefined ? "" : s.state === "ended" ? "final, for the verdict above"
      : t === null ? "threshold not calibrated: no verdict possible"
      : need > 0 ? need + " more key frame" + (need > 1 ? "s" : "") + " needed for a verdict"
      : (fr > t ? "above" : "not above") + " the threshold so far";
  $("keys").textContent = (s.key_frames || 0) + " (at least " + (s.min_key_frames || "?") + ")";
  $("seen").textContent = s.frames_seen || 0; $("scored").textContent = s.frames_scored || 0;
  $("dropped").textContent = s.dropped || 0;
  if (s.cam_scale) $("footer").textContent = "CAM colours on this model's fixed scale " + fmt(s.cam_scale.lo, 1) + " to "
      + fmt(s.cam_scale.hi, 1) + " (legend right of the image) · research software: not for clinical use.";
  const v = (s.verdicts || [])[s.verdicts ? s.verdicts.length - 1 : 0];
  if (s.state === "ended" && v) {
    const box = $("verdict");
    box.className = "card shown " + v.diagnosis.replace(" ", "");
    $("v-dx").textContent = v.diagnosis.toUpperCase();
    $("v-why").textContent = v.why + (s.verdicts.length > 1 ? " (" + s.verdicts.length + " patients: see each report)" : "");
    const files = [v.summary, v.pdf].filter(Boolean);
    $("v-paths").textContent = files.length ? files.map((f) => f.split("/").pop()).join(" and ") + " in "
        + files[0].slice(0, files[0].lastIndexOf("/")) : "";
  }
  if (s.seq !== shown && !loading && s.seq >= 0) {
    loading = true;
    const img = new Image();
    const seq = s.seq;
    img.onload = () => { $("frame").src = img.src; shown = seq; loading = false; ackIfDone(); };
    img.onerror = () => { loading = false; };
    img.src = "/frame.jpg?seq=" + seq;
  }
}
function ackIfDone() {
  if (last.state === "ended" && !acked) { acked = true; act("ack"); }
}
async function act(action) {
  try { const r = await fetch("/control?action=" + action + "&viewer=" + viewer, {method: "POST", headers: {"X-Gout-Edge": "1"}});
        if (r.ok && action !== "ack") render(await r.json()); } catch (e) {}
}
function toggle() { act(last.state === "paused" ? "resume" : "pause&seq=" + shown); }
async function poll() {
  try {
    const r = await fetch("/status?viewer=" + viewer, {cache: "no-store"});
    const s = await r.json();
    if (over) { location.reload(); return; }  // the next exam: show it from the start
    render(s); lost = 0; $("note").textContent = "";
    if (last.state === "ended") ackIfDone();
  } catch (e) {
    lost += 1;
    over = over || last.state === "ended";
    $("note").textContent = over ? "The exam is over; this page will show the next one when it starts."
        : "Lost contact with gout-edge scan (" + lost + ").";
  }
  setTimeout(poll, over ? 2000 : last.state === "ended" ? 1000 : 120);
}
document.addEventListener("keydown", (e) => {
  if (e.key === " ") { e.preventDefault(); toggle(); }
  else if (e.key === "q" || e.key === "Q" || e.key === "Escape") { act("end"); }
});
render(first);
poll();
</script></body></html>
"""
