"""The shipped model's recipe: a face ViT distilled from dlib + SFace on LFW, person-disjoint.

Data: the aligned crops of every LFW person who is *not* excluded — fold 1 of View 2 always (its
435 people measure generalisation), optionally more folds, the ``exclude_top`` most-photographed
remaining people (a clean reference for forgetting benchmarks) and named people.

Targets: the concatenated unit embeddings of the two teachers (``teachers.combined``); for a
mirrored crop SFace's embedding of the mirror (dlib's descriptor is used for both: it was trained
with mirroring and is near flip-invariant). Loss per batch (``loss.py``):
``cosine + relational_weight * relational + margin_weight * CosFace``, the last on an identity
head over people with at least two training photos (the head that ``facerec forget`` edits).

AdamW with timm's parameter groups, warm-up then cosine decay per step, one seeded generator per
epoch (order, mirroring, augmentation), a checkpoint after every epoch: an interrupted run resumes
where it stopped, on CPU or CUDA.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..data.split import Split, make_split
from ..data.transforms import to_tensor, train_augmentation
from ..models import MARGINS
from facerec.core.progress import progress_bar
from facerec.training.trainer import epoch_seed, load_state, optimizer_and_schedule, optimizer_step, save_state
from .loss import cosine_loss, relational_loss


@dataclass(frozen=True)
class DistillConfig:
    model: str = "vit-face-s"
    epochs: int = 40
    batch_size: int = 128
    lr: float = 6e-4
    min_lr: float = 1e-5
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    teachers: str = "dlib+sface"  # "dlib+sface", "sface" or "dlib"
    same_view: bool = True  # SFace's target computed on the student's own augmented view (same_view.py)
    relational_weight: float = 4.0
    margin_weight: float = 0.02  # AdamW trains the head fully at any weight; this keeps the backbone on the teachers
    margin: str = "cosface"
    min_test_images: int = 4  # people with at least this many photos get one held-out test photo
    exclude_folds: tuple[int, ...] = (1,)
    exclude_top: int = 0
    exclude_names: tuple[str, ...] = ()
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def sface_per_view(self) -> bool:
        """SFace is a teacher and its target is computed on each view during training."""
        return self.same_view and "sface" in self.teachers.split("+")


@dataclass
class DistillData:
    """Everything the training loop reads, selected from a crop store and teacher targets."""

    images: np.ndarray  # (N, 112, 112, 3) uint8 RGB training crops (or crops.StoredCrops, decoded when drawn)
    targets: np.ndarray  # (N, D) unit teacher targets of the crops
    targets_flip: np.ndarray  # (N, D) targets of the mirrored crops
    labels: np.ndarray  # (N,) head row, -1 for people with one training photo
    identities: list[str]  # head rows
    split: Split  # the head people's train/test photos (test photos are never trained on)
    singles: list[str] = field(default_factory=list)  # one-photo people's photos (trained, no head row)
    excluded: list[str] = field(default_factory=list)  # people left out of every stage


def teacher_targets(teachers: dict[str, np.ndarray], which: str,
                    same_view: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(targets, targets of the mirror)`` for ``which`` ("dlib+sface", "sface", "dlib"); with
    ``same_view`` only the fixed parts (dlib), SFace's being computed per view during training."""
    from .teachers import combined

    parts = which.split("+")
    if not parts or any(p not in ("dlib", "sface") for p in parts):
        raise ValueError(f"unknown teachers {which!r}: use dlib, sface or dlib+sface")
    if same_view:
        parts = [p for p in parts if p != "sface"]
        if not parts:
            n = len(teachers["sface"])
            return np.zeros((n, 0), np.float32), np.zeros((n, 0), np.float32)
    plain = [teachers[p] for p in parts]
    mirrored = [teachers["sface_flip"] if p == "sface" else teachers[p] for p in parts]
    return combined(*plain), combined(*mirrored)


def select_data(paths: list[str], images: np.ndarray, usable: np.ndarray, teachers: dict[str, np.ndarray],
                excluded: set[str], cfg: DistillConfig) -> DistillData:
    """Leave out ``excluded`` people and unusable crops; split; build labels and targets."""
    by_person: dict[str, list[int]] = {}
    for i, p in enumerate(paths):
        person = p.split("/", 1)[0]
        if usable[i] and person not in excluded:
            by_person.setdefault(person, []).append(i)
    several = {p: [paths[i] for i in rows] for p, rows in by_person.items() if len(rows) >= cfg.min_test_images}
    split = make_split(several, test_per_identity=1, seed=cfg.seed)
    test = {f for files in split.test.values() for f in files}
    for p, rows in by_person.items():  # people with 2..min_test_images-1 photos: all train, head row too
        if p not in several and len(rows) >= 2:
            split.train[p] = [paths[i] for i in rows]
            split.test[p] = []
    identities = sorted(split.train)
    split.train = {p: split.train[p] for p in identities}
    split.test = {p: split.test[p] for p in identities}
    row = {p: k for k, p in enumerate(identities)}
    keep = [i for rows in by_person.values() for i in rows if paths[i] not in test]
    keep.sort()
    labels = np.array([row.get(paths[i].split("/", 1)[0], -1) for i in keep], np.int64)
    targets, targets_flip = teacher_targets(teachers, cfg.teachers, cfg.sface_per_view)
    singles = [paths[i] for i, label in zip(keep, labels) if label < 0]
    return DistillData(images[keep], targets[keep], targets_flip[keep], labels, identities, split, singles,
                       sorted(excluded))


