"""Tests for the procedural synthetic-face generator (facerec.data.synthetic)."""

from __future__ import annotations

import dataclasses
import os
import pathlib

import cv2
import numpy as np
import pytest

from facerec.data.synthetic import (IdentityTraits, generate_dataset, identity_name, identity_traits, render_face,
                                    render_image)


def _read_rgb(path: pathlib.Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, f"unreadable PNG: {path}"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


# --- shape, dtype, determinism -------------------------------------------------


@pytest.mark.parametrize("size", [32, 64, 112])
def test_shape_and_dtype(size: int) -> None:
    img = render_image(0, 0, 0, size=size)
    assert img.shape == (size, size, 3)
    assert img.dtype == np.uint8
    assert img.std() > 10, "image should not be blank"


def test_default_size_is_112() -> None:
    assert render_image(0, 1, 2).shape == (112, 112, 3)


def test_render_image_is_deterministic() -> None:
    assert np.array_equal(render_image(7, 3, 4), render_image(7, 3, 4))


def test_render_image_equals_render_face_with_documented_rng() -> None:
    expected = render_face(identity_traits(2, 5), np.random.default_rng([2, 5, 1]))
    assert np.array_equal(render_image(2, 5, 1), expected)


def test_traits_are_deterministic_frozen_and_varied() -> None:
    t = identity_traits(0, 3)
    assert isinstance(t, IdentityTraits)
    assert t == identity_traits(0, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.face_w = 0.0  # type: ignore[misc]
    many = [identity_traits(0, i) for i in range(50)]
    assert len(set(many)) == 50
    assert len({m.hair_style for m in many}) >= 5
    assert any(m.glasses for m in many) and any(m.beard != "none" for m in many)


def test_different_seed_identity_image_give_different_images() -> None:
    base = render_image(0, 0, 0)
    for other in (render_image(1, 0, 0), render_image(0, 1, 0), render_image(0, 0, 1)):
        assert not np.array_equal(base, other)
        assert np.abs(base.astype(int) - other.astype(int)).mean() > 5


def test_identity_name() -> None:
    assert identity_name(0) == "synth-0000"
    assert identity_name(7) == "synth-0007"
    assert identity_name(1234) == "synth-1234"
    names = [identity_name(i) for i in (10, 2, 100, 1)]
    assert sorted(names) == [identity_name(i) for i in (1, 2, 10, 100)]


# --- identity structure ----------------------------------------------------------


def _tiny_grey(img: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (28, 28), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()


@pytest.fixture(scope="module")
def tiny_features() -> np.ndarray:
    """28x28 grey pixels of 6 images of each of 20 identities: shape (20, 6, 784)."""
    return np.array([[_tiny_grey(render_image(11, i, j)) for j in range(6)] for i in range(20)])


def test_raw_pixel_nearest_neighbour_is_hard_but_above_chance(tiny_features: np.ndarray) -> None:
    """1-gallery NN on raw pixels: far from perfect, yet well above chance.

    Every image serves once as the gallery image of its identity (the others
    are probes), which averages out the luck of the gallery choice. Measured:
    0.24 on this seed, 0.17-0.25 over seeds 0-11; chance is 1/20 = 0.05.
    """
    n_ids, n_imgs, _ = tiny_features.shape
    labels = np.arange(n_ids)
    accuracies = []
    for g in range(n_imgs):
        gallery = tiny_features[:, g]
        probes = np.delete(tiny_features, g, axis=1)
        dist = ((probes[:, :, None, :] - gallery[None, None]) ** 2).sum(-1)  # (id, probe, gallery)
        accuracies.append((dist.argmin(-1) == labels[:, None]).mean())
    accuracy = float(np.mean(accuracies))
    assert accuracy < 0.5, f"identities are (nearly) separable on raw pixels ({accuracy:.2f})"
    assert accuracy > 2 / n_ids, f"raw-pixel NN is close to chance ({accuracy:.2f})"


def test_same_identity_images_are_closer_but_not_by_much(tiny_features: np.ndarray) -> None:
    """Identity shows in raw pixels, but the nuisances dominate (measured ratio ~0.85)."""
    n_ids, n_imgs, dim = tiny_features.shape
    flat = tiny_features.reshape(-1, dim)
    labels = np.repeat(np.arange(n_ids), n_imgs)
    dist = np.sqrt(((flat[:, None] - flat[None]) ** 2).sum(-1))
    same = (labels[:, None] == labels[None]) & ~np.eye(len(flat), dtype=bool)
    ratio = dist[same].mean() / dist[labels[:, None] != labels[None]].mean()
    assert 0.6 < ratio < 0.95, f"same/different identity distance ratio {ratio:.2f}"


# --- generate_dataset ----------------------------------------------------------


def test_generate_dataset_layout_and_progress(tmp_path: pathlib.Path) -> None:
    calls: list[int] = []
    root = generate_dataset(tmp_path / "a" / "ds", identities=3, images_per_identity=4, seed=1,
                            size=48, progress=calls.append)
    assert isinstance(root, pathlib.Path) and root == tmp_path / "a" / "ds"
    folders = sorted(p.name for p in root.iterdir())
    assert folders == ["synth-0000", "synth-0001", "synth-0002"]
    for folder in folders:
        files = sorted(p.name for p in (root / folder).iterdir())
        assert files == ["000.png", "001.png", "002.png", "003.png"], "no temp files may remain"
    assert sum(calls) == 12
    img = _read_rgb(root / "synth-0002" / "003.png")
    assert np.array_equal(img, render_image(1, 2, 3, size=48)), "PNG must hold the RGB image losslessly"


def test_generate_dataset_is_byte_identical(tmp_path: pathlib.Path) -> None:
    a = generate_dataset(tmp_path / "a", 2, 3, seed=5, size=64)
    b = generate_dataset(str(tmp_path / "b"), 2, 3, seed=5, size=64)
    files = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert len(files) == 6
    assert files == sorted(p.relative_to(b) for p in b.rglob("*.png"))
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes()


def test_image_is_independent_of_dataset_size_and_order(tmp_path: pathlib.Path) -> None:
    alone = render_image(3, 5, 2)
    root = generate_dataset(tmp_path, identities=8, images_per_identity=3, seed=3)
    assert np.array_equal(_read_rgb(root / "synth-0005" / "002.png"), alone)
    # Rendering other images first must not change anything either.
    for i, j in [(7, 0), (0, 2), (5, 1)]:
        render_image(3, i, j)
    assert np.array_equal(render_image(3, 5, 2), alone)


def test_generate_dataset_overwrites_existing_root(tmp_path: pathlib.Path) -> None:
    generate_dataset(tmp_path, 1, 2, seed=0, size=32)
    generate_dataset(tmp_path, 1, 2, seed=0, size=32)
    assert len(list(tmp_path.rglob("*"))) == 3  # one folder, two files


def test_interrupted_write_leaves_no_partial_png(tmp_path: pathlib.Path, monkeypatch) -> None:
    """If the final rename never happens, neither a PNG nor a temp file is left behind."""

    def killed(src, dst):
        raise KeyboardInterrupt  # as if the run were stopped between write and rename

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(tmp_path, 1, 1, size=32)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"identities": 0, "images_per_identity": 1}, "identities"),
        ({"identities": 1, "images_per_identity": 0}, "images_per_identity"),
        ({"identities": 1, "images_per_identity": 1, "size": 31}, "size"),
    ],
)
def test_generate_dataset_rejects_bad_arguments(tmp_path: pathlib.Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_dataset(tmp_path / "ds", **kwargs)
    assert not (tmp_path / "ds").exists(), "nothing is written when arguments are invalid"


def test_render_rejects_tiny_size() -> None:
    with pytest.raises(ValueError, match="size"):
        render_image(0, 0, 0, size=16)
