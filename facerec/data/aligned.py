"""The read-and-align loop over a folder dataset's files: each image read with the checked reader,
its central face (the labelled person of a dataset photo) five-point aligned to a 112x112 crop."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from facerec.data.images import ImageError, read_image_file
from facerec.detect import align_face, central_face


def aligned_crop(image_bgr: np.ndarray, detect) -> tuple[np.ndarray, bool]:
    """The central face's aligned RGB crop, or the whole image resized (and ``False``)."""
    faces = detect(image_bgr)
    if faces:
        face = faces[central_face(faces, image_bgr.shape[1], image_bgr.shape[0])]
        return cv2.cvtColor(align_face(image_bgr, face), cv2.COLOR_BGR2RGB), True
    rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
    return cv2.resize(rgb, (112, 112), interpolation=cv2.INTER_AREA), False


def align_files(root: Path, files: list[str], detect, skipped: list[str]):
    """Yield ``(rel, crop, found)`` (see :func:`aligned_crop`) for each of ``files`` under
    ``root``; files that cannot be read are appended to ``skipped`` instead."""
    for rel in files:
        try:
            image, _ = read_image_file(root / rel)
        except ImageError:
            skipped.append(rel)
            continue
        yield (rel, *aligned_crop(image, detect))
