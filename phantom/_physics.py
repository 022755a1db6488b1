"""B-mode image formation in numpy: PSF, speckle, attenuation, TGC and log compression.

The recipe is the one in ``notes/ultrasound.md`` ("Fast B-mode simulation"):

1. tissue maps give, per pixel, a diffuse echogenicity ``E`` (scattered power), a coherent
   specular amplitude ``C`` (interfaces, already weighted by their angle to the beam) and an
   attenuation ``mu`` in nepers per mm;
2. scatterers ``s = (n1 + i n2) / sqrt(2) * sqrt(E)`` with ``n ~ N(0, 1)`` give fully developed
   speckle;
3. the separable point-spread function ``h = exp(-x²/2σx² - z²/2σz²) exp(i 4π z / λ)`` is
   applied with 1-D filters (cv2), and the lateral width grows away from the focus;
4. transmission ``T = exp(-2 ∫ mu dz)`` down each column gives acoustic shadows under bone and
   posterior enhancement under fluid; time-gain compensation ``G(z)`` undoes part of the nominal
   tissue attenuation;
5. the envelope ``|h ⊛ (s T G + C T G)|`` is log-compressed to ``dynamic_range_db`` and passed
   through the scanner's grey map.

The electronic noise floor is a second circular Gaussian field; two independent circular
Gaussians add to one with the summed variance, so the floor costs nothing: the scatterer
amplitude becomes ``sqrt(E (T G)² + noise²)``. The PSF's sum of squares is 1, so a homogeneous
region of power ``E`` has mean envelope power ``E`` (and a Rayleigh envelope, mean/std ≈ 1.91).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

SPEED_OF_SOUND_MM_PER_US = 1.54
DB_PER_NEPER = 8.686
#: Mean of 20·log10 of a Rayleigh envelope relative to its RMS value (−γ·10/ln 10 dB).
RAYLEIGH_LOG_BIAS_DB = -2.507


def wavelength_mm(freq_mhz: float) -> float:
    """λ = c / f₀ (≈ 0.10–0.15 mm at 10–15 MHz)."""
    return SPEED_OF_SOUND_MM_PER_US / freq_mhz


def tissue_attenuation_np_per_mm(freq_mhz: float, alpha_db_cm_mhz: float = 0.6) -> float:
    """One-way amplitude attenuation of soft tissue at ``freq_mhz`` in nepers per mm."""
    return alpha_db_cm_mhz * freq_mhz / DB_PER_NEPER / 10.0


@dataclass(frozen=True)
class Psf:
    """A separable PSF sampled on the pixel grid: one axial (complex) and two lateral kernels."""

    axial_re: np.ndarray
    axial_im: np.ndarray
    lateral_focus: np.ndarray  # at the focal depth
    lateral_far: np.ndarray  # far from the focus
    look_step_rad_per_px: float  # carrier spacing of frequency-compounding sub-bands


def _gaussian(sigma_px: float) -> np.ndarray:
    half = max(1, int(np.ceil(3.0 * sigma_px)))
    t = np.arange(-half, half + 1, dtype=np.float64)
    g = np.exp(-0.5 * (t / sigma_px) ** 2)
    return g / np.sqrt(np.sum(g**2))


@lru_cache(maxsize=128)
def _psf_cached(pixel_um: int, freq_khz: int, sigma_x_wl_milli: int, sigma_z_wl_milli: int) -> Psf:
    pixel_mm, freq_mhz = pixel_um / 1000.0, freq_khz / 1000.0
    lam = wavelength_mm(freq_mhz)
    sigma_z_px = max(0.45, sigma_z_wl_milli / 1000.0 * lam / pixel_mm)
    sigma_x_px = max(0.6, sigma_x_wl_milli / 1000.0 * lam / pixel_mm)
    gz = _gaussian(sigma_z_px)
    z_mm = (np.arange(gz.size) - gz.size // 2) * pixel_mm
    carrier = np.exp(1j * 4.0 * np.pi * z_mm / lam)  # sampled as is: the envelope does not alias
    axial = gz * carrier
    # cv2.filter2D correlates; flip so that the result is a convolution.
    axial = axial[::-1]
    return Psf(
        axial_re=np.ascontiguousarray(axial.real, dtype=np.float32).reshape(-1, 1),
        axial_im=np.ascontiguousarray(axial.imag, dtype=np.float32).reshape(-1, 1),
        lateral_focus=_gaussian(sigma_x_px).astype(np.float32).reshape(1, -1),
        lateral_far=_gaussian(2.2 * sigma_x_px).astype(np.float32).reshape(1, -1),
        look_step_rad_per_px=1.2 / sigma_z_px,
    )


def psf_kernels(pixel_mm: float, freq_mhz: float, sigma_x_wl: float = 1.8, sigma_z_wl: float = 0.55) -> Psf:
    """The PSF for a pixel size and centre frequency; σ in wavelengths (σz 0.5–1 λ, σx 1.5–3 λ).

    Kernels are cached (rounded to 1 µm, 1 kHz), so a batch of images reuses them.
    """
    return _psf_cached(
        int(round(pixel_mm * 1000)), int(round(freq_mhz * 1000)),
        int(round(sigma_x_wl * 1000)), int(round(sigma_z_wl * 1000)),
    )


def _filter(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    return cv2.filter2D(image, cv2.CV_32F, kernel, borderType=cv2.BORDER_REFLECT)


def envelope(
    field_re: np.ndarray,
    field_im: np.ndarray,
    psf: Psf,
    far_weight: np.ndarray | None = None,
    looks: int = 1,
) -> np.ndarray:
    """|h ⊛ s| for a complex field given as two float32 planes.

    ``far_weight`` (H×1, 0 at the focus … 1 far from it) blends the focused and the wide lateral
    kernel, a depth-dependent beam width. ``looks`` > 1 is frequency compounding: the envelopes
    of sub-bands with carriers one axial bandwidth apart are averaged in power, which lowers the
    speckle contrast as a scanner's compounding does (``looks=1`` is plain Rayleigh speckle).
    """
    power = None
    for look in range(looks):
        shift = (look - (looks - 1) / 2.0) * psf.look_step_rad_per_px
        a_re, a_im = psf.axial_re, psf.axial_im
        if shift:
            rot = np.exp(1j * shift * (np.arange(a_re.size) - a_re.size // 2)).reshape(-1, 1)
            rotated = (a_re + 1j * a_im) * rot
            a_re = rotated.real.astype(np.float32)
            a_im = rotated.imag.astype(np.float32)
        # Axial: (a + ib) ⊛ (c + id) = (a⊛c − b⊛d) + i(a⊛d + b⊛c)
        y_re = _filter(field_re, a_re) - _filter(field_im, a_im)
        y_im = _filter(field_re, a_im) + _filter(field_im, a_re)
        f_re, f_im = _filter(y_re, psf.lateral_focus), _filter(y_im, psf.lateral_focus)
        if far_weight is not None:
            w_re, w_im = _filter(y_re, psf.lateral_far), _filter(y_im, psf.lateral_far)
            f_re += far_weight * (w_re - f_re)
            f_im += far_weight * (w_im - f_im)
        p = f_re * f_re + f_im * f_im
        power = p if power is None else power + p
    if looks == 1:
        return np.sqrt(power)
    return np.sqrt(power * np.float32(1.0 / looks))


def transmission(mu_np_per_mm: np.ndarray, pixel_mm: float) -> np.ndarray:
    """Round-trip amplitude transmission to each pixel: exp(−2 ∫₀^z μ dz), exclusive of the pixel."""
    depth_np = np.cumsum(mu_np_per_mm, axis=0, dtype=np.float32)
    depth_np -= mu_np_per_mm  # exclusive: a reflector is seen before its own attenuation
    return np.exp(-2.0 * pixel_mm * depth_np)


def tgc_gain(depth_mm: np.ndarray, freq_mhz: float, tgc_fraction: float, gain_db: float) -> np.ndarray:
    """Overall gain × time-gain compensation of ``tgc_fraction`` of the nominal tissue loss."""
    mu0 = tissue_attenuation_np_per_mm(freq_mhz)
    return (10.0 ** (gain_db / 20.0) * np.exp(2.0 * tgc_fraction * mu0 * depth_mm)).astype(np.float32)


def grey_map(x: np.ndarray, gamma: float) -> np.ndarray:
    """The scanner's post-processing curve on log-compressed values in [0, 1]."""
    return x**gamma


