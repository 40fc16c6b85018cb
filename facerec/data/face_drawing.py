"""One synthetic face image: an identity's traits (``face_traits``) under per-image nuisances —
head pose, expression, lighting, background, clothing, blur, sensor noise and occasional occlusion —
drawn with anti-aliased OpenCV primitives at sub-pixel coordinates on a canvas twice the output
size, downscaled with ``INTER_AREA``. Colours are RGB throughout."""

from __future__ import annotations

import math

import cv2
import numpy as np

from .face_canvas import (AA, SHIFT, View, background, ellipse, fill, lines, make_view, photometric, point, points,
                          random_colour)
from .face_traits import IdentityTraits, mix, rgb, shade, skin_tone


def _outline(t: IdentityTraits, v: View, grow: float = 1.0) -> np.ndarray:
    """Face contour: an ellipse whose lower half narrows to the jaw and chin."""
    th = np.linspace(0, 2 * np.pi, 56, endpoint=False)
    low = np.clip(np.sin(th), 0, 1)  # 0 on the upper half, 1 at the chin
    x = np.cos(th) * (1 - (1 - t.jaw) * low**1.5)
    y = np.sin(th) + 0.1 * t.chin * low**6
    cx = v.cx - 0.08 * v.yaw * v.ax  # the skull shifts a little against the features
    return np.stack([cx + grow * v.ax * x, v.cy + grow * v.ay * y], 1)


def _hair_back(img, t: IdentityTraits, v: View) -> None:
    """Hair that sits behind the head (long, curly volume, bun)."""
    c, ax, ay = t.hair, v.ax, v.ay
    if t.hair_style == "long":
        th = np.linspace(np.pi, 2 * np.pi, 20)
        arc = np.stack([v.cx + 1.14 * ax * np.cos(th), v.cy - 0.05 * ay + 1.1 * ay * np.sin(th)], 1)
        bottom = [(v.cx + 1.22 * ax, v.cy + 1.2 * ay), (v.cx - 1.22 * ax, v.cy + 1.2 * ay)]
        fill(img, np.vstack([arc, bottom]), c)
    elif t.hair_style == "curly":
        ellipse(img, (v.cx, v.cy - 0.2 * ay), 1.3 * ax, 1.05 * ay, c)
        for th in np.linspace(np.pi * 0.9, np.pi * 2.1, 13):
            curl = (v.cx + 1.25 * ax * math.cos(th), v.cy - 0.2 * ay + ay * math.sin(th))
            ellipse(img, curl, 0.22 * ax, 0.22 * ax, shade(c, 0.85))
    elif t.hair_style == "bun":
        ellipse(img, (v.cx, v.cy - 1.12 * ay), 0.34 * ax, 0.3 * ax, c)


def _hair_top(t: IdentityTraits) -> float:
    """v of the hairline at the forehead centre (-1: no hair on the forehead)."""
    return {"bald": -1.0, "fringe": -0.42}.get(t.hair_style, t.hairline)


def _hair_cap(img, t: IdentityTraits, v: View) -> None:
    """Hair over the crown: outer arc around the skull, inner edge along the hairline."""
    if t.hair_style == "bald":
        return
    side = {"buzz": -0.3, "fringe": -0.2, "long": 0.1}.get(t.hair_style, -0.2)  # v at temples
    hairline = _hair_top(t)
    grow = 1.02 if t.hair_style == "buzz" else 1.07
    b = math.asin(min(0.95, -side / grow))
    outer = [(v.cx + grow * v.ax * math.cos(a), v.cy - 0.03 * v.ay + grow * v.ay * math.sin(a))
             for a in np.linspace(np.pi + b, 2 * np.pi - b, 24)]
    inner = []
    for i, s in enumerate(np.linspace(1, -1, 17)):
        vv = hairline + (side - hairline) * abs(s) ** 3 + t.part * s
        if t.hair_style == "fringe":
            vv += 0.05 * (i % 2)  # jagged bangs
        inner.append(v.pt(0.97 * s, vv, depth=0.5))
    colour = mix(t.hair, t.skin, 0.45) if t.hair_style == "buzz" else t.hair
    fill(img, outer + inner, colour)


