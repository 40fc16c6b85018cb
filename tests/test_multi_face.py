"""Photos holding several faces: which one ``enroll`` takes as the named person (issue 25).

A quarter of LFW fold 1's first photos hold a bystander; refusing them all left people out of
the gallery. The rule (``facerec.detect.subject_face``) enrolls a face that clearly dominates and
refuses two faces of about one size.
"""

import shutil

import cv2
import numpy as np
import pytest

from facerec.detect import Face, subject_face
from facerec.core.errors import FaceRecError

W = H = 400


def _face(cx: float, cy: float, side: float) -> Face:
    """A face box of ``side`` centred at (cx, cy), with landmarks where a frontal face has them."""
    unit = np.array([[0.34, 0.46], [0.66, 0.46], [0.5, 0.64], [0.37, 0.82], [0.63, 0.82]], np.float32)
    landmarks = (unit - 0.5) * side + np.array([cx, cy], np.float32)
    return Face((cx - side / 2, cy - side / 2, side, side), 0.9, landmarks)


def test_one_face_is_the_subject_and_no_face_is_none():
    assert subject_face([_face(100, 100, 40)], W, H) == 0
    assert subject_face([], W, H) is None
    assert subject_face([_face(100, 100, 40)], W, H, "refuse") == 0


def test_a_face_twice_the_area_of_every_other_is_the_subject_wherever_it_stands():
    faces = [_face(200, 200, 50), _face(60, 60, 80)]  # the big one is off-centre: 2.56x the area
    assert subject_face(faces, W, H) == 1


def test_a_central_face_somewhat_larger_than_the_others_is_the_subject():
    faces = [_face(60, 200, 60), _face(200, 200, 70), _face(340, 200, 40)]  # 1.36x, nearest the centre
    assert subject_face(faces, W, H) == 1


def test_two_faces_of_about_one_size_have_no_subject_unless_the_largest_is_asked_for():
    couple = [_face(150, 200, 80), _face(260, 200, 84)]  # 1.10x
    assert subject_face(couple, W, H) is None
    assert subject_face(couple, W, H, "largest") == 1
    off_centre = [_face(200, 200, 60), _face(330, 330, 70)]  # 1.36x but not the central face
    assert subject_face(off_centre, W, H) is None


def test_refuse_takes_no_face_from_a_photo_with_several_and_unknown_rules_are_errors():
    assert subject_face([_face(200, 200, 100), _face(40, 40, 20)], W, H, "refuse") is None
    with pytest.raises(FaceRecError, match="multi-face rule"):
        subject_face([], W, H, "first")


@pytest.fixture
def two_face_pipeline(tiny_trained, tmp_path):
    """The tiny workspace (copied) with a pipeline whose detector sees two faces of the given
    sides in every photo: the subject in the centre and a bystander in a corner."""
    from facerec.recognition.pipeline import FacePipeline
    from facerec.workspace.workspace import Workspace

    data, src = tiny_trained
    ws = tmp_path / "ws"
    shutil.copytree(src, ws)

    def make(subject_side: float, bystander_side: float):
        pipe = FacePipeline(Workspace(ws), detector="aligned")
        pipe.detect = lambda image: [_face(60, 60, bystander_side), _face(200, 200, subject_side)]
        return pipe

    photo = tmp_path / "photo.png"
    face = cv2.imread(str(next(p for p in sorted(data.rglob("*.png")))))
    canvas = np.zeros((H, W, 3), np.uint8)
    canvas[144:256, 144:256] = face
    canvas[:112, :112] = face[:, ::-1]  # the bystander: something else in the corner
    cv2.imwrite(str(photo), canvas)
    return make, photo


def test_enroll_takes_the_dominant_face_and_refuses_an_ambiguous_photo(two_face_pipeline):
    from facerec.recognition.enrollment import enroll
    from facerec.detect import align_face

    make, photo = two_face_pipeline
    pipe = make(subject_side=112, bystander_side=60)
    report = enroll(pipe, "carol", [str(photo)])
    assert report["enrolled"] == 1 and report["images"][0]["faces"] == 2
    grey = lambda crop: crop.astype(float).mean(axis=2)  # noqa: E731 - blind to the channel order
    stored = grey(cv2.imread(str(next((pipe.ws.root / "crops" / "carol").glob("*.png")))))
    image = cv2.imread(str(photo))
    subject, bystander = (grey(align_face(image, f)) for f in pipe.detect(image)[::-1])
    assert np.abs(stored - subject).mean() < 2 < np.abs(stored - bystander).mean()

    pipe = make(subject_side=112, bystander_side=108)  # about one size: no subject
    report = enroll(pipe, "dave", [str(photo)])
    assert report["enrolled"] == 0 and "none stands out" in report["images"][0]["status"]
    assert enroll(pipe, "dave", [str(photo)], multi_face="largest")["enrolled"] == 1

    pipe = make(subject_side=112, bystander_side=20)
    report = enroll(pipe, "erin", [str(photo)], multi_face="refuse")
    assert report["enrolled"] == 0 and "exactly one" in report["images"][0]["status"]