def log_compress(
    amplitude: np.ndarray, dynamic_range_db: float, gamma: float = 1.0, black_grey: float = 0.0
) -> np.ndarray:
    """I = black + (255 − black) · map(clip((20 log10 A + DR) / DR, 0, 1)) → uint8 (A = 1 ↔ white).

    ``black_grey`` is the display's black level: echo-free pixels inside the B-mode area never
    reach the black of the screen around it.
    """
    db = 20.0 * np.log10(np.maximum(amplitude, 1e-12, dtype=np.float32))
    x = np.clip((db + dynamic_range_db) / dynamic_range_db, 0.0, 1.0)
    if gamma != 1.0:
        x = grey_map(x, gamma)
    return (x * (255.0 - black_grey) + (black_grey + 0.5)).astype(np.uint8)


def noise_amplitude(noise_grey: float, dynamic_range_db: float, gamma: float, black_grey: float = 0.0) -> float:
    """RMS amplitude of the electronic noise whose log-compressed envelope sits near ``noise_grey``."""
    x = (max(noise_grey - black_grey, 1.0) / (255.0 - black_grey)) ** (1.0 / gamma)
    db = x * dynamic_range_db - dynamic_range_db - RAYLEIGH_LOG_BIAS_DB
    return float(10.0 ** (db / 20.0))


def complex_noise(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Circular complex white Gaussian noise, unit mean power, as two float32 planes."""
    n = rng.standard_normal((2, height, width), dtype=np.float32)
    n *= np.float32(np.sqrt(0.5))
    return n[0], n[1]


def speckle_envelope(
    power: np.ndarray, rng: np.random.Generator, pixel_mm: float, freq_mhz: float
) -> np.ndarray:
    """Envelope of scatterers with power map ``power`` seen through the PSF (tests, examples)."""
    n_re, n_im = complex_noise(rng, *power.shape)
    amp = np.sqrt(power.astype(np.float32))
    return envelope(n_re * amp, n_im * amp, psf_kernels(pixel_mm, freq_mhz))