def _draw_eye(img, t: IdentityTraits, v: View, side: int) -> None:
    u = side * t.eye_spacing
    c = v.pt(u, t.eye_y)
    w = t.eye_size * v.ax * v.xscale(u)
    h = t.eye_size * v.ax * t.eye_aspect * v.eye_open
    angle = -side * t.eye_tilt
    dark = shade(t.brow_colour, 0.6)
    if t.eyeshadow:  # make-up on the upper lid, partly hidden by the eye itself
        ellipse(img, (c[0], c[1] - 0.3 * h), 1.1 * w, 1.3 * h + 0.1 * w, t.eyeshadow, angle,
                 -1, 180, 360)
    if v.eye_open < 0.2:  # blink: just the closed lid
        ellipse(img, c, w, 0.25 * w, dark, angle, v.px(0.008), 0, 180)
        return
    ellipse(img, c, w, h, (240, 238, 232), angle)
    r = 0.52 * t.eye_size * v.ax
    iris = (c[0] + v.gaze * 0.3 * w, c[1])
    ellipse(img, iris, r * v.xscale(u), min(r, h * 0.95), t.iris)  # clipped by the lids
    ellipse(img, iris, 0.45 * r * v.xscale(u), min(0.45 * r, h * 0.9), (15, 12, 12))
    ellipse(img, c, w, h, dark, angle, v.px(t.lash), 180, 360)  # upper lid and lashes
    ellipse(img, c, w, h, shade(t.skin, 0.75), angle, 1, 0, 180)


def _draw_brow(img, t: IdentityTraits, v: View, side: int) -> None:
    u0 = side * (t.eye_spacing - 0.9 * t.eye_size)
    u1 = side * (t.eye_spacing + 1.2 * t.eye_size)
    base = t.eye_y - t.brow_gap - v.brow_raise
    half = t.brow_thickness * v.s / 2
    top, bot = [], []
    for s in np.linspace(0, 1, 8):
        x, y = v.pt(u0 + (u1 - u0) * s,
                    base - t.brow_arch * math.sin(math.pi * s) - t.brow_angle * s)
        taper = 1.0 - 0.55 * s  # thick inner end, thin tail
        top.append((x, y - half * taper))
        bot.append((x, y + half * taper))
    fill(img, top + bot[::-1], t.brow_colour)


def _draw_nose(img, t: IdentityTraits, v: View) -> None:
    shadow = shade(t.skin, 0.72)
    tip_v = t.eye_y + t.nose_length
    tip = v.pt(0, tip_v, depth=1.35)  # the tip sticks out, so yaw moves it most
    w = t.nose_width * v.ax
    lines(img, [v.pt(-0.07, t.eye_y + 0.08, 1.1), v.pt(-0.09, tip_v - 0.12, 1.3)], shadow,
           v.px(0.006))
    if t.nose_shape == 1:  # straight: wings drawn as lines meeting at the tip
        wings = [(tip[0] - w, tip[1] + 0.02 * v.ay), tip, (tip[0] + w, tip[1] + 0.02 * v.ay)]
        lines(img, wings, shadow, v.px(0.007))
    else:  # button or broad: a rounded tip
        tip_w = w * (0.5 if t.nose_shape == 0 else 0.8)
        ellipse(img, tip, tip_w, 0.35 * w, shadow, 0, v.px(0.007), 10, 170)
    for side in (-1, 1):
        nostril = (tip[0] + side * 0.55 * w, tip[1] + 0.04 * v.ay)
        ellipse(img, nostril, 0.22 * w, 0.12 * w, shade(t.skin, 0.45))


