"""Pluggable face detectors behind one call: ``detector(image_bgr) -> list[Face]``.

- ``haar`` (default, needs no files): OpenCV's frontal-face cascade; eyes from the eye cascade
  when two are found inside the face, so alignment can level them.
- ``yunet:PATH`` or a path whose name contains "yunet": ``cv2.FaceDetectorYN`` (Wu et al.,
  "YuNet", 2023), boxes plus five landmarks.
- any other ``.onnx`` path: an insightface detector (SCRFD/RetinaFace) through
  ``insightface.model_zoo.get_model``, boxes plus five landmarks.
- ``aligned``: the input already is a face crop (ORL, dataset crops): one face, the whole image.

Backend types never leave this module: every detector returns ``Face`` records.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from facerec.core.errors import FaceRecError


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float]  # x, y, w, h in image pixels
    score: float
    landmarks: np.ndarray | None = None  # (5, 2): right eye, left eye, nose, right/left mouth corner (x, y)
    eyes: np.ndarray | None = None  # (2, 2) eye centres when only those are known (Haar)

    @property
    def centre(self) -> tuple[float, float]:
        x, y, w, h = self.box
        return x + w / 2, y + h / 2


Detector = Callable[[np.ndarray], list[Face]]


def central_face(faces: list[Face], width: float, height: float) -> int:
    """Index of the face nearest the image centre (the labelled person in dataset photos)."""
    if len(faces) == 1:
        return 0
    cx, cy = width / 2, height / 2
    return int(np.argmin([(f.centre[0] - cx) ** 2 + (f.centre[1] - cy) ** 2 for f in faces]))


# A photo's subject among several faces (issue 25): measured with YuNet on the first photo of each of
# LFW fold 1's 435 people, 86 hold two or more faces; in every one the largest face is also the one
# nearest the centre (the labelled person), and its area is 1.0-1.5x the next face's in 9 of them,
# at least 2x in 47. Two equal faces side by side are a couple, not a subject and a bystander.
DOMINANT_AREA = 2.0  # this many times every other face's area: the subject, wherever it stands
CENTRAL_AREA = 1.25  # ... or this many times, when it is also the face nearest the centre
MULTI_FACE_RULES = ("dominant", "largest", "refuse")


def check_multi_face_rule(rule: str) -> str:
    """``rule`` if it is one of :data:`MULTI_FACE_RULES`, else a one-line error."""
    if rule not in MULTI_FACE_RULES:
        raise FaceRecError(f"unknown multi-face rule {rule!r}: use one of {', '.join(MULTI_FACE_RULES)}")
    return rule


def subject_face(faces: list[Face], width: float, height: float, rule: str = "dominant") -> int | None:
    """Index of the face a photo is *of*, or None when the rule finds none.

    ``refuse``: only a photo with exactly one face has a subject. ``largest``: the largest face.
    ``dominant`` (what ``enroll`` uses by default): the largest face when it stands out, by
    :data:`DOMINANT_AREA` over every other face, or by :data:`CENTRAL_AREA` when it is also the
    face nearest the centre; two faces of about one size are ambiguous and give None, so a
    photo never enrolls a bystander under the subject's name by a coin toss.
    """
    check_multi_face_rule(rule)
    if len(faces) <= 1:
        return 0 if faces else None
    if rule == "refuse":
        return None
    areas = [f.box[2] * f.box[3] for f in faces]
    largest = int(np.argmax(areas))
    if rule == "largest":
        return largest
    ratio = areas[largest] / max(max(a for i, a in enumerate(areas) if i != largest), 1e-9)
    central = central_face(faces, width, height) == largest
    return largest if ratio >= DOMINANT_AREA or (central and ratio >= CENTRAL_AREA) else None


def _haar(min_size: int = 24) -> Detector:
    faces = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    eyes = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_eye.xml")

    def detect(image: np.ndarray) -> list[Face]:
        grey = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        found = []
        for x, y, w, h in faces.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(min_size, min_size)):
            upper = grey[y:y + h // 2, x:x + w]  # eyes sit in the upper half of the face box
            eye_boxes = eyes.detectMultiScale(upper, 1.1, 5, minSize=(max(8, w // 10),) * 2)
            centres = None
            if len(eye_boxes) >= 2:
                two = sorted(eye_boxes, key=lambda b: -b[2] * b[3])[:2]
                centres = np.array([[x + ex + ew / 2, y + ey + eh / 2] for ex, ey, ew, eh in two], np.float32)
                centres = centres[np.argsort(centres[:, 0])]  # image-left eye first
            found.append(Face((float(x), float(y), float(w), float(h)), 1.0, None, centres))
        return found

    return detect


def _yunet(path: Path, score_threshold: float = 0.6) -> Detector:
    try:
        net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), score_threshold, 0.3, 5000)
    except cv2.error as err:
        raise FaceRecError(f"cannot load YuNet detector {path}: {err.msg.strip() if hasattr(err, 'msg') else err}") from None

    def detect(image: np.ndarray) -> list[Face]:
        net.setInputSize((image.shape[1], image.shape[0]))
        _, rows = net.detect(image)
        if rows is None:
            return []
        # each row: x, y, w, h, 5 x (lx, ly), score
        return [Face(tuple(float(v) for v in r[:4]), float(r[14]), r[4:14].reshape(5, 2).astype(np.float32))
                for r in rows]

    return detect


def _insightface(path: Path, score_threshold: float = 0.5) -> Detector:
    from insightface.model_zoo import get_model

    try:
        model = get_model(str(path), providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime/insightface raise many types for a bad file
        raise FaceRecError(f"cannot load insightface detector {path}: {err}") from None
    if model is None or not hasattr(model, "detect"):
        raise FaceRecError(f"{path} is not a face detector insightface recognises")
    model.prepare(ctx_id=-1, input_size=(640, 640), det_thresh=score_threshold)

    def detect(image: np.ndarray) -> list[Face]:
        boxes, points = model.detect(image, input_size=(640, 640))
        out = []
        for i, (x1, y1, x2, y2, score) in enumerate(boxes):
            lm = None if points is None else points[i].astype(np.float32)
            out.append(Face((float(x1), float(y1), float(x2 - x1), float(y2 - y1)), float(score), lm))
        return out

    return detect


def _aligned(image: np.ndarray) -> list[Face]:
    h, w = image.shape[:2]
    return [Face((0.0, 0.0, float(w), float(h)), 1.0)]


def make_detector(spec: str = "haar") -> Detector:
    """Build a detector from ``haar``, ``aligned``, ``yunet:PATH``, ``scrfd:PATH`` or an ONNX path."""
    if spec == "haar":
        return _haar()
    if spec == "aligned":
        return _aligned
    kind, _, rest = spec.partition(":")
    if kind in ("yunet", "scrfd", "insightface") and rest:
        path = Path(rest)
    else:
        kind, path = ("yunet" if "yunet" in Path(spec).name.lower() else "insightface"), Path(spec)
    if not path.is_file():
        raise FaceRecError(f"detector file {path} does not exist (use --detector haar, aligned, or an ONNX path)")
    return _yunet(path) if kind == "yunet" else _insightface(path)
