"""One procedural infrared scene with small targets: :func:`render_scene`.

Background (grey levels): one of three scene types, each built from power-law (1/f^beta) noise made in the
Fourier domain, so every spatial scale is present at once:

- ``sky``: a vertical gradient and patchy clouds with bright rims (cloud edges are the classic false alarm);
- ``sea``: sky above a slightly tilted horizon; below it anisotropic wave clutter (long horizontal
  correlation) growing toward the viewer, with sparse sun glints;
- ``land``: sky above a ridge line with a bright edge; rough terrain below with buildings (bright outlines),
  roads and poles.

Then vignetting, column fixed-pattern noise, Gaussian sensor noise and a few hot pixels (single pixels,
smaller than any target). Targets: none in about 10 % of scenes, else 1-3, each a Gaussian point, an
irregular cluster of Gaussians or a soft-edged irregular extended blob; its mask is where its own profile
exceeds a threshold, with 2-80 pixels forming one 8-connected component. Its peak contrast is a
signal-to-clutter ratio (log-uniform 2..12) times the local background std, never below a visible floor;
about 30 % are placed next to strong clutter edges. Targets are kept apart so their masks never touch.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import fft, ndimage

from hnanas.data.augment import EIGHT_CONNECTED

TARGET_FREE_PROB = 0.10
TARGET_COUNT_PROBS = (0.55, 0.30, 0.15)  # 1, 2, 3 targets when the scene has any
MIN_AREA, MAX_AREA = 2, 80
SCR_RANGE = (2.0, 12.0)
NEAR_CLUTTER_PROB = 0.3
PATCH = 17  # side of the square a target is rendered in
MIN_TARGET_DISTANCE = 14


@dataclass(frozen=True)
class TargetInfo:
    kind: str  # point | cluster | extended
    cy: int  # patch centre row
    cx: int  # patch centre column
    area: int  # mask pixels
    scr: float  # signal-to-clutter ratio drawn for it
    contrast: float  # peak contrast added, grey levels


@lru_cache(maxsize=8)
def _log_freq2(h: int, w: int, stretch_x: float) -> np.ndarray:
    """log(fy^2 + (stretch_x fx)^2) on the rfft2 grid, with the DC term set to 0 (read-only, cached)."""
    fy = np.fft.fftfreq(h).astype(np.float32)[:, None] ** 2
    fx = np.fft.rfftfreq(w).astype(np.float32)[None, :] ** 2
    f2 = fy + fx * np.float32(stretch_x * stretch_x)
    f2[0, 0] = 1.0
    out = np.log(f2)
    out.flags.writeable = False
    return out


@lru_cache(maxsize=8)
def _radius2(h: int, w: int) -> np.ndarray:
    """Squared distance from the centre, 1 at the corners (read-only, cached; for vignetting)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = ((yy - h / 2) ** 2 + (xx - w / 2) ** 2) / np.float32(0.25 * (h * h + w * w))
    out.flags.writeable = False
    return out


