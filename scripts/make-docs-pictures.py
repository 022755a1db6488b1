"""Regenerate the bedside-screen pictures in docs/ that the README's "The bedside screen" shows.

    python scripts/make-docs-pictures.py              # all of them, into docs/
    python scripts/make-docs-pictures.py --no-live    # without the live-page screenshots

The demo bundle scans synthetic phantom recordings (no patient data): a patient with gout, one
without, and one whose recording is spoiled (the probe lifted and colour Doppler switched on for
most of it) so that the exam ends indeterminate; and a cardiac cine from the out-of-scope
generator, which the scope guard refuses. Written: ``summary-gout.png``, ``summary-no-gout.png``,
``summary-indeterminate.png``, ``summary-out-of-scope.png`` (each exam's ``summary.png``),
``overlay-low.png`` and ``overlay-high.png`` (the CAM of a low- and a high-probability frame on
the bundle's fixed scale), and with a headless Chromium (Debian: ``apt-get install
chromium-headless-shell``) ``live-view.png`` (the live page, paused on a key frame) and
``live-view-verdict.png`` (the page when the exam has ended), taken while
``gout-edge scan --video … --live-view web`` runs. Each picture is kept under 300 KB (scaled down
and, when needed, reduced to 256 colours).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from gout_edge.edge_runtime.exam.driver import run_exam
from gout_edge.edge_runtime.inference.cam_scale import cam_scale_for
from gout_edge.edge_runtime.inference.loading import open_bundle
from gout_edge.edge_runtime.inference.scoring import Scorer
from gout_edge.edge_runtime.present.report import Tile, render_overlay
from gout_edge.edge_runtime.sources import open_source
from gout_edge.phantom import generate_cohort, write_out_of_scope
from gout_edge.phantom.source import PhantomSource
from gout_edge.phantom.video import write_video

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 300 * 1024
SEED = 0  # cohort 0: P0001 gout, P0002 control, P0003 gout (the demo's seed)
BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")


def save_small(path: Path, bgr: np.ndarray, width: int) -> Path:
    """``bgr`` as a PNG under ``LIMIT`` bytes: at most ``width`` wide, 256 colours if need be."""
    while True:
        img = bgr if bgr.shape[1] <= width else cv2.resize(
            bgr, (width, round(bgr.shape[0] * width / bgr.shape[1])), interpolation=cv2.INTER_AREA)
        rgb = Image.fromarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
        for candidate in (rgb, rgb.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)):
            buf = io.BytesIO()
            candidate.save(buf, "PNG", optimize=True)
            if buf.tell() <= LIMIT:
                path.write_bytes(buf.getvalue())
                print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {img.shape[1]}×{img.shape[0]}, "
                      f"{buf.tell() // 1024} KB")
                return path
        width = int(width * 0.9)


class Spoiled:
    """A phantom recording whose probe is lifted, then colour Doppler switched on, for most of it."""

    kind, live, lost, end_reason, read_ahead = "video", False, False, None, 0

    def __init__(self, source: PhantomSource) -> None:
        self.source = source
        self.rect = source.truth["bmode_rect"]

    def __getattr__(self, name: str):  # every other FrameSource member as the recording has it
        return getattr(self.source, name)

    def __iter__(self):
        frames = list(self.source)
        n = len(frames)
        x0, y0, x1, y1 = self.rect
        for i, frame in enumerate(frames):
            image = frame.image.copy()
            if n * 0.22 <= i < n * 0.6:  # probe lifted: no echo in the region
                image[y0:y1, x0:x1] = (image[y0:y1, x0:x1] * 0.03).astype(np.uint8)
            elif i >= n * 0.6:  # colour flow boxes over the joint
                cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
                cv2.ellipse(image, (cx - 60, cy - 30), (90, 40), 15, 0, 360, (40, 40, 220), -1)
                cv2.ellipse(image, (cx + 80, cy + 10), (70, 30), -10, 0, 360, (220, 90, 30), -1)
            yield dataclasses.replace(frame, image=image)
        self.end_reason = self.source.end_reason

    def close(self) -> None:
        self.source.close()


def exams(out: Path, work: Path) -> None:
    bundle = open_bundle()
    scorer = Scorer(bundle)
    scale = cam_scale_for(bundle)
    frames_seen: dict[str, list] = {}
    try:
        for name, index, spoil in (("gout", 0, False), ("no-gout", 1, False), ("indeterminate", 2, True)):
            source = PhantomSource(SEED, index, realtime=False)
            wrapped = Spoiled(source) if spoil else source
            try:
                result = run_exam(wrapped, bundle, scorer, work / name, patient=f"PHANTOM-{SEED}-{index + 1:02d}")
            finally:
                wrapped.close()
            patient = result.patients[0]
            print(f"{name}: {patient.diagnosis} ({patient.reason}); phantom truth {source.diagnosis}")
            save_small(out / f"summary-{name}.png", cv2.imread(str(patient.summary)), 1000)
            frames_seen[name] = patient.key_frame_list
        # something else entirely: a cardiac cine, refused by the scope guard
        write_out_of_scope(work / "oos", seed=SEED, per_category=1, formats=("video",), kinds=("cardiac_sector",))
        clip = next((work / "oos" / "out_of_scope").rglob("cardiac_sector_0.*"))
        result = run_exam(open_source("video", clip), bundle, scorer, work / "out-of-scope", patient="PHANTOM-OOS-01")
        patient = result.patients[0]
        print(f"out of scope: {patient.diagnosis} ({patient.reason})")
        save_small(out / "summary-out-of-scope.png", cv2.imread(str(patient.summary)), 1000)
        # a low- and a high-probability frame of the two clean recordings, scored one by one
        picks = []
        for index in (1, 0):
            source = PhantomSource(SEED, index, realtime=False)
            try:
                best = None
                for frame in source:
                    s = scorer.score([frame.image])[0]
                    if not s.usable:
                        continue
                    key = s.probability if index == 0 else -s.probability
                    if best is None or key > best[0]:
                        best = (key, frame, s)
            finally:
                source.close()
            assert best is not None
            _, frame, s = best
            r = s.roi
            picks.append(Tile(None, s.probability, frame.image[r.y0 : r.y1, r.x0 : r.x1].copy(), s.cam,
                              frame.origin, frame.timestamp_s, False, s.abnormal))
        for name, tile in zip(("overlay-low", "overlay-high"), picks, strict=True):
            save_small(out / f"{name}.png", render_overlay(tile, scale, width=900), 900)
    finally:
        scorer.close()


# ------------------------------------------------------------------------------------ the live page


def _browser() -> str | None:
    return next((b for b in BROWSERS if shutil.which(b)), None)


def screenshot(browser: str, url: str, path: Path, size: str = "1280,800") -> Path:
    """The page at ``url`` as a real browser renders it (after its scripts ran)."""
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--window-size={size}",
                    f"--screenshot={path}", "--virtual-time-budget=2500", url],
                   check=True, capture_output=True, timeout=60)
    return path


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def post(url: str) -> dict:
    req = urllib.request.Request(url, method="POST", headers={"X-Gout-Edge": "1"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def live(out: Path, work: Path) -> None:
    browser = _browser()
    if browser is None:
        print("no headless Chromium found (apt-get install chromium-headless-shell): live-view pictures skipped")
        return
    phantom = generate_cohort(SEED + 1, SEED)[0]
    video, _, _ = write_video(work / "video", phantom, 0, SEED)
    err = (work / "scan.err").open("w")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    proc = subprocess.Popen([sys.executable, "-m", "gout_edge.cli", "scan", "--video", str(video), "--live-view", "web",
                             "--live-port", "0", "--live-hold", "60", "--patient", "PHANTOM-0-01",
                             "--out", str(work / "live")], stdout=subprocess.DEVNULL, stderr=err, env=env)
    try:
        url = None
        for _ in range(300):
            m = re.search(r"live view: (http://\S+)", (work / "scan.err").read_text())
            if m:
                url = m.group(1)
                break
            time.sleep(0.1)
        assert url, (work / "scan.err").read_text()
        def wanted(s: dict) -> bool:
            f = s.get("frame") or {}
            return f.get("state") == "key" and (f.get("probability") or 0) > 0.6 and s.get("key_frames", 0) >= 3

        while True:  # pause on a key frame the model finds abnormal
            s = get(url + "status")
            if s["state"] == "ended":
                raise RuntimeError("the exam ended before it paused on a key frame with a lesion")
            if wanted(s):  # freeze on that very picture, as Space on the page does
                post(url + f"control?action=pause&seq={s['seq']}")
                break
            time.sleep(0.02)
        tmp = work / "shot.png"
        save_small(out / "live-view.png", cv2.imread(str(screenshot(browser, url, tmp))), 1280)
        post(url + "control?action=resume")
        while get(url + "status")["state"] != "ended":
            time.sleep(0.2)
        save_small(out / "live-view-verdict.png", cv2.imread(str(screenshot(browser, url, tmp))), 1280)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.terminate()
        err.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs")
    ap.add_argument("--no-live", action="store_true", help="skip the live-page screenshots")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gout-edge-docs-") as tmp:
        exams(args.out, Path(tmp))
        if not args.no_live:
            live(args.out, Path(tmp))


if __name__ == "__main__":
    main()
