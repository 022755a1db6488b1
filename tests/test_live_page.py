"""The live view on a real display stack: ``gout-edge scan --video <phantom recording> --live-view
web`` runs (torch blocked, as on a cart) while a headless Chromium loads the page, runs its
scripts and takes screenshots — once paused on a key frame, once after the exam ended. Checked:
the page loaded and shows the served picture (the frame with the CAM over the region and the
legend of the bundle's fixed scale), the running fraction against the threshold, and the
verdict at the end. Chromium comes from Debian (``chromium-headless-shell``; ``.ci/run``
installs it); without it the test is skipped.

Set ``GOUT_EDGE_SCREENSHOTS=DIR`` to keep the screenshots.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.cli import CLI_WITHOUT_TORCH

from gout_edge.edge_runtime.present.overlay import cam_legend
from gout_edge.manifest import CamScale

BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")
BROWSER = next((b for b in BROWSERS if shutil.which(b)), None)
VERDICT_RGB = {"gout": (0xD2, 0x3C, 0x3C), "no gout": (0x3C, 0x9C, 0x50), "indeterminate": (0xE6, 0xA0, 0x1E)}

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(BROWSER is None, reason="no headless Chromium (apt-get install chromium-headless-shell)")]


def _browser(url: str, shot: Path) -> str:
    """Load ``url`` in headless Chromium, let its scripts run, screenshot it; returns the DOM."""
    proc = subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--window-size=1280,800", f"--screenshot={shot}", "--dump-dom",
                           "--virtual-time-budget=2500", url], capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    return proc.stdout


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read()


def _post(url: str) -> dict:
    req = urllib.request.Request(url, method="POST", headers={"X-Gout-Edge": "1"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def _shows(screenshot: np.ndarray, picture: np.ndarray) -> float:
    """How well ``picture`` appears somewhere in ``screenshot`` at some scale (best normalized
    correlation, matched at a quarter of the size)."""
    small = cv2.resize(screenshot, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
    best = -1.0
    for f in np.arange(0.30, 1.01, 0.02):
        w, h = round(picture.shape[1] * f * 0.25), round(picture.shape[0] * f * 0.25)
        if w >= small.shape[1] or h >= small.shape[0] or w < 16:
            continue
        t = cv2.resize(picture, (w, h), interpolation=cv2.INTER_AREA)
        best = max(best, float(cv2.matchTemplate(small, t, cv2.TM_CCOEFF_NORMED).max()))
    return best


def _count(image: np.ndarray, rgb: tuple[int, int, int], tol: int = 12) -> int:
    b, g, r = (image[..., i].astype(int) for i in range(3))
    return int(((abs(r - rgb[0]) <= tol) & (abs(g - rgb[1]) <= tol) & (abs(b - rgb[2]) <= tol)).sum())


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    """A phantom patient with gout as a console screen recording (synthetic, no patient data)."""
    from gout_edge.phantom import generate_cohort
    from gout_edge.phantom.video import write_video

    phantom = generate_cohort(1, 0)[0]
    assert phantom.diagnosis == "gout"
    path, _, _ = write_video(tmp_path_factory.mktemp("video"), phantom, 0, 0)
    return path


def test_the_live_page_in_a_real_browser_during_and_after_the_exam(recording, tmp_path):
    err_path = tmp_path / "scan.err"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    with open(err_path, "w") as err:
        proc = subprocess.Popen([sys.executable, "-c", CLI_WITHOUT_TORCH, "scan", "--video", str(recording),
                                 "--live-view", "web", "--live-port", "0", "--live-hold", "60", "--patient", "MRN-LIVE-1",
                                 "--out", str(tmp_path / "scans")], stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        url = None
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            m = re.search(r"live view: (http://127\.0\.0\.1:\d+/)", err_path.read_text())
            url = m.group(1) if m else time.sleep(0.1)
        assert url, err_path.read_text()[-3000:]

        # 1. paused on a key frame the model finds abnormal
        def wanted(s: dict) -> bool:
            f = s.get("frame") or {}
            return f.get("state") == "key" and (f.get("probability") or 0) > 0.6 and s["key_frames"] >= 2

        status: dict = {}
        while time.monotonic() < deadline:
            status = json.loads(_get(url + "status"))
            assert status["state"] != "ended", "the exam ended before the page could be paused on a lesion"
            if wanted(status):  # freeze on that very picture, as Space on the page does
                _post(url + f"control?action=pause&seq={status['seq']}")
                status = json.loads(_get(url + "status"))
                break
            time.sleep(0.02)
        assert status["state"] == "paused", status
        dom = _browser(url, tmp_path / "paused.png")
        shot = cv2.imread(str(tmp_path / "paused.png"))
        picture = cv2.imdecode(np.frombuffer(_get(url + "frame.jpg"), np.uint8), cv2.IMREAD_COLOR)

        assert shot.shape[:2] == (800, 1280) and shot.std() > 20  # the page loaded: not a blank window
        assert _shows(shot, picture) > 0.8  # the browser shows the served picture
        scale = CamScale(**status["cam_scale"])
        legend = cam_legend(scale, picture.shape[0], dark=True)
        strip = picture[:, -legend.shape[1]:]
        assert np.abs(strip.astype(int) - legend.astype(int)).mean() < 6  # the legend of the fixed scale, on the right
        frame = picture[:, : -legend.shape[1]].astype(int)
        b, g, r = frame[..., 0], frame[..., 1], frame[..., 2]
        warm = ((r - np.maximum(g, b)) > 40) & (r > 100)
        assert warm.sum() > 300  # the CAM glows over the lesion
        p = status["frame"]["probability"]
        shown = re.search(r"p = (\d\.\d\d)", dom)  # the page rounds with JavaScript's toFixed, not Python's format
        assert shown and abs(float(shown.group(1)) - p) <= 0.005 + 1e-9, (shown and shown.group(0), p)
        assert "counted: key frame" in dom and "paused" in dom
        assert f"threshold {status['threshold']:.2f}" in dom and f"{status['abnormal_fraction']:.2f}" in dom
        assert "MRN-LIVE-1" not in dom and "MRN-LIVE-1" not in json.dumps(status)

        # 2. the exam runs on to its end; the page shows the verdict
        _post(url + "control?action=resume")
        while json.loads(_get(url + "status"))["state"] != "ended":
            assert time.monotonic() < deadline and proc.poll() is None, err_path.read_text()[-3000:]
            time.sleep(0.2)
        final = json.loads(_get(url + "status"))
        verdict = final["verdicts"][0]
        dom = _browser(url, tmp_path / "ended.png")
        shot = cv2.imread(str(tmp_path / "ended.png"))
        assert verdict["diagnosis"].upper() in dom and verdict["why"] in dom and "ended" in dom
        assert _count(shot, VERDICT_RGB[verdict["diagnosis"]]) > 20_000  # the verdict's coloured box

        out, _ = proc.communicate(timeout=60)  # the page has shown the verdict: scan ends
        assert proc.returncode == 0, err_path.read_text()[-3000:]
        for name in ("summary.png", "report.pdf", "report.json"):
            assert name in out
        assert Path(verdict["pdf"]).is_file() and Path(verdict["summary"]).is_file()
        assert "Traceback" not in err_path.read_text() and "MRN-LIVE-1" not in err_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        keep = os.environ.get("GOUT_EDGE_SCREENSHOTS")
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            for name in ("paused.png", "ended.png"):
                if (tmp_path / name).is_file():
                    shutil.copy(tmp_path / name, Path(keep) / f"live-{name}")
