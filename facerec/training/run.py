"""Training a workspace from a folder dataset: where training starts (the shipped model, another
model file, or random weights), the recipe for that start, and the saved workspace with its replay
buffer. Functions take paths and options and return plain dict reports; progress goes to stderr.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from facerec import pretrained
from facerec.core.device import resolve_device
from facerec.core.errors import FaceRecError
from facerec.data.split import make_split
from facerec.models import DEFAULT_MODEL, FaceViT, create_model, get_config
from facerec.training.recipe import FINE_TUNE_EPOCHS, FINE_TUNE_LR, TrainConfig
from facerec.training.distributed import barrier, device_for, from_environment
from facerec.training.datasets import load_training_data
from facerec.training.trainer import predict, train_model
from facerec.workspace.replay import DEFAULT_SHOTS, write_replay
from facerec.workspace.workspace import Workspace


def _fingerprint(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def train_workspace(
    data_dir: str | os.PathLike,
    workspace: str | os.PathLike,
    *,
    model_name: str | None = None,
    config: TrainConfig = TrainConfig(),
    from_scratch: bool = False,
    init_from: str | os.PathLike | None = None,
    min_images: int | None = None,
    max_images: int | None = None,
    test_per_identity: int = 2,
    device: str | None = None,
    restart: bool = False,
    replay_shots: int = DEFAULT_SHOTS,
    show_progress: bool = True,
    workers: int = 0,
    stream: bool | None = None,
) -> dict:
    """Load a folder dataset, split it, train a model, measure held-out top-1, save the workspace.

    By default (``model_name`` None) the shipped model is fine-tuned: its backbone is loaded and a
    new identity head for the dataset's people is initialised from their mean embeddings
    ("weight imprinting", Qi et al., CVPR 2018), so training starts from a working face model.
    ``from_scratch`` (or a ``model_name`` other than the shipped model's) starts from random weights.
    ``init_from``: fine-tune another model file in the shipped model's format instead (e.g. a
    backbone trained with ``tools/train_face_model.py --exclude-top 100``); the workspace records
    it, and ``forget --method retrain`` starts from it again.
    An unfinished run of the same model, data and config in ``workspace`` is resumed from its
    last completed epoch unless ``restart`` is set. ``replay_shots`` training crops per person
    are kept in the workspace's replay buffer (``facerec.workspace.replay``; 0 keeps none).
    ``stream``: decode samples when drawn instead of all at once (``training.datasets``; None:
    above ``data.streaming.STREAM_FROM`` images). ``workers``: DataLoader processes. Under
    ``torchrun`` the processes train together (``training.distributed``) and rank 0 writes.

    Returns:
        A report: ``top1`` (held-out, 0..1), ``seconds`` (training), ``identities``, ``images``,
        ``model``, ``model_version`` and details of the data and run.
    """
    t_start = time.perf_counter()
    model_name, init = starting_point(model_name, from_scratch, init_from)
    init_file = str(Path(init_from).resolve()) if init_from is not None else None
    get_config(model_name)  # an unknown model name fails before any data is read
    dev = resolve_device(device)
    world = from_environment(dev)  # torchrun's processes, or one
    dev = device_for(world, dev)
    backbone = pretrained.load_model(dev, init_file, init) if init else None  # checked whole before data is read
    ws = Workspace(workspace)
    if ws.exists():
        ws.manifest()  # refuses a workspace from a newer facerec before anything is overwritten
    data = load_training_data(data_dir, min_images=min_images, max_images=max_images,
                              test_per_identity=test_per_identity, seed=config.seed, stream=stream)

    torch.manual_seed(config.seed)
    model = _initial_model(model_name, backbone, data, config.seed, dev)
    fingerprint = _fingerprint(model_name, model.config.to_dict(), config.to_dict(), data.identities,
                               data.split.to_dict(), init)
    if restart and world.main:
        ws.train_state_path.unlink(missing_ok=True)
    barrier(world)  # no rank reads the checkpoint a restart removes
    result = train_model(model, data.train, None, config, device=dev, state_path=ws.train_state_path,
                         fingerprint=fingerprint, show_progress=show_progress, world=world, workers=workers)
    if not world.main:  # rank 0 alone measures and writes the workspace
        return {"rank": world.rank, "world_size": world.size, "seconds": round(result.seconds, 2)}
    top1 = data.top1(lambda x: predict(model, x, dev), "test")
    train_top1 = data.top1(lambda x: predict(model, x, dev), "train", seed=config.seed)

    training = {"config": config.to_dict(), "device": str(dev), **world.to_dict(), "streamed": data.streamed,
                "initialised_from": init or "scratch", **({"initialised_from_file": init_file} if init_file else {}),
                "seconds": round(result.seconds, 2), "top1": top1, "train_top1": train_top1,
                "final_loss": result.final_loss, "resumed_from_epoch": result.resumed_from,
                "unreadable_draws": result.unreadable}
    version, replay = _write(ws, model, model_name, data, training, data_dir, (min_images, max_images),
                             replay_shots, config.seed)
    ws.train_state_path.unlink(missing_ok=True)
    return {"top1": top1, "train_top1": train_top1, "seconds": round(result.seconds, 2),
            "total_seconds": round(time.perf_counter() - t_start, 2), **_data_counts(data), "streamed": data.streamed,
            "model": model_name, "model_version": version, "initialised_from": init or "scratch",
            "parameters": sum(p.numel() for p in model.parameters()), "epochs": config.epochs,
            "resumed_from_epoch": result.resumed_from, "replay_images": replay["images"], "device": str(dev),
            **world.to_dict(), "workspace": str(ws.root)}


def _write(ws: Workspace, model, model_name: str, data, training: dict, data_dir, limits, replay_shots: int,
           seed: int) -> tuple[str, dict]:
    """Save the trained model with its data record, then fill the replay buffer (a few crops per
    person, decoded for it when the data is streamed); returns ``(model version, replay record)``."""
    images, labels = data.decode("train", data.rows("train", replay_shots, seed)) if replay_shots > 0 \
        else (np.zeros((0, 112, 112, 3), np.uint8), np.zeros(0, np.int64))
    version = ws.save(model.cpu(), model_name=model_name, identities=data.identities, split=data.split,
                      data=data_record(data_dir, data.folder, *limits, data.skipped()), training=training)
    return version, save_replay(ws, images, labels, data.identities, shots=replay_shots, seed=seed)


def _initial_model(model_name: str, backbone, data, seed: int, dev):
    """The model training starts from: the pretrained backbone with an imprinted head, or random
    weights (a hybrid's frozen stem is SFace's, never random)."""
    if backbone is not None:
        model = FaceViT(backbone.config, len(data.identities))
        start_from_pretrained(model, backbone, *data.imprint_sample(seed), dev)
        return model
    model = create_model(model_name, len(data.identities))
    pretrained.fill_sface_stem(model)
    return model


def _data_counts(data) -> dict:
    return {"identities": len(data.identities), "images": int(len(data.folder.paths)), "train_images": len(data.train),
            "test_images": len(data.test), "skipped_unreadable": len(data.skipped()),
            "dropped_identities": len(data.folder.dropped_identities)}


def split_folder(folder, test_per_identity: int, seed: int):
    """``(split, (train images, labels), (test images, labels))`` of a loaded face folder."""
    split = make_split(folder.files_by_identity(), test_per_identity, seed)
    return split, folder.select(split.paths("train")), folder.select(split.paths("test"))


def data_record(data_dir, folder, min_images: int | None = None, max_images: int | None = None,
                skipped: list[str] | None = None) -> dict:
    """The manifest's ``data`` record of a workspace trained (or imported) over ``folder``."""
    return {"root": str(Path(data_dir).resolve()), "identities": len(folder.identities),
            "images": int(len(folder.paths)), "skipped_unreadable": folder.skipped if skipped is None else skipped,
            "dropped_identities": len(folder.dropped_identities), "min_images": min_images, "max_images": max_images}


