"""112x112 face crops: the ArcFace five-point similarity alignment, or a crop from the box.

With five landmarks the crop is the one insightface's ``norm_crop`` makes: the least-squares
similarity transform (Umeyama, TPAMI 1991) of the landmarks onto the standard ArcFace template
(Deng et al. 2019), warped with a black border. It is computed here (a 2x2 SVD) rather than
imported, because importing ``insightface.utils.face_align`` costs ~3.5 s (it loads onnx and
scikit-image) on every CLI call; tests/test_detect.py checks the crops against insightface's. With only two eye centres (Haar) the eyes are mapped
onto the template's eye positions by a similarity transform. With a box alone, a square around
the box, enlarged slightly, is resized.
"""

from __future__ import annotations

import cv2
import numpy as np

from .detectors import Face

# The ArcFace 112x112 template (insightface's arcface_dst): eyes (image-left first), nose, mouth corners.
_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
                      [70.7299, 92.2041]], np.float32)
_TEMPLATE_EYES = _TEMPLATE[:2]


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 similarity (rotation, uniform scale, translation) taking ``src`` points closest to
    ``dst`` in least squares: Umeyama's closed form (his eqs. 38-42), reflections excluded.

    Computed in the inputs' precision: float32 landmarks give the float32 arithmetic of
    insightface's ``estimate_norm`` (scikit-image keeps float32), so the crops are the same."""
    src, dst = np.asarray(src), np.asarray(dst)
    mu_src, mu_dst = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - mu_src, dst - mu_dst
    cov = b.T @ a / len(src)
    d = np.ones(2)
    if np.linalg.det(cov) < 0:
        d[1] = -1
    u, sigma, vt = np.linalg.svd(cov)
    rotation = u @ np.diag(d) @ vt
    scale = 1.0 / a.var(axis=0).sum() * (sigma @ d)
    shift = mu_dst - scale * (rotation @ mu_src.T)
    return np.hstack([scale * rotation, shift[:, None]])


def _norm_crop(image: np.ndarray, landmarks: np.ndarray, size: int) -> np.ndarray:
    if size % 112 == 0:
        template = _TEMPLATE * (size / 112.0)
    else:  # insightface's rule for 128-based sizes: scale to 128, shift right by 8
        template = _TEMPLATE * (size / 128.0) + np.array([8.0 * size / 128.0, 0.0], np.float32)
    matrix = similarity_transform(landmarks.astype(np.float32), template)
    return cv2.warpAffine(image, matrix, (size, size), borderValue=0.0)


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
