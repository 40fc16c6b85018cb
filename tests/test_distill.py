"""The distillation recipe: losses, data selection (who is never trained on), the crop store, and a
short run that learns to follow a teacher. No ../shared needed: the teacher here is a fixed
random projection of the crops' pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facerec.distill.crops import build_crop_store, load_crop_store
from facerec.distill.loss import cosine_loss, relational_loss
from facerec.distill.recipe import DistillConfig, distill, select_data, teacher_targets
from facerec.distill.teachers import combined
from facerec.core.errors import DataError


def test_losses_vanish_on_the_teacher_and_not_elsewhere():
    t = torch.nn.functional.normalize(torch.randn(16, 8), dim=1)
    assert cosine_loss(3 * t, t) < 1e-6 and relational_loss(2 * t, t) < 1e-10
    other = torch.randn(16, 8)
    assert cosine_loss(other, t) > 0.3 and relational_loss(other, t) > 0.01


def test_combined_cosine_is_the_mean_of_the_teachers():
    rng = np.random.default_rng(0)
    a, b = (x / np.linalg.norm(x, axis=1, keepdims=True) for x in rng.normal(size=(2, 5, 16)))
    c = combined(a, b)
    assert np.allclose(c @ c[0], ((a @ a[0]) + (b @ b[0])) / 2, atol=1e-6)


def _teachers(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    unit = lambda x: (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)  # noqa: E731
    return {"dlib": unit(rng.normal(size=(n, 8))), "sface": unit(rng.normal(size=(n, 8))),
            "sface_flip": unit(rng.normal(size=(n, 8)))}


def test_select_data_leaves_out_excluded_people_and_held_out_photos():
    paths = [f"p{i}/{j}.jpg" for i, n in enumerate([5, 5, 2, 1, 4]) for j in range(n)]
    images = np.zeros((len(paths), 112, 112, 3), np.uint8)
    usable = np.ones(len(paths), bool)
    usable[paths.index("p1/4.jpg")] = False
    cfg = DistillConfig(min_test_images=4)
    data = select_data(paths, images, usable, _teachers(len(paths)), {"p4"}, cfg)
    assert data.identities == ["p0", "p1", "p2"] and data.excluded == ["p4"]
    assert [len(data.split.test[p]) for p in data.identities] == [1, 1, 0]  # p1 has 4 usable photos
    assert data.singles == ["p3/0.jpg"]
    trained = {f for files in data.split.train.values() for f in files} | set(data.singles)
    assert len(data.images) == len(trained) == 5 + 4 + 2 + 1 - 2
    assert not any(f.startswith("p4/") for f in trained) and not trained & {f for v in data.split.test.values() for f in v}
    assert sorted(data.labels.tolist()) == [-1, 0, 0, 0, 0, 1, 1, 1, 2, 2]


def test_teacher_targets_mirror_only_sface():
    t = _teachers(4)
    plain, mirrored = teacher_targets(t, "dlib+sface")
    assert np.allclose(plain[:, :8] * np.sqrt(2), t["dlib"], atol=1e-6)
    assert np.allclose(mirrored[:, 8:] * np.sqrt(2), t["sface_flip"], atol=1e-6)
    with pytest.raises(ValueError, match="unknown teachers"):
        teacher_targets(t, "arcface")


def test_crop_store_round_trip_and_checksum(tmp_path):
    import cv2

    for k, person in enumerate(("ann", "bob")):
        (tmp_path / "data" / person).mkdir(parents=True)
        for j in range(2):
            image = np.full((112, 112, 3), 40 * (k + 1), np.uint8)
            cv2.circle(image, (56, 56), 20 + 10 * j, (200, 90, 30), -1)  # smooth shapes: what JPEG keeps well
            cv2.imwrite(str(tmp_path / "data" / person / f"{j}.png"), image)
    (tmp_path / "data" / "bob" / "bad.jpg").write_bytes(b"not a jpeg")
    meta = build_crop_store(tmp_path / "data", tmp_path / "store", "aligned")
    assert meta["count"] == 4 and meta["skipped"] == ["bob/bad.jpg"]
    store = load_crop_store(tmp_path / "store")
    assert store.paths == ["ann/0.png", "ann/1.png", "bob/0.png", "bob/1.png"] and store.images.shape == (4, 112, 112, 3)
    original = cv2.cvtColor(cv2.imread(str(tmp_path / "data" / "ann" / "0.png")), cv2.COLOR_BGR2RGB)
    assert np.abs(store.images[0].astype(int) - original).mean() < 3  # JPEG of the same image
    assert np.abs(store.images[1].astype(int) - original).mean() > 3 * np.abs(store.images[0].astype(int) - original).mean()
    (tmp_path / "store" / "crops.rec").write_bytes(b"\0" * 64)
    with pytest.raises(DataError, match="checksum"):
        load_crop_store(tmp_path / "store")


def _patterns(n: int, bases: int, seed: int = 0) -> np.ndarray:
    """``n`` noisy copies of ``bases`` smooth random 112x112 patterns."""
    rng = np.random.default_rng(seed)
    base = np.stack([cv2_resize(b) for b in rng.integers(0, 255, (bases, 14, 14, 3)).astype(np.float32)])
    return np.clip(base[np.arange(n) % bases] + rng.normal(0, 8, (n, 112, 112, 3)), 0, 255).astype(np.uint8)


def test_a_streamed_store_distils_exactly_as_a_decoded_one(tmp_path):
    """A store loaded streamed holds keys, not pixels; its crops, subsets and batches are the
    decoded store's, and a distillation on it follows the same losses step for step."""
    import cv2

    from facerec.distill.crops import StoredCrops, write_crop_store
    from facerec.models import create_model

    n, bases = 48, 6
    images = _patterns(n, bases)
    paths = [f"p{i % bases}/{i}.jpg" for i in range(n)]
    encoded = (cv2.imencode(".jpg", im[:, :, ::-1])[1].tobytes() for im in images)  # a generator: written as it comes
    write_crop_store(tmp_path / "store", paths, encoded, [True] * n, {"detector": "aligned"})
    decoded, streamed = load_crop_store(tmp_path / "store"), load_crop_store(tmp_path / "store", stream=True)
    assert isinstance(decoded.images, np.ndarray) and isinstance(streamed.images, StoredCrops)
    assert streamed.images.shape == decoded.images.shape and len(streamed.images.keys) == n
    assert np.array_equal(streamed.images[5], decoded.images[5])
    assert np.array_equal(streamed.images[10:20], decoded.images[10:20])
    subset = streamed.images[[3, 1, 40]]
    assert isinstance(subset, StoredCrops) and np.array_equal(np.asarray(subset), decoded.images[[3, 1, 40]])
    rng = np.random.default_rng(1)
    target = rng.normal(size=(n, 8))
    target = (target / np.linalg.norm(target, axis=1, keepdims=True)).astype(np.float32)
    teachers = {"sface": target, "sface_flip": target}
    cfg = DistillConfig(model="vit-face-test", epochs=2, batch_size=8, lr=3e-3, warmup_epochs=0.5, teachers="sface",
                        same_view=False, exclude_folds=())
    histories = []
    for store in (decoded, streamed):
        data = select_data(store.paths, store.images, np.ones(n, bool), teachers, {"p5"}, cfg)
        torch.manual_seed(0)
        model = create_model("vit-face-test", num_classes=len(data.identities), embedding_dim=8)
        result = distill(model, data, cfg, device=torch.device("cpu"), show_progress=False)
        histories.append([(e["cosine"], e["relational"], e["margin"]) for e in result["history"]])
    assert isinstance(data.images, StoredCrops) and len(data.images) < n  # p5 left out, test photos held out
    assert np.allclose(histories[0], histories[1], rtol=1e-5, atol=1e-6), histories