def power_noise(rng: np.random.Generator, h: int, w: int, beta: float, stretch_x: float = 1.0) -> np.ndarray:
    """Zero-mean, unit-std noise with power spectrum 1/f^beta; ``stretch_x`` > 1 lengthens features
    horizontally (waves). Smooth fields (beta >= 3) keep only frequencies below 1/8 cycle per pixel, where
    all but a negligible part of their energy lies, which makes them several times cheaper."""
    log_f2 = _log_freq2(h, w, round(float(stretch_x), 3))
    if beta >= 3.0:
        ky, kx = max(h // 8, 1), max(w // 8, 1)
        rows = np.r_[0:ky + 1, h - ky:h]
        amp = np.exp(np.float32(-beta / 4.0) * log_f2[rows, : kx + 1])
        amp[0, 0] = 0.0
        white = rng.standard_normal((*amp.shape, 2), dtype=np.float32).view(np.complex64)[..., 0]
        spec = np.zeros(log_f2.shape, dtype=np.complex64)
        spec[rows, : kx + 1] = white * amp
    else:
        amp = np.exp(np.float32(-beta / 4.0) * log_f2)
        amp[0, 0] = 0.0
        spec = rng.standard_normal((*log_f2.shape, 2), dtype=np.float32).view(np.complex64)[..., 0] * amp
    field = fft.irfft2(spec, s=(h, w))  # zero mean: the DC term is 0
    return field * np.float32(1.0 / (float(field.std()) + 1e-8))


def _profile_1d(rng: np.random.Generator, n: int, beta: float) -> np.ndarray:
    freqs = np.fft.rfftfreq(n)
    freqs[0] = 1.0
    spec = (rng.standard_normal(freqs.size) + 1j * rng.standard_normal(freqs.size)) * freqs ** (-beta / 2)
    spec[0] = 0.0
    line = np.fft.irfft(spec, n)
    return (line - line.mean()) / (line.std() + 1e-8)


def _sky(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A vertical gradient and soft clouds: smooth cover thresholded softly, mild inner texture and bright
    rims where the cloud density changes (cloud edges are the classic false alarm)."""
    rows = np.linspace(-1.0, 1.0, h, dtype=np.float32)[:, None]
    sky = rng.uniform(-0.6, 0.6) * rows * np.ones((1, w), np.float32)
    cover = power_noise(rng, h, w, rng.uniform(3.0, 4.0))
    density = 1.0 / (1.0 + np.exp(-(cover - rng.uniform(-0.4, 1.4)) / rng.uniform(0.12, 0.5)))
    texture = power_noise(rng, h, w, rng.uniform(2.0, 2.8))
    clouds = density * (1.0 + rng.uniform(0.05, 0.35) * texture)
    rims = 4.0 * density * (1.0 - density)
    return sky + rng.uniform(0.8, 3.0) * clouds + rng.uniform(0.0, 0.6) * rims


def _structures(rng: np.random.Generator, img: np.ndarray, top: np.ndarray) -> None:
    """Buildings (offset blocks with bright outlines), roads and poles below ``top`` (row per column)."""
    h, w = img.shape
    for _ in range(int(rng.integers(0, 5))):
        bw, bh = int(rng.integers(6, max(w // 5, 7))), int(rng.integers(5, max(h // 5, 6)))
        x0 = int(rng.integers(0, w - bw))
        y0 = int(np.clip(top[x0 + bw // 2] + rng.integers(-bh, h // 3), 0, h - bh))
        img[y0:y0 + bh, x0:x0 + bw] += rng.uniform(-1.0, 1.5)
        edge = rng.uniform(1.0, 3.0)
        img[y0, x0:x0 + bw] += edge
        img[y0:y0 + bh, x0] += edge
        img[y0:y0 + bh, x0 + bw - 1] += edge * rng.uniform(0.2, 1.0)
    for _ in range(int(rng.integers(0, 3))):
        n = 4 * max(h, w)
        x0, x1 = rng.uniform(0, w, 2)
        y0, y1 = rng.uniform(h * 0.3, h, 2)
        t = np.linspace(0.0, 1.0, n, dtype=np.float32)
        ys = np.clip((y0 + (y1 - y0) * t).astype(int), 0, h - 1)
        xs = np.clip((x0 + (x1 - x0) * t).astype(int), 0, w - 1)
        img[ys, xs] = img[ys, xs] + rng.uniform(-1.5, 2.5)


def _background(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, str]:
    kind = str(rng.choice(["sky", "sea", "land"], p=[0.35, 0.35, 0.30]))
    img = _sky(rng, h, w)
    if kind == "sky":
        return img, kind  # smooth already: no blur needed
    cols = np.arange(w, dtype=np.float32)
    horizon = rng.uniform(0.25, 0.7) * h + rng.uniform(-0.08, 0.08) * (cols - w / 2)
    if kind == "land":
        ridge = _profile_1d(rng, w, rng.uniform(2.5, 3.5))
        horizon = horizon - (ridge - ridge.min()) * rng.uniform(2.0, h / 12)
    rows = np.arange(h, dtype=np.float32)[:, None]
    below = rows > horizon[None, :]
    depth = np.clip((rows - horizon[None, :]) / max(h - horizon.min(), 1.0), 0.0, 1.0)
    if kind == "sea":
        waves = power_noise(rng, h, w, rng.uniform(2.0, 3.0), stretch_x=float(rng.integers(3, 9)))  # cached grids
        glint = np.maximum(power_noise(rng, h, w, 0.8) - rng.uniform(2.8, 3.8), 0.0) * rng.uniform(1.0, 4.0)
        ground = rng.uniform(-1.5, 1.0) + (0.3 + depth) * rng.uniform(0.2, 0.7) * waves + glint * depth
    else:
        ground = rng.uniform(-0.5, 2.5) + rng.uniform(0.3, 1.0) * power_noise(rng, h, w, rng.uniform(2.2, 3.0))
        _structures(rng, ground, horizon)
    img = np.where(below, ground, img)
    # the boundary: a bright (warm) edge along the horizon or ridge
    edge_rows = np.clip(np.round(horizon).astype(int), 0, h - 1)
    img[edge_rows, np.arange(w)] += rng.uniform(0.5, 3.0)
    return ndimage.gaussian_filter(img, 0.7, truncate=2.5), kind


def _target_shape(rng: np.random.Generator) -> tuple[str, np.ndarray, np.ndarray]:
    """(kind, profile with peak 1, mask) on a PATCH x PATCH grid; mask has 2-80 px in one component."""
    c = PATCH // 2
    yy, xx = np.mgrid[-c:c + 1, -c:c + 1].astype(np.float32)
    for _ in range(50):
        kind = str(rng.choice(["point", "cluster", "extended"], p=[0.45, 0.25, 0.30]))
        theta = rng.uniform(0, np.pi)
        dy, dx = rng.uniform(-0.5, 0.5, 2)
        u = (xx - dx) * np.cos(theta) + (yy - dy) * np.sin(theta)
        v = -(xx - dx) * np.sin(theta) + (yy - dy) * np.cos(theta)
        if kind == "point":
            s = rng.uniform(0.55, 2.2)
            sv = s * rng.uniform(0.6, 1.0)
            profile = np.exp(-0.5 * ((u / s) ** 2 + (v / sv) ** 2))
        elif kind == "cluster":
            profile = np.zeros_like(xx)
            for _ in range(int(rng.integers(2, 4))):
                oy, ox = rng.normal(0.0, 1.4, 2)
                s = rng.uniform(0.6, 1.6)
                profile = np.maximum(profile, rng.uniform(0.5, 1.0) *
                                     np.exp(-0.5 * ((u - ox) ** 2 + (v - oy) ** 2) / s ** 2))
        else:
            a = rng.uniform(1.5, 5.0)
            b = a * rng.uniform(0.35, 1.0)
            angle = np.arctan2(v, u)
            wobble = 1.0 + sum(rng.uniform(0, 0.18) * np.cos(k * angle + rng.uniform(0, 2 * np.pi))
                               for k in (2, 3, 4))
            rho = np.sqrt((u / a) ** 2 + (v / b) ** 2) / wobble
            hot = 1.0 - rng.uniform(0.0, 0.4) * np.clip(rho, 0, 1) ** 2
            profile = hot / (1.0 + np.exp((rho - 1.0) / 0.12))
        profile = profile / profile.max()
        mask = profile > rng.uniform(0.25, 0.45)
        area = int(mask.sum())
        if MIN_AREA <= area <= MAX_AREA and ndimage.label(mask, EIGHT_CONNECTED)[1] == 1:
            return kind, profile.astype(np.float32), mask
    profile = np.exp(-0.5 * (xx ** 2 + yy ** 2) / 0.8 ** 2).astype(np.float32)
    return "point", profile, profile > 0.3  # 5 px: always valid


def _place(rng: np.random.Generator, img: np.ndarray, taken: list[tuple[int, int]],
           grad: list[np.ndarray]) -> tuple[int, int] | None:
    h, w = img.shape
    c = PATCH // 2
    for _ in range(30):
        if rng.random() < NEAR_CLUTTER_PROB:
            if not grad:
                gy, gx = np.gradient(img[::2, ::2])
                mag = (gy * gy + gx * gx).ravel()
                top = np.argpartition(mag, -max(mag.size // 50, 1))[-max(mag.size // 50, 1):]
                grad.append(np.stack(np.unravel_index(top, (gy.shape[0], gy.shape[1])), 1) * 2)
            y, x = grad[0][int(rng.integers(len(grad[0])))]
            angle, dist = rng.uniform(0, 2 * np.pi), rng.uniform(3.0, 7.0)
            y, x = int(y + dist * np.sin(angle)), int(x + dist * np.cos(angle))
        else:
            y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
        if not (c <= y < h - c and c <= x < w - c):
            continue
        if any((y - ty) ** 2 + (x - tx) ** 2 < MIN_TARGET_DISTANCE ** 2 for ty, tx in taken):
            continue
        if img[y - 3:y + 4, x - 3:x + 4].mean() > 200:
            continue
        return y, x
    return None


def render_scene(rng: np.random.Generator, size: int | tuple[int, int]) -> tuple[np.ndarray, np.ndarray,
                                                                               list[TargetInfo], str]:
    """A scene of ``size`` (side or (h, w)): ``(image uint8 HxW, mask bool HxW, targets, scene kind)``."""
    h, w = (size, size) if isinstance(size, int) else size
    if min(h, w) < 2 * PATCH:
        raise ValueError(f"synthetic images must be at least {2 * PATCH} px a side, got {h}x{w}")
    field, kind = _background(rng, h, w)
    base, contrast = rng.uniform(45.0, 150.0), rng.uniform(8.0, 30.0)
    img = base + contrast * (field - field.mean()) / (field.std() + 1e-6)
    img *= 1.0 - np.float32(rng.uniform(0.0, 0.25)) * _radius2(h, w)
    img += rng.normal(0.0, rng.uniform(0.0, 1.2), (1, w)).astype(np.float32)  # column fixed-pattern noise
    img += rng.standard_normal((h, w), dtype=np.float32) * np.float32(rng.uniform(0.8, 3.0))
    mask = np.zeros((h, w), dtype=bool)
    targets: list[TargetInfo] = []
    n_targets = 0 if rng.random() < TARGET_FREE_PROB else 1 + int(rng.choice(3, p=TARGET_COUNT_PROBS))
    taken: list[tuple[int, int]] = []
    grad: list[np.ndarray] = []
    c = PATCH // 2
    for _ in range(n_targets):
        shape_kind, profile, tmask = _target_shape(rng)
        spot = _place(rng, img, taken, grad)
        if spot is None:
            continue
        y, x = spot
        window = img[max(y - 10, 0):y + 11, max(x - 10, 0):x + 11]
        scr = float(np.exp(rng.uniform(np.log(SCR_RANGE[0]), np.log(SCR_RANGE[1]))))
        peak = max(scr * float(window.std()), rng.uniform(12.0, 20.0))
        peak = min(peak, 250.0 - float(window.mean()))
        img[y - c:y + c + 1, x - c:x + c + 1] += peak * profile
        mask[y - c:y + c + 1, x - c:x + c + 1] |= tmask
        taken.append((y, x))
        targets.append(TargetInfo(shape_kind, y, x, int(tmask.sum()), round(scr, 3), round(peak, 2)))
    for _ in range(int(rng.integers(0, 4))):  # hot pixels: single pixels, never a target
        img[int(rng.integers(h)), int(rng.integers(w))] += rng.uniform(10.0, 40.0)
    image = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return image, mask, targets, kind