def target_dim(data: DistillData, cfg: DistillConfig) -> int:
    """The student's embedding width: the fixed targets' plus SFace's when it is computed per view."""
    return data.targets.shape[1] + (128 if cfg.sface_per_view else 0)


def fingerprint(cfg: DistillConfig, data: DistillData) -> str:
    """Identifies a run: a checkpoint of a different config or data is never resumed from."""
    digest = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode())
    digest.update(json.dumps([data.identities, data.excluded, len(data.images)]).encode())
    return digest.hexdigest()[:16]


class _Views(torch.utils.data.Dataset):
    """Augmented crop ``i`` (mirrored when ``flips[i]``), with its index."""

    def __init__(self, images: np.ndarray, flips: np.ndarray, transform):
        self.images, self.flips, self.transform = images, flips, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        image = self.images[i][:, ::-1] if self.flips[i] else self.images[i]
        image = self.transform(image=np.ascontiguousarray(image))["image"]
        return to_tensor(image)[0], i


def _seed_worker(worker: int) -> None:
    """Each DataLoader worker holds a copy of the augmentation: give each its own seeded stream."""
    info = torch.utils.data.get_worker_info()
    info.dataset.transform.set_random_seed(info.seed % 2 ** 31)


def distill(model, data: DistillData, cfg: DistillConfig, *, device: torch.device, state_path=None,
            show_progress: bool = True, log=None, teacher=None, workers: int = 0) -> dict:
    """Train ``model`` in place; returns per-epoch mean losses and the wall time. ``teacher`` (a
    ``same_view.SameViewTeacher``) is required when ``cfg.same_view`` asks for SFace's targets."""
    if cfg.sface_per_view and teacher is None:
        raise ValueError("same-view targets need SFace (a SameViewTeacher)")
    margin = MARGINS[cfg.margin]
    model.to(device, memory_format=torch.channels_last)
    steps = len(data.images) // cfg.batch_size
    optimizer, scheduler = optimizer_and_schedule(model, cfg, steps)
    run = fingerprint(cfg, data)
    start = load_state(state_path, run, model, optimizer, scheduler)
    targets = torch.from_numpy(data.targets)
    targets_flip = torch.from_numpy(data.targets_flip)
    labels = torch.from_numpy(data.labels)
    transform = train_augmentation(flip=False)
    use_amp = device.type == "cuda"
    history, t0 = [], time.perf_counter()
    bar = progress_bar(cfg.epochs * steps, "distil", enabled=show_progress, unit="step")
    bar.update(start * steps)
    for epoch in range(start, cfg.epochs):
        seed = epoch_seed(cfg.seed, epoch)
        torch.manual_seed(seed)
        transform.set_random_seed(seed)
        flips = np.random.default_rng(seed).random(len(data.images)) < 0.5
        loader = torch.utils.data.DataLoader(_Views(data.images, flips, transform), batch_size=cfg.batch_size,
                                             shuffle=True, drop_last=True, num_workers=workers,
                                             worker_init_fn=_seed_worker if workers else None,
                                             generator=torch.Generator().manual_seed(seed))
        model.train()
        sums = np.zeros(3)
        for step, (x, idx) in enumerate(loader):
            flip = torch.from_numpy(flips[idx.numpy()])
            t = torch.where(flip[:, None], targets_flip[idx], targets[idx]).to(device)
            y = labels[idx].to(device)
            x = x.to(device, memory_format=torch.channels_last)  # depthwise convs (an SFace stem): ~1.6x on CPU
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                emb = model.forward_head(model.forward_features(x), pre_logits=True)
            emb = emb.float()
            if teacher is not None:
                t = teacher.targets(x, t)
            parts = [cosine_loss(emb, t), relational_loss(emb, t)]
            cosines = model.head(emb)
            labelled = y >= 0
            parts.append(F.cross_entropy(margin(cosines[labelled], y[labelled]), y[labelled])
                         if labelled.any() else emb.sum() * 0)
            loss = parts[0] + cfg.relational_weight * parts[1] + cfg.margin_weight * parts[2]
            optimizer_step(model, optimizer, scheduler, loss, epoch * steps + step + 1)
            sums += [p.item() for p in parts]
            bar.set_postfix(epoch=f"{epoch + 1}/{cfg.epochs}", cos=f"{parts[0].item():.3f}", refresh=False)
            bar.update(1)
        means = sums / max(1, steps)
        history.append({"epoch": epoch + 1, "cosine": means[0], "relational": means[1], "margin": means[2],
                        "seconds": round(time.perf_counter() - t0, 1)})
        if log:
            log(history[-1])
        if state_path is not None:
            save_state(state_path, run, epoch + 1, model, optimizer, scheduler)
    bar.close()
    return {"resumed_from": start, "history": history, "seconds": time.perf_counter() - t0}
