"""Who a synthetic person is: a frozen bundle of traits (face shape, skin tone, hair, eyes, brows,
nose, mouth, ears and optional marks such as glasses, a beard, a mole, a scar, freckles, wrinkles,
earrings or eye make-up) drawn once from an RNG seeded by ``(seed, identity)``, and the colour
helpers the drawing shares. ``face_drawing`` renders them; ``synthetic`` writes datasets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Colour = tuple[float, float, float]

HAIR_STYLES = ("bald", "buzz", "short", "side_part", "fringe", "long", "curly", "bun")
BEARDS = ("none", "stubble", "moustache", "goatee", "full")

# SeedSequence zero-pads short entropy, so [seed, id] would equal the stream of
# image 0 ([seed, id, 0]). A trailing non-zero word keeps the traits stream apart.
_TRAITS_TAG = (0x7EA175, 1)

_SKIN = np.array([(250, 222, 205), (228, 178, 142), (176, 118, 82), (98, 62, 42)], float)
_HAIR = np.array([(22, 17, 15), (58, 38, 27), (105, 70, 44), (146, 78, 40), (196, 156, 92),
                  (232, 208, 150), (135, 133, 130), (225, 222, 215), (170, 64, 28)], float)
_HAIR_P = (0.22, 0.2, 0.15, 0.08, 0.1, 0.05, 0.08, 0.04, 0.08)
# Bald and buzz cut hide the strongest identity cue (hair), so they are rarer.
_STYLE_P = (0.06, 0.1, 0.14, 0.14, 0.14, 0.16, 0.13, 0.13)
_IRIS = ((96, 58, 30), (48, 30, 20), (128, 98, 52), (78, 118, 70), (70, 112, 170),
         (118, 128, 140))


@dataclass(frozen=True)
class IdentityTraits:
    """Persistent appearance of one synthetic identity.

    Positions are in face coordinates: ``u`` horizontal in units of the face
    half-width, ``v`` vertical (down positive) in units of the face half-height,
    origin at the face centre. Sizes without a unit are fractions of the canvas.
    Colours are RGB floats in 0..255; ``None`` marks an absent feature.
    """

    face_w: float  # face half-width
    face_h: float  # face half-height
    jaw: float  # lower-face width factor (0.62 tapered .. 1.0 square)
    chin: float  # -1 flat .. 1 pointed
    skin: Colour
    hair_style: str  # one of HAIR_STYLES
    hair: Colour
    hairline: float  # v of the hairline at the forehead centre
    part: float  # hairline tilt of a side parting, v per unit u
    eye_y: float
    eye_spacing: float  # u of each eye centre
    eye_size: float  # eye half-width, u units
    eye_aspect: float  # eye height / width
    eye_tilt: float  # degrees, positive = outer corner up
    iris: Colour
    brow_colour: Colour
    brow_thickness: float
    brow_gap: float  # v distance above the eye
    brow_angle: float  # rise of the outer end, v units
    brow_arch: float  # v units
    nose_length: float  # v units below the eyes
    nose_width: float  # u units
    nose_shape: int  # 0 button, 1 straight, 2 broad
    mouth_y: float
    mouth_width: float  # half-width, u units
    lip_thickness: float  # v units
    lip: Colour
    ear_size: float  # ear half-height, v units
    glasses: int  # 0 none, 1 round, 2 rectangular
    glasses_colour: Colour
    beard: str  # one of BEARDS
    mole: tuple[float, float] | None  # (u, v)
    scar: tuple[float, float, float, float] | None  # (u, v, length, slope)
    freckles: tuple[tuple[float, float], ...]  # (u, v) of each freckle
    blush: float  # cheek colour strength
    lash: float  # upper lid line thickness
    wrinkles: bool  # forehead lines and smile folds
    earrings: Colour | None
    eyeshadow: Colour | None


def rgb(a: np.ndarray) -> Colour:
    c = np.clip(a, 0, 255)
    return (float(c[0]), float(c[1]), float(c[2]))


def mix(a, b, w: float) -> Colour:
    return rgb(np.asarray(a, float) * (1 - w) + np.asarray(b, float) * w)


def shade(c: Colour, f: float) -> Colour:
    return (min(255.0, c[0] * f), min(255.0, c[1] * f), min(255.0, c[2] * f))


def skin_tone(k: float) -> np.ndarray:
    """Point ``k`` in [0, 3) along the light-to-dark skin palette."""
    i = int(k)
    return _SKIN[i] + (_SKIN[i + 1] - _SKIN[i]) * (k - i)


def identity_traits(seed: int, identity: int) -> IdentityTraits:
    """Draw the persistent traits of ``identity`` under ``seed``.

    Args:
        seed: Dataset seed (non-negative).
        identity: Identity index (non-negative).

    Returns:
        The identity's traits; equal arguments always give equal traits.
    """
    r = np.random.default_rng([seed, identity, *_TRAITS_TAG])
    u = r.uniform
    skin = skin_tone(u(0, 3))
    skin = skin + r.normal(0, 10) * np.array([1.0, 0.6, 0.2]) + r.normal(0, 4, 3)  # undertone
    style = HAIR_STYLES[r.choice(len(HAIR_STYLES), p=_STYLE_P)]
    h1, h2 = r.choice(len(_HAIR), 2, p=_HAIR_P)  # blend two shades: a continuum of colours
    hair = _HAIR[h1] + (_HAIR[h2] - _HAIR[h1]) * u(0, 0.4) + r.normal(0, 10, 3)
    dark_brow = style == "bald" or hair.mean() > 150  # fair or no hair: brows from dark shades
    brow = _HAIR[r.integers(3)] if dark_brow else hair * 0.75
    p_none = 0.85 if style in ("long", "bun") else 0.5
    beard = BEARDS[r.choice(5, p=[p_none, *([(1 - p_none) / 4] * 4)])]
    mole = (u(-0.6, 0.6), u(-0.2, 0.6)) if r.random() < 0.2 else None
    scar = (u(-0.7, 0.4), u(-0.1, 0.4), u(0.1, 0.3), u(-0.3, 0.3)) if r.random() < 0.12 else None
    n_freckles = int(r.integers(14, 30)) if r.random() < 0.15 else 0
    freckles = tuple((float(u(-0.6, 0.6)), float(u(0.0, 0.35))) for _ in range(n_freckles))
    return IdentityTraits(
        face_w=u(0.26, 0.33), face_h=u(0.33, 0.40), jaw=u(0.62, 1.0), chin=u(-1, 1),
        skin=rgb(skin), hair_style=style, hair=rgb(hair), hairline=u(-0.78, -0.52),
        part=u(-0.15, 0.15) if style == "side_part" else 0.0,
        eye_y=u(-0.24, -0.02), eye_spacing=u(0.28, 0.46), eye_size=u(0.14, 0.22),
        eye_aspect=u(0.38, 0.62), eye_tilt=u(-10, 10), iris=_IRIS[r.integers(len(_IRIS))],
        brow_colour=rgb(brow), brow_thickness=u(0.012, 0.035), brow_gap=u(0.12, 0.22),
        brow_angle=u(-0.08, 0.08), brow_arch=u(0.0, 0.08), nose_length=u(0.25, 0.48),
        nose_width=u(0.1, 0.22), nose_shape=int(r.integers(3)), mouth_y=u(0.46, 0.66),
        mouth_width=u(0.22, 0.36), lip_thickness=u(0.035, 0.08),
        lip=mix(skin * np.array([0.85, 0.55, 0.55]), (190, 60, 70), u(0.1, 0.6)),
        ear_size=u(0.16, 0.24), glasses=int(r.choice(3, p=[0.75, 0.12, 0.13])),
        glasses_colour=mix(_HAIR[r.integers(len(_HAIR))], (0, 0, 0), 0.4),
        beard=beard, mole=mole, scar=scar, freckles=freckles, blush=u(0.0, 0.4),
        lash=u(0.006, 0.016), wrinkles=bool(r.random() < (0.7 if hair.mean() > 130 else 0.15)),
        earrings=(mix(r.uniform(60, 255, 3), (230, 190, 60), u(0, 1))
                  if r.random() < 0.25 else None),
        eyeshadow=mix(r.uniform(0, 255, 3), skin, 0.3) if r.random() < 0.25 else None,
    )