def save_replay(ws: Workspace, images, labels, identities: list[str], *, shots: int, seed: int) -> dict:
    """Fill the workspace's replay buffer from the training crops and record it in the manifest."""
    replay = write_replay(ws.root, images, labels, identities, shots=shots, seed=seed)
    ws.update_manifest(lambda m: m.update(replay=replay))
    return replay


def starting_point(model_name: str | None, from_scratch: bool,
                   init_from: str | os.PathLike | None = None) -> tuple[str, str | None]:
    """``(model name, version of the shipped model or of ``init_from`` to fine-tune from, or None
    for random weights)``."""
    if init_from is not None:
        if from_scratch:
            raise FaceRecError("--init-from and --from-scratch exclude each other")
        info = pretrained.check_file(init_from)  # record and tensor shapes; pretrained.load_model reads the weights
        if model_name is not None and model_name != info["name"]:
            raise FaceRecError(f"{init_from} is a {info['name']} model, not {model_name}")
        return info["name"], info["version"]
    if model_name is None:
        if pretrained.available() and not from_scratch:
            return pretrained.model_name(), pretrained.record()["version"]
        return DEFAULT_MODEL, None
    if not from_scratch and pretrained.available() and model_name == pretrained.model_name():
        return model_name, pretrained.record()["version"]
    return model_name, None