def _draw_mouth(img, t: IdentityTraits, v: View) -> None:
    cx, cy = v.pt(0, t.mouth_y, depth=1.1)
    hw = t.mouth_width * v.ax * v.xscale(0)
    lip = t.lip_thickness * v.ay
    gap = v.mouth_open * 0.12 * v.ay
    s = np.linspace(-1, 1, 15)
    mid = cy - v.smile * 0.06 * v.ay * s**2 + v.smile * 0.02 * v.ay  # smiling lifts the corners
    bulge = 1 - s**2
    x = cx + hw * s
    bow = 1 - 0.3 * np.exp(-(s * 6) ** 2)  # Cupid's bow dip in the upper lip
    upper = np.stack([x, mid - gap / 2 - lip * bulge * bow], 1)
    lower = np.stack([x, mid + gap / 2 + 1.3 * lip * bulge], 1)
    fill(img, np.vstack([upper, lower[::-1]]), t.lip)
    if gap > 0:
        inner_top = np.stack([x, mid - gap / 2 * bulge], 1)
        inner_bot = np.stack([x, mid + gap / 2 * bulge], 1)
        fill(img, np.vstack([inner_top, inner_bot[::-1]]), (60, 20, 25))
        if v.smile > 0.3:  # teeth show in an open smile
            fill(img, np.vstack([inner_top, ((inner_top + inner_bot) / 2)[::-1]]), (235, 232, 220))
    lines(img, np.stack([x, mid], 1), shade(t.lip, 0.55), v.px(0.005))


def _draw_beard(img, t: IdentityTraits, v: View) -> None:
    colour = shade(t.hair if t.hair_style != "bald" else t.brow_colour, 0.9)
    if t.beard in ("full", "stubble"):
        jaw = _outline(t, v, 1.01)
        jaw = jaw[jaw[:, 1] > v.cy]  # lower half, right to left
        top = t.mouth_y - 0.12  # upper edge dips from the sideburns to under the nose
        edge = [v.pt(u, top * (1 - abs(u) ** 1.5)) for u in np.linspace(-0.97, 0.97, 13)]
        layer = img.copy() if t.beard == "stubble" else img
        fill(layer, np.vstack([jaw, edge]), colour)
        if t.beard == "stubble":  # translucent shadow of stubble
            cv2.addWeighted(layer, 0.35, img, 0.65, 0, dst=img)
    if t.beard in ("moustache", "goatee", "full"):
        y = t.mouth_y - 0.07 - t.lip_thickness
        pts = [v.pt(s * (t.mouth_width + 0.04), y + 0.05 * abs(s) ** 1.5 - 0.03 * (1 - abs(s)))
               for s in np.linspace(-1, 1, 9)]
        pts += [v.pt(s * t.mouth_width * 0.9, y + 0.08) for s in np.linspace(1, -1, 9)]
        fill(img, pts, colour)
    if t.beard == "goatee":
        ellipse(img, v.pt(0, t.mouth_y + 0.25, 1.1), 0.22 * v.ax, 0.16 * v.ay, colour)


def _draw_marks(img, t: IdentityTraits, v: View) -> None:
    """Freckles, mole, scar and wrinkles: small but persistent identity cues."""
    for u, vv in t.freckles:
        ellipse(img, v.pt(u, vv), 0.006 * v.s, 0.006 * v.s, shade(t.skin, 0.75))
    if t.mole:
        ellipse(img, v.pt(*t.mole), 0.012 * v.s, 0.012 * v.s, shade(t.skin, 0.55))
    if t.scar:
        u, vv, length, slope = t.scar
        lines(img, [v.pt(u, vv), v.pt(u + length, vv + slope * length)], (150, 70, 70),
               v.px(0.008))
    if not t.wrinkles:
        return
    fold = shade(t.skin, 0.8)
    for k in range(3):  # forehead lines, only on bare forehead below the hairline
        vv = t.eye_y - t.brow_gap - 0.12 - 0.07 * k
        if vv < _hair_top(t) + 0.08:
            break
        lines(img, [v.pt(x, vv + 0.03 * x * x) for x in np.linspace(-0.4, 0.4, 7)], fold,
               v.px(0.006))
    for side in (-1, 1):  # smile folds from the nose wings past the mouth corners
        nose = (side * (t.nose_width + 0.08), t.eye_y + t.nose_length)
        corner = (side * (t.mouth_width + 0.08), t.mouth_y + 0.06)
        bend = (nose[0] * 0.3 + corner[0] * 0.7 + 0.04 * side, (nose[1] + corner[1]) / 2)
        lines(img, [v.pt(*nose), v.pt(*bend), v.pt(*corner)], fold, v.px(0.007))


