"""A workspace from someone else's trained face model: the GS-LoRA authors' Face Transformer, or
a large face ViT in insightface arcface_torch's layout (LVFace, TransFace).

``facerec import-checkpoint CKPT --data DIR -w WS`` recognises the state dict's layout, converts
it (:mod:`facerec.models.vit_face`, :mod:`facerec.models.arcface_vit`) and writes a workspace
like ``facerec train`` does, so that ``forget``, ``eval`` and ``bench`` work on it. A ``ViT_face``
checkpoint holds its CosFace head: its rows are the people of ``DIR`` in sorted folder order (the
class order of torchvision's ``ImageFolder``, which the authors' training uses), and the held-out
top-1 checks that the rows line up with the folders. An arcface_torch backbone has no head: each
person's row is imprinted from the mean embedding of their training crops (Qi et al., CVPR 2018).
The data is split into train/test as by ``train`` and the replay buffer filled from the train part.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from facerec.core.errors import FaceRecError


def import_checkpoint(checkpoint: str | os.PathLike, workspace: str | os.PathLike, data_dir: str | os.PathLike, *,
                      test_per_identity: int = 2, seed: int = 0, lora_alpha: float = 1.0,
                      replay_shots: int | None = None, heads: int | None = None, device: str | None = None) -> dict:
    """Convert ``checkpoint`` and save it as the model of a new workspace over ``data_dir``."""
    from facerec.training.run import data_record, save_replay, split_folder
    from facerec.data.folder import load_face_folder
    from facerec.core.device import resolve_device
    from facerec.models.vit_face import read_checkpoint
    from facerec.workspace.replay import DEFAULT_SHOTS
    from facerec.training.trainer import top1_accuracy
    from facerec.workspace.workspace import Workspace

    t_start = time.perf_counter()
    model, name, layout = _convert(read_checkpoint(checkpoint), lora_alpha, heads)  # checked before data is read
    ws = Workspace(workspace)
    if ws.exists():
        raise FaceRecError(f"{ws.root} already holds a workspace; import into a new one")
    folder = load_face_folder(data_dir)
    split, (train_x, train_y), (test_x, test_y) = split_folder(folder, test_per_identity, seed)
    dev = resolve_device(device)
    model.to(dev)
    if layout == "vit_face" and len(folder.identities) != model.num_classes:
        raise FaceRecError(f"the checkpoint's head has {model.num_classes} rows but {data_dir} has "
                           f"{len(folder.identities)} people: pass the folder the model was trained on")
    if layout != "vit_face":
        imprint_head(model, len(folder.identities), train_x, train_y, dev)
    top1 = top1_accuracy(model, test_x, test_y, dev)
    training = {"imported_from": str(Path(checkpoint).resolve()), "format": _FORMATS[layout],
                "initialised_from": "imported", "top1": top1, "device": str(dev)}
    version = ws.save(model.cpu(), model_name=name, identities=folder.identities, split=split,
                      data=data_record(data_dir, folder), training=training)
    replay = save_replay(ws, train_x, train_y, folder.identities,
                         shots=DEFAULT_SHOTS if replay_shots is None else replay_shots, seed=seed)
    return {"workspace": str(ws.root), "model": name, "format": _FORMATS[layout], "model_version": version,
            "identities": len(folder.identities), "images": int(len(folder.paths)), "test_images": int(len(test_x)),
            "top1": top1, "replay_images": replay["images"], "seconds": round(time.perf_counter() - t_start, 2)}


_FORMATS = {"vit_face": "vit_face (GS-LoRA / Face Transformer)",
            "arcface_vit": "arcface_torch ViT (LVFace / TransFace layout; head imprinted)"}


def _convert(state: dict, lora_alpha: float, heads: int | None):
    """``(model, model name, layout)`` of a state dict in either layout."""
    from facerec.models.arcface_vit import HEADS, convert_arcface_vit, is_arcface_vit
    from facerec.models.vit_face import MODEL_NAME, convert_vit_face

    if is_arcface_vit(state):
        model, name = convert_arcface_vit(state, heads=heads or HEADS)
        return model, name, "arcface_vit"
    if heads is not None:
        raise FaceRecError("--heads is for arcface_torch ViTs; a ViT_face checkpoint has 8 heads of 64")
    return convert_vit_face(state, lora_alpha=lora_alpha), MODEL_NAME, "vit_face"


def imprint_head(model, classes: int, images, labels, device) -> None:
    """A new identity head for ``classes`` people, imprinted from ``images``
    (:func:`facerec.training.run.imprinted_rows`)."""
    import torch

    from facerec.models.heads import CosineHead
    from facerec.training.run import imprinted_rows

    rows = imprinted_rows(model, classes, images, labels, device)
    model.head = CosineHead(rows.shape[1], classes).to(device)
    model.num_classes = classes
    with torch.no_grad():
        model.head.weight.copy_(rows)
