"""MJPG decode + Doppler gate: the full-colour decode against decodes that skip colour conversion.

    python benchmarks/decode_planes.py --runs 40

What ``ScreenDecoder`` → ``FramePreparer`` costs per 1080p MJPG frame up to the grey crop and
the colour flag, on two screens: ``tests/support/screens.py``'s ``screen`` (uncorrelated speckle:
a worst case for the entropy decoder) and a phantom video frame (``gout_edge.phantom``), each
JPEG-encoded at quality 90 with 4:2:0 and with 4:2:2 chroma (grabbers send either). Paths:

- ``colour`` (the current path): ``cv2.imdecode(IMREAD_COLOR)``, ``is_doppler`` on the region,
  the region converted to grey.
- ``grey+reduced8``: ``IMREAD_GRAYSCALE`` (libjpeg skips the chroma IDCT, upsampling and colour
  conversion) plus an ``IMREAD_REDUCED_COLOR_8`` decode for the gate — two entropy decodes.
- ``grey only``: ``IMREAD_GRAYSCALE`` alone, no gate — the floor of any OpenCV-only grey path.
- ``planes`` (the runtime's path where PyTurboJPEG finds libturbojpeg; ``ScreenDecoder()``): one
  decode to the JPEG's own Y, Cb, Cr planes, Y as the grey image, a BGR sample on the
  ``COLOUR_STRIDE`` grid built from the planes (``FramePreparer`` reads the part under the region)
  for the gate. Without libturbojpeg (Debian: libturbojpeg0) the runtime falls back to ``colour``
  and this row is left out.

The paths run interleaved, one call each per round, OpenCV on one thread; the table gives the
median over rounds, the p10–p90 spread and the ratio of medians to ``colour``. Read the CPU class
off the header (``/proc/cpuinfo``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from idle_gap_latency import cpu_class  # noqa: E402
from support.screens import screen  # noqa: E402

from gout_edge.edge_runtime.imaging.preprocess import Roi, colour_blobs, is_doppler  # noqa: E402
from gout_edge.edge_runtime.sources.video import ScreenDecoder  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=40)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    decoder = ScreenDecoder()
    tj = decoder.planes
    from gout_edge.phantom import generate_cohort
    from gout_edge.phantom._screen import layout_for
    from gout_edge.phantom.video import clip

    patient = generate_cohort(2, seed=11)[0]
    frames = [f for f, _ in clip(patient, layout_for(patient.scanner, (1920, 1080)), seed=11, seconds_per_view=0.4)]
    from gout_edge.edge_runtime.pipeline.stream import RoiTracker, _sample_under

    synthetic = cv2.cvtColor(screen(1080, 1920, rect=(120, 90, 1560, 930), seed=4), cv2.COLOR_GRAY2BGR)
    phantom = frames[len(frames) // 2]
    print(f"CPU: {cpu_class()}; OpenCV {cv2.__version__}; PyTurboJPEG planes: {'yes' if tj else 'not available'}")
    for name, image in (("screen()", synthetic), ("phantom", phantom)):
        r = RoiTracker().locate(image)[0] or Roi(0, 0, 1920, 1080)
        for sub, label in ((cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420, "4:2:0"), (cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422, "4:2:2")):
            data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, sub])[1]
            buf, raw = data.reshape(-1), data.tobytes()

            def colour(buf=buf, r=r):
                bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
                region = bgr[r.y0 : r.y1, r.x0 : r.x1]
                return cv2.cvtColor(region, cv2.COLOR_BGR2GRAY), is_doppler(region)

            def grey_reduced(buf=buf, r=r):
                grey = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
                small = cv2.imdecode(buf, cv2.IMREAD_REDUCED_COLOR_8)
                return grey[r.y0 : r.y1, r.x0 : r.x1], colour_blobs(small[r.y0 // 8 : r.y1 // 8, r.x0 // 8 : r.x1 // 8])

            def grey_only(buf=buf, r=r):
                return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)[r.y0 : r.y1, r.x0 : r.x1], False

            paths = {"colour": colour, "grey+reduced8": grey_reduced, "grey only": grey_only}
            if tj:
                def planes(raw=raw, r=r):
                    y, sample = decoder(raw)
                    return y[r.y0 : r.y1, r.x0 : r.x1], colour_blobs(_sample_under(sample, r))

                paths["planes"] = planes
            reference = colour()
            times: dict[str, list[float]] = {p: [] for p in paths}
            for fn in paths.values():
                fn()
            for _ in range(args.runs):
                for p, fn in paths.items():
                    t0 = time.perf_counter()
                    fn()
                    times[p].append((time.perf_counter() - t0) * 1e3)
            print(f"\n{name} {label}, {len(raw) / 1e3:.0f} kB, region {r.width}×{r.height}")
            base = float(np.median(times["colour"]))
            for p, v in times.items():
                a = np.array(v)
                grey, flag = paths[p]()
                same = int(np.abs(grey.astype(int) - reference[0]).max())
                print(f"  {p:14s} median {np.median(a):6.2f} ms  p10–p90 {np.percentile(a, 10):6.2f}–"
                      f"{np.percentile(a, 90):6.2f}  ×{np.median(a) / base:.2f}   max |grey − colour path's| {same}, "
                      f"colour flag {flag}")


if __name__ == "__main__":
    main()