def _draw_glasses(img, t: IdentityTraits, v: View) -> None:
    th, colour = v.px(0.009), t.glasses_colour
    inner = []
    for side in (-1, 1):
        u = side * t.eye_spacing
        c = v.pt(u, t.eye_y)
        w, h = 1.55 * t.eye_size * v.ax * v.xscale(u), 1.125 * t.eye_size * v.ax
        if t.glasses == 1:
            ellipse(img, c, w, h, colour, 0, th)
        else:
            cv2.rectangle(img, point((c[0] - w, c[1] - h)), point((c[0] + w, c[1] + h)), colour, th,
                          AA, SHIFT)
        inner.append((c[0] - side * w, c[1]))
        temple = (c[0] + side * w, c[1] - 0.3 * h)  # arm runs back to the ear
        lines(img, [temple, v.pt(side * 0.99, t.eye_y - 0.05, 0.8)], colour, th)
    lines(img, inner, colour, th)  # bridge


def _draw_occluder(img, v: View, t: IdentityTraits, rng: np.random.Generator) -> None:
    """Bar, sunglasses, hand or hat; each covers at most ~30% of the face."""
    kind = rng.integers(4)
    if kind == 0:
        colour = random_colour(rng)
        if rng.random() < 0.5:  # horizontal band
            h, y = rng.uniform(0.12, 0.2) * v.ay, v.cy + rng.uniform(-0.6, 0.7) * v.ay
            x0 = v.cx + rng.uniform(-1.6, -0.4) * v.ax
            x1 = x0 + 2 * v.ax
            fill(img, [(x0, y - h), (x1, y - h), (x1, y + h), (x0, y + h)], colour)
        else:  # vertical band over one side
            w = rng.uniform(0.2, 0.35) * v.ax
            x = v.cx + rng.choice([-1, 1]) * rng.uniform(0.65, 0.95) * v.ax
            fill(img, [(x - w, 0), (x + w, 0), (x + w, v.s), (x - w, v.s)], colour)
    elif kind == 1:  # sunglasses
        dark = random_colour(rng, 0, 50)
        pts = [v.pt(side * t.eye_spacing, t.eye_y) for side in (-1, 1)]
        for c, side in zip(pts, (-1, 1)):
            w = 1.7 * t.eye_size * v.ax * v.xscale(side * t.eye_spacing)
            ellipse(img, c, w, 0.2 * v.ay, dark)
        lines(img, pts, dark, v.px(0.02))
    elif kind == 2:  # a hand resting against the lower face, of any skin tone
        skin = rgb(skin_tone(rng.uniform(0, 2.99)))
        side = rng.choice([-1, 1])
        c = (v.cx + side * rng.uniform(0.3, 0.8) * v.ax, v.cy + rng.uniform(0.55, 0.9) * v.ay)
        palm = (c[0], c[1] + 0.35 * v.ay)
        ellipse(img, palm, 0.36 * v.ax, 0.36 * v.ay, skin, rng.uniform(-30, 30))
        for i in range(4):
            finger = (c[0] + (i - 1.5) * 0.17 * v.ax, c[1] - 0.05 * v.ay)
            ellipse(img, finger, 0.08 * v.ax, 0.28 * v.ay, shade(skin, 0.97 - 0.03 * i))
    else:  # hat: crown over the hair plus a brim at the forehead
        colour = random_colour(rng)
        top = v.cy - rng.uniform(0.5, 0.62) * v.ay
        ellipse(img, (v.cx, top), 1.1 * v.ax, 0.75 * v.ay, colour, 0, -1, 180, 360)
        ellipse(img, (v.cx, top), 1.35 * v.ax, 0.13 * v.ay, shade(colour, 0.8))


