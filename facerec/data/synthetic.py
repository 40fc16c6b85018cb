"""Procedural synthetic faces: the embedded offline default dataset of facerec.

Design
------
Every identity is a frozen bundle of *traits* (face shape, skin tone, hair,
eyes, brows, nose, mouth, ears, and optional marks such as glasses, a beard, a
mole, a scar, freckles, wrinkles, earrings or eye make-up) drawn once from an
RNG seeded by ``(seed, identity)``. Every image of that identity draws its
*nuisances* from ``default_rng([seed, identity, image])``: head pose,
expression, lighting, background, clothing, blur, sensor noise and occasional
occlusion. Traits carry identity; nuisances are what a recogniser has to learn
to ignore. Each nuisance stays moderate on its own (yaw within ~17 degrees,
roll within 10, occlusion in a fifth of the images and covering at most ~30% of
the face), but together they make raw pixels a poor identity signal:
nearest-neighbour matching on raw pixels is far from perfect, while a small
CNN/ViT that learns the traits separates hundreds of identities.

Determinism
-----------
An image depends only on ``(seed, identity, image, size)``. No global RNG is
used and nothing is shared between images, so the same triple yields
byte-identical pixels whether it is rendered alone, inside a dataset of any
size, or in any order.

Rendering uses anti-aliased OpenCV primitives with sub-pixel coordinates on a
canvas twice the output size, downscaled with ``INTER_AREA``. Colours are RGB
throughout; only :func:`generate_dataset` converts to BGR for PNG encoding.

The traits live in ``face_traits``, the drawing in ``face_drawing``; this module writes datasets.
"""

from __future__ import annotations

import os
import pathlib
from typing import Callable

import numpy as np

from facerec.core.atomic import atomic_write_bytes
from .face_drawing import render_face
from .face_traits import IdentityTraits, identity_traits
from .folder import png_bytes

__all__ = ["IdentityTraits", "identity_traits", "render_face", "render_image",
           "identity_name", "generate_dataset"]


def render_image(seed: int, identity: int, image: int, size: int = 112) -> np.ndarray:
    """Render image ``image`` of ``identity`` under ``seed``.

    Depends only on its arguments, so the result is byte-identical however many
    other images are generated and in whatever order.

    Args:
        seed: Dataset seed (non-negative).
        identity: Identity index (non-negative).
        image: Image index within the identity (non-negative).
        size: Output side length in pixels (at least 32).

    Returns:
        ``(size, size, 3)`` uint8 RGB image.
    """
    rng = np.random.default_rng([seed, identity, image])
    return render_face(identity_traits(seed, identity), rng, size)


def identity_name(identity: int) -> str:
    """Folder name of an identity, zero-padded so that names sort numerically.

    Args:
        identity: Identity index (non-negative).

    Returns:
        A name like ``"synth-0007"``.
    """
    if identity < 0:
        raise ValueError(f"identity must be >= 0, got {identity}")
    return f"synth-{identity:04d}"


def _write_png_atomic(path: pathlib.Path, rgb: np.ndarray) -> None:
    """Temp file beside ``path``, then rename: a killed run never leaves a torn PNG."""
    atomic_write_bytes(path, png_bytes(rgb))


def generate_dataset(
    root: str | os.PathLike,
    identities: int,
    images_per_identity: int,
    seed: int = 0,
    size: int = 112,
    progress: Callable[[int], None] | None = None,
) -> pathlib.Path:
    """Write a folder-per-identity dataset ``root/<identity_name(i)>/<j:03d>.png``.

    Args:
        root: Output folder; created (with parents) if missing. Existing files
            of the same names are replaced.
        identities: Number of identities (>= 1).
        images_per_identity: Images per identity (>= 1).
        seed: Dataset seed; equal arguments give byte-identical files.
        size: Image side length in pixels (>= 32).
        progress: Called with the number of images just written (1 per image).

    Returns:
        The dataset root as a :class:`pathlib.Path`.

    Raises:
        ValueError: On a count below 1 or a size below 32 (before writing anything).
    """
    if identities < 1:
        raise ValueError(f"identities must be >= 1, got {identities}")
    if images_per_identity < 1:
        raise ValueError(f"images_per_identity must be >= 1, got {images_per_identity}")
    if size < 32:
        raise ValueError(f"size must be >= 32, got {size}")
    root = pathlib.Path(root)
    for i in range(identities):
        folder = root / identity_name(i)
        folder.mkdir(parents=True, exist_ok=True)
        traits = identity_traits(seed, i)  # drawn once per identity, not once per image
        for j in range(images_per_identity):
            img = render_face(traits, np.random.default_rng([seed, i, j]), size)
            _write_png_atomic(folder / f"{j:03d}.png", img)
            if progress is not None:
                progress(1)
    return root
