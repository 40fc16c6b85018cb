"""The canvas a synthetic face is drawn on (``face_drawing``): the per-image view (pose and
expression), anti-aliased OpenCV primitives at sub-pixel coordinates, the background and the
photometric nuisances (light, exposure, colour cast, blur, sensor noise). Colours are RGB."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .face_traits import Colour, IdentityTraits, rgb

SHIFT = 4  # fractional bits of cv2 drawing coordinates: sub-pixel placement
_ONE = 1 << SHIFT
AA = cv2.LINE_AA


@dataclass
class View:
    """Per-image head placement, pose and expression on the 2x canvas.

    Inner features sit on a sphere-like surface: yaw moves them sideways and
    foreshortens them while the outline stays put, a cheap 2-D stand-in for a
    turning head. Roll, scale and translation are applied later as one warp.
    """

    s: int  # canvas side
    cx: float  # face centre and half-axes, canvas pixels
    cy: float
    ax: float
    ay: float
    yaw: float  # radians
    pitch: float
    smile: float  # -0.5 frown .. 1 smile
    mouth_open: float
    brow_raise: float
    eye_open: float  # below 0.2 is a blink
    gaze: float

    def pt(self, u: float, v: float, depth: float = 1.0) -> tuple[float, float]:
        """Canvas position of face point (u, v); ``depth`` > 1 sticks out (nose)."""
        a = math.asin(min(0.99, max(-0.99, u))) + self.yaw * depth
        return self.cx + self.ax * math.sin(a), self.cy + self.ay * (v + 0.3 * self.pitch * depth)

    def xscale(self, u: float) -> float:
        """Horizontal foreshortening of a feature at ``u`` under the current yaw."""
        a = math.asin(min(0.99, max(-0.99, u)))
        return max(0.3, math.cos(a + self.yaw) / math.cos(a))

    def px(self, frac: float) -> int:
        """Line thickness in whole pixels for a fraction of the canvas."""
        return max(1, round(frac * self.s))


# Thin wrappers: every primitive is anti-aliased and placed with sub-pixel precision.
def point(pt: tuple[float, float]) -> tuple[int, int]:
    return round(pt[0] * _ONE), round(pt[1] * _ONE)


def points(pts) -> np.ndarray:
    return np.round(np.asarray(pts, np.float64) * _ONE).astype(np.int32)


def ellipse(img, c, ax, ay, colour, angle=0.0, thick=-1, start=0, end=360) -> None:
    axes = (max(1, round(ax * _ONE)), max(1, round(ay * _ONE)))
    cv2.ellipse(img, point(c), axes, angle, start, end, colour, thick, AA, SHIFT)


def fill(img, pts, colour) -> None:
    cv2.fillPoly(img, [points(pts)], colour, AA, SHIFT)


def lines(img, pts, colour, thick: int) -> None:
    cv2.polylines(img, [points(pts)], False, colour, thick, AA, SHIFT)


def random_colour(rng: np.random.Generator, lo=0.0, hi=255.0, chroma=255.0) -> Colour:
    """Random colour; a small ``chroma`` keeps it near grey (muted, realistic)."""
    return rgb(rng.uniform(lo, hi) + rng.uniform(-chroma, chroma, 3) / 2)


def background(rng: np.random.Generator, s: int) -> np.ndarray:
    """Solid, gradient, low-frequency texture or blurred clutter, in muted colours."""
    kind = rng.choice(4, p=[0.35, 0.35, 0.15, 0.15])
    a = np.array(random_colour(rng, 30, 225, 90), np.float32)
    if kind == 0:
        return np.tile(a.astype(np.uint8), (s, s, 1))
    if kind == 1:
        b = np.array(random_colour(rng, 30, 225, 90), np.float32)
        t = np.linspace(0, 1, s, dtype=np.float32)[:, None, None]
        img = np.repeat((a * (1 - t) + b * t).astype(np.uint8), s, axis=1)
        return img if rng.random() < 0.5 else np.ascontiguousarray(img.transpose(1, 0, 2))
    if kind == 2:
        n = int(rng.integers(3, 10))
        low = a + (rng.random((n, n, 3)).astype(np.float32) - 0.5) * 80
        img = cv2.resize(low, (s, s), interpolation=cv2.INTER_CUBIC)
        return np.clip(img, 0, 255).astype(np.uint8)
    img = np.tile(a.astype(np.uint8), (s, s, 1))
    for _ in range(int(rng.integers(3, 8))):
        x, y = rng.uniform(0, s, 2)
        w, h = rng.uniform(0.05, 0.4, 2) * s
        colour = random_colour(rng, 30, 225, 120)
        if rng.random() < 0.5:
            fill(img, [(x, y), (x + w, y), (x + w, y + h), (x, y + h)], colour)
        else:
            ellipse(img, (x, y), w / 2, h / 2, colour)
    return cv2.GaussianBlur(img, (0, 0), s / 80)  # defocused, like a real backdrop


def make_view(t: IdentityTraits, rng: np.random.Generator, s: int) -> View:
    return View(
        s=s, cx=s / 2, cy=s * 0.52, ax=t.face_w * s, ay=t.face_h * s,
        yaw=rng.uniform(-0.3, 0.3), pitch=rng.uniform(-0.2, 0.2), smile=rng.uniform(-0.5, 1.0),
        mouth_open=rng.uniform(0.2, 1) if rng.random() < 0.25 else 0.0,
        brow_raise=rng.uniform(-0.03, 0.06),
        eye_open=0.05 if rng.random() < 0.04 else rng.uniform(0.7, 1.1),
        gaze=rng.uniform(-1, 1),
    )


def photometric(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Directional light, exposure, contrast, colour cast, blur and sensor noise."""
    n = img.shape[0]
    theta, strength = rng.uniform(0, 2 * np.pi), rng.uniform(0.0, 0.25)
    gain, contrast = rng.uniform(0.85, 1.12), rng.uniform(0.88, 1.12)
    cast = rng.uniform(0.95, 1.05, 3).astype(np.float32) * np.float32(gain)
    ramp = np.linspace(-1, 1, n, dtype=np.float32)
    light = 1 + strength * (np.cos(theta) * ramp[None, :] + np.sin(theta) * ramp[:, None])
    # ((x * light - 128) * contrast + 128) * gain * cast, folded into one multiply-add.
    f = img * (light[:, :, None] * np.float32(contrast) * cast) \
        + np.float32(128 * (1 - contrast)) * cast
    if rng.random() < 0.25:
        f = cv2.GaussianBlur(f, (0, 0), rng.uniform(0.4, 1.3) * n / 112)
    f += rng.standard_normal(f.shape, dtype=np.float32) * rng.uniform(0, 6)
    return np.clip(f + 0.5, 0, 255).astype(np.uint8)