def _draw_head(img, t: IdentityTraits, v: View, rng: np.random.Generator) -> None:
    """Paint hair, neck, clothing, ears, face and features back to front."""
    s = v.s
    _hair_back(img, t, v)
    fill(img, [(v.cx - 0.45 * v.ax, v.cy), (v.cx + 0.45 * v.ax, v.cy),
                (v.cx + 0.5 * v.ax, s), (v.cx - 0.5 * v.ax, s)], shade(t.skin, 0.82))
    # Clothing changes from photo to photo, so it is a nuisance, not a trait.
    ellipse(img, (v.cx, s * 1.14), s * rng.uniform(0.42, 0.55), s * 0.22,
             random_colour(rng, 30, 220, 140))
    for side in (-1, 1):
        vis = min(1.3, max(0.35, 1 - 1.5 * side * v.yaw))  # the far ear turns away
        ear = (v.cx + side * 0.95 * v.ax - 0.15 * v.yaw * v.ax, v.cy + v.ay * (t.eye_y + 0.2))
        ellipse(img, ear, 0.16 * v.ax * vis, t.ear_size * v.ay, shade(t.skin, 0.92))
        if t.earrings:
            lobe = (ear[0], ear[1] + t.ear_size * v.ay * 1.15)
            ellipse(img, lobe, 0.06 * v.ax, 0.06 * v.ax, t.earrings, 0, v.px(0.012))
    face = _outline(t, v)
    fill(img, face, t.skin)
    cv2.polylines(img, [points(face)], True, shade(t.skin, 0.85), v.px(0.012), AA, SHIFT)
    for side in (-1, 1):  # cheek colour gives the flat face some volume
        ellipse(img, v.pt(side * 0.55, 0.2), 0.2 * v.ax, 0.12 * v.ay,
                 mix(t.skin, t.lip, t.blush))
    _hair_cap(img, t, v)
    _draw_marks(img, t, v)
    for side in (-1, 1):
        _draw_eye(img, t, v, side)
        _draw_brow(img, t, v, side)
    _draw_nose(img, t, v)
    if t.beard != "none":
        _draw_beard(img, t, v)
    _draw_mouth(img, t, v)
    if t.glasses:
        _draw_glasses(img, t, v)


def render_face(traits: IdentityTraits, rng: np.random.Generator, size: int = 112) -> np.ndarray:
    """Render one image of the identity described by ``traits``.

    Args:
        traits: The identity to draw.
        rng: Source of all per-image variation (pose, expression, lighting,
            background, occlusion, noise), consumed in a fixed order.
        size: Output side length in pixels (at least 32).

    Returns:
        ``(size, size, 3)`` uint8 RGB image.

    Raises:
        ValueError: If ``size`` is below 32.
    """
    if size < 32:
        raise ValueError(f"size must be >= 32, got {size}")
    s = 2 * size  # supersampled canvas; INTER_AREA downscaling smooths the edges
    img = background(rng, s)
    view = make_view(traits, rng, s)
    _draw_head(img, traits, view, rng)
    if rng.random() < 0.2:
        _draw_occluder(img, view, traits, rng)
    # Roll, scale and a small translation in one warp about the face centre.
    roll = float(np.clip(rng.normal(0, 4.0), -10, 10))
    m = cv2.getRotationMatrix2D((view.cx, view.cy), roll, rng.uniform(0.95, 1.05))
    m[:, 2] += rng.uniform(-0.025, 0.025, 2) * s
    img = cv2.warpAffine(img, m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    return photometric(img, rng)