def test_a_short_distillation_follows_the_teacher():
    """The teacher gives each of 12 base images' noisy copies that base's random direction (plus
    a little per-image spread); a few epochs of distillation must bring the student's mean cosine
    to its targets well above the untrained student's."""
    from facerec.models import create_model
    from facerec.recognition.pipeline import embed_images

    rng = np.random.default_rng(0)
    n, bases = 96, 12
    base = rng.integers(0, 255, (bases, 14, 14, 3)).astype(np.float32)
    base = np.stack([cv2_resize(b) for b in base])  # smooth 112x112 patterns
    images = np.clip(base[np.arange(n) % bases] + rng.normal(0, 8, (n, 112, 112, 3)), 0, 255).astype(np.uint8)
    directions = rng.normal(size=(bases, 16))
    target = directions[np.arange(n) % bases] + 0.2 * rng.normal(size=(n, 16))
    target = (target / np.linalg.norm(target, axis=1, keepdims=True)).astype(np.float32)
    teachers = {"sface": target, "sface_flip": target}
    paths = [f"p{i % bases}/{i}.jpg" for i in range(n)]
    cfg = DistillConfig(model="vit-face-test", epochs=8, batch_size=16, lr=3e-3, warmup_epochs=0.5, teachers="sface",
                        same_view=False, relational_weight=1.0, margin_weight=0.0, exclude_folds=())
    data = select_data(paths, images, np.ones(n, bool), teachers, set(), cfg)
    model = create_model("vit-face-test", num_classes=len(data.identities), embedding_dim=16)

    def agreement() -> float:
        emb = embed_images(model, data.images, torch.device("cpu"))
        return float((emb * data.targets).sum(1).mean())

    before = agreement()
    result = distill(model, data, cfg, device=torch.device("cpu"), show_progress=False)
    after = agreement()
    assert len(result["history"]) == 8
    assert result["history"][-1]["cosine"] < result["history"][0]["cosine"]
    assert after > before + 0.2, (before, after)


def cv2_resize(image: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.resize(image, (112, 112), interpolation=cv2.INTER_CUBIC)
