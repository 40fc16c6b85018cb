"""112x112 face crops: the ArcFace five-point similarity alignment, or a crop from the box.

With five landmarks the crop is insightface's ``norm_crop`` (a similarity transform onto the
standard ArcFace template, Deng et al. 2019). With only two eye centres (Haar) the eyes are mapped
onto the template's eye positions by a similarity transform. With a box alone, a square around
the box, enlarged slightly, is resized.
"""

from __future__ import annotations

import warnings

import cv2
import numpy as np

from .detectors import Face

# The ArcFace 112x112 template's eye centres (image-left eye first), from insightface's arcface_dst.
_TEMPLATE_EYES = np.array([[38.2946, 51.6963], [73.5318, 51.5014]], np.float32)


def _norm_crop(image: np.ndarray, landmarks: np.ndarray, size: int) -> np.ndarray:
    from insightface.utils.face_align import norm_crop

    with warnings.catch_warnings():  # insightface calls scikit-image's deprecated `estimate`
        warnings.simplefilter("ignore", FutureWarning)
        return norm_crop(image, landmarks.astype(np.float32), image_size=size)


def _eye_crop(image: np.ndarray, eyes: np.ndarray, size: int) -> np.ndarray:
    target = _TEMPLATE_EYES * (size / 112.0)
    matrix, _ = cv2.estimateAffinePartial2D(eyes.astype(np.float32), target)  # similarity: 2 points suffice
    return cv2.warpAffine(image, matrix, (size, size), borderMode=cv2.BORDER_REPLICATE)


def _box_crop(image: np.ndarray, box, size: int, grow: float = 1.1) -> np.ndarray:
    x, y, w, h = box
    side = max(w, h) * grow
    cx, cy = x + w / 2, y + h / 2
    # (x, y) -> scale around the centre so the square lands on the output
    scale = size / side
    matrix = np.array([[scale, 0, size / 2 - scale * cx], [0, scale, size / 2 - scale * cy]], np.float32)
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def align_face(image: np.ndarray, face: Face, size: int = 112) -> np.ndarray:
    """The aligned ``size x size`` crop of ``face`` from ``image`` (same channel order as the input)."""
    if face.landmarks is not None:
        return _norm_crop(image, face.landmarks, size)
    if face.eyes is not None:
        return _eye_crop(image, face.eyes, size)
    x, y, w, h = face.box
    if (x, y) == (0.0, 0.0) and (w, h) == (image.shape[1], image.shape[0]):
        return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if max(w, h) > size else cv2.INTER_LINEAR)
    return _box_crop(image, face.box, size)