def fine_tunes(model_name: str | None, from_scratch: bool, init_from: str | os.PathLike | None = None) -> bool:
    """Whether training with these options starts from a face model rather than random weights."""
    return starting_point(model_name, from_scratch, init_from)[1] is not None


def training_config(*, model_name: str | None = None, from_scratch: bool = False,
                    init_from: str | os.PathLike | None = None, epochs: int | None = None,
                    scratch_epochs: int | None = None, lr: float | None = None, **fixed) -> TrainConfig:
    """The training recipe for a start: fine-tuning (the shipped model or ``init_from``) runs
    :data:`FINE_TUNE_EPOCHS` epochs at :data:`FINE_TUNE_LR` with a warm-up of a tenth of them;
    from random weights ``scratch_epochs`` at :class:`TrainConfig`'s rate. ``epochs`` / ``lr``
    override; ``fixed`` (batch_size, margin, seed) passes through."""
    d = TrainConfig()
    tune = fine_tunes(model_name, from_scratch, init_from)
    epochs = epochs or (FINE_TUNE_EPOCHS if tune else scratch_epochs or d.epochs)
    return TrainConfig(epochs=epochs, lr=lr or (FINE_TUNE_LR if tune else d.lr),
                       warmup_epochs=min(d.warmup_epochs, epochs / 10) if tune else d.warmup_epochs, **fixed)


@torch.no_grad()
def start_from_pretrained(model, shipped, images, labels, device) -> None:
    """Load the backbone of ``shipped`` (``pretrained.load_model``) into ``model`` and imprint its head:
    row k = the normalised mean embedding of person k's training crops."""
    backbone = {k: v for k, v in shipped.state_dict().items() if not k.startswith("head.")}
    missing, unexpected = model.load_state_dict(backbone, strict=False)
    if unexpected or any(not k.startswith("head.") for k in missing):
        raise ValueError(f"the model to start from does not fit {model.config}")
    model.head.weight.copy_(imprinted_rows(shipped, model.num_classes, images, labels, device))


@torch.no_grad()
def imprinted_rows(embedder, classes: int, images, labels, device) -> torch.Tensor:
    """``(classes, d)`` head rows, row k the normalised mean embedding under ``embedder`` of
    person k's ``images`` (weight imprinting, Qi et al., CVPR 2018; zero for a person without any)."""
    from facerec.recognition.pipeline import embed_images

    emb = torch.from_numpy(embed_images(embedder, images, device))
    centres = torch.zeros(classes, emb.shape[1]).index_add_(0, torch.from_numpy(labels).long(), emb)
    return torch.nn.functional.normalize(centres, dim=1)
