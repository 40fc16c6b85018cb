"""Folder datasets: formats (PGM, grey, colour), corrupt files, filters, and bad folders."""

import cv2
import numpy as np
import pytest

from facerec.data.folder import load_face_folder, read_image
from facerec.core.errors import DataError
from conftest import ORL, requires_orl


def _write(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)


def _pattern(h, w, seed):
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)


def test_reads_grey_pgm_as_three_equal_channels(tmp_path):
    grey = _pattern(112, 92, 0)
    _write(tmp_path / "a.pgm", grey)
    image = read_image(tmp_path / "a.pgm", size=None)
    assert image.shape == (112, 92, 3) and image.dtype == np.uint8
    assert np.array_equal(image[..., 0], grey) and np.array_equal(image[..., 1], grey)


def test_reads_colour_as_rgb_and_resizes(tmp_path):
    bgr = np.zeros((60, 80, 3), np.uint8)
    bgr[..., 2] = 255  # pure red in OpenCV's BGR order
    _write(tmp_path / "red.png", bgr)
    _write(tmp_path / "red.jpg", bgr)
    for name in ("red.png", "red.jpg"):
        image = read_image(tmp_path / name, size=112)
        assert image.shape == (112, 112, 3)
        assert image[..., 0].mean() > 240 and image[..., 2].mean() < 15  # R first


def test_corrupt_files_are_skipped_and_counted_non_images_ignored(tmp_path):
    for person in ("ann", "bob"):
        for i in range(3):
            _write(tmp_path / person / f"{i}.png", _pattern(50, 50, i))
    (tmp_path / "ann" / "broken.jpg").write_bytes(b"not a jpeg at all")
    (tmp_path / "ann" / "notes.txt").write_text("ignored")
    (tmp_path / "README").write_text("a file at the root is ignored")
    folder = load_face_folder(tmp_path)
    assert folder.identities == ["ann", "bob"]
    assert folder.skipped == ["ann/broken.jpg"]
    assert folder.images.shape == (6, 112, 112, 3)
    assert folder.labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_min_and_max_images_filters(tmp_path):
    for person, count in (("few", 2), ("many", 7), ("mid", 4)):
        for i in range(count):
            _write(tmp_path / person / f"{i:02d}.png", _pattern(20, 20, i))
    folder = load_face_folder(tmp_path, min_images=3, max_images=5)
    assert folder.identities == ["many", "mid"]
    assert folder.dropped_identities == ["few"]
    counts = folder.files_by_identity()
    assert len(counts["many"]) == 5 and len(counts["mid"]) == 4


@pytest.mark.parametrize("make", ["missing", "empty", "file", "no-images"])
def test_unusable_folders_raise_data_errors(tmp_path, make):
    root = tmp_path / "data"
    if make == "empty":
        root.mkdir()
    elif make == "file":
        root.write_text("x")
    elif make == "no-images":
        (root / "person").mkdir(parents=True)
        (root / "person" / "a.txt").write_text("x")
    with pytest.raises(DataError):
        load_face_folder(root)


@requires_orl
def test_orl_loads_forty_people_of_ten():
    folder = load_face_folder(ORL)
    assert len(folder.identities) == 40 and len(folder.paths) == 400 and not folder.skipped
    assert np.bincount(folder.labels).tolist() == [10] * 40
