"""Detection and alignment: Haar and YuNet on insightface's group photo, alignment geometry."""

import numpy as np
import pytest

from facerec.detect import Face, align_face, make_detector
from facerec.core.errors import FaceRecError
from conftest import SHARED

YUNET = SHARED / "models" / "face_detection_yunet_2023mar.onnx"
requires_yunet = pytest.mark.skipif(not YUNET.is_file(), reason=f"YuNet model not found at {YUNET} (../shared absent)")


def _group_photo():
    from insightface.data import get_image

    return get_image("t1")  # BGR, six faces; ships inside the insightface wheel


def test_haar_finds_at_least_four_faces_in_the_group_photo():
    assert len(make_detector("haar")(_group_photo())) >= 4


@requires_yunet
def test_yunet_finds_all_six_faces_with_landmarks():
    faces = make_detector(str(YUNET))(_group_photo())
    assert len(faces) == 6
    assert all(f.landmarks is not None and f.landmarks.shape == (5, 2) for f in faces)


@requires_yunet
def test_aligned_crop_puts_the_eyes_on_the_template():
    image = _group_photo()
    face = make_detector(str(YUNET))(image)[0]
    crop = align_face(image, face)
    assert crop.shape == (112, 112, 3)
    # re-detecting on the aligned crop is not reliable at 112 px; check the transform instead
    from insightface.utils.face_align import estimate_norm

    matrix = estimate_norm(face.landmarks, 112)
    eyes = np.hstack([face.landmarks[:2], np.ones((2, 1))]) @ matrix.T
    assert np.allclose(eyes, [[38.29, 51.70], [73.53, 51.50]], atol=4.0)


def test_aligned_mode_returns_the_whole_image_as_one_face():
    image = np.zeros((112, 92, 3), np.uint8)
    faces = make_detector("aligned")(image)
    assert len(faces) == 1 and faces[0].box == (0.0, 0.0, 92.0, 112.0)
    assert align_face(image, faces[0]).shape == (112, 112, 3)


def test_box_crop_centres_the_box():
    image = np.zeros((200, 200, 3), np.uint8)
    image[80:120, 60:100] = 255  # a bright 40x40 square at (60, 80)
    crop = align_face(image, Face((60.0, 80.0, 40.0, 40.0), 1.0), size=112)
    bright = np.argwhere(crop[..., 0] > 128)
    assert np.allclose(bright.mean(0), [55.5, 55.5], atol=2.0)
    assert 85 < np.ptp(bright[:, 0]) < 112  # the square fills about 1/1.1 of the crop


def test_missing_detector_file_is_a_clear_error(tmp_path):
    with pytest.raises(FaceRecError, match="does not exist"):
        make_detector(str(tmp_path / "nope.onnx"))


def test_the_five_point_crop_is_insightfaces_norm_crop():
    """facerec computes the ArcFace alignment itself (no 3.5 s insightface import per call); it must
    give insightface's crops, since insightface's and facerec's exported models expect them."""
    import warnings

    from insightface.utils.face_align import norm_crop

    from facerec.detect.align import _TEMPLATE, _norm_crop

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    for _ in range(20):
        angle, scale = rng.uniform(-0.6, 0.6), rng.uniform(0.6, 2.5)
        rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        landmarks = (_TEMPLATE @ rot.T + rng.uniform(20, 200, 2) + rng.normal(0, 2, (5, 2))).astype(np.float32)
        for size in (112, 128):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                theirs = norm_crop(image, landmarks, image_size=size)
            assert np.array_equal(_norm_crop(image, landmarks, size), theirs)  # on noise: any shift would show
