"""A workspace from someone else's trained face model: the GS-LoRA authors' Face Transformer.

``facerec import-checkpoint CKPT --data DIR -w WS`` converts a ``ViT_face`` state dict
(:mod:`facerec.models.vit_face`) and writes a workspace like ``facerec train`` does, so that
``forget``, ``eval`` and ``bench`` work on it: the head's rows are the people of ``DIR`` in sorted
folder order (the class order of torchvision's ``ImageFolder``, which the authors' training uses),
the data is split into train/test as by ``train``, the replay buffer is filled from the train
part, and the held-out top-1 is measured as a check that the rows line up with the folders.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from facerec.core.errors import FaceRecError


def import_vit_face(checkpoint: str | os.PathLike, workspace: str | os.PathLike, data_dir: str | os.PathLike, *,
                    test_per_identity: int = 2, seed: int = 0, lora_alpha: float = 1.0, replay_shots: int | None = None,
                    device: str | None = None) -> dict:
    """Convert ``checkpoint`` and save it as the model of a new workspace over ``data_dir``."""
    from facerec.training.run import data_record, save_replay, split_folder
    from facerec.data.folder import load_face_folder
    from facerec.core.device import resolve_device
    from facerec.models.vit_face import MODEL_NAME, convert_vit_face, read_checkpoint
    from facerec.workspace.replay import DEFAULT_SHOTS
    from facerec.training.trainer import top1_accuracy
    from facerec.workspace.workspace import Workspace

    t_start = time.perf_counter()
    model = convert_vit_face(read_checkpoint(checkpoint), lora_alpha=lora_alpha)  # checked before data is read
    ws = Workspace(workspace)
    if ws.exists():
        raise FaceRecError(f"{ws.root} already holds a workspace; import into a new one")
    folder = load_face_folder(data_dir)
    if len(folder.identities) != model.num_classes:
        raise FaceRecError(f"the checkpoint's head has {model.num_classes} rows but {data_dir} has "
                           f"{len(folder.identities)} people: pass the folder the model was trained on")
    split, (train_x, train_y), (test_x, test_y) = split_folder(folder, test_per_identity, seed)
    dev = resolve_device(device)
    top1 = top1_accuracy(model.to(dev), test_x, test_y, dev)
    data_info = data_record(data_dir, folder)
    training = {"imported_from": str(Path(checkpoint).resolve()), "format": "vit_face (GS-LoRA / Face Transformer)",
                "initialised_from": "imported", "top1": top1, "device": str(dev)}
    version = ws.save(model.cpu(), model_name=MODEL_NAME, identities=folder.identities, split=split,
                      data=data_info, training=training)
    replay = save_replay(ws, train_x, train_y, folder.identities,
                         shots=DEFAULT_SHOTS if replay_shots is None else replay_shots, seed=seed)
    return {"workspace": str(ws.root), "model": MODEL_NAME, "model_version": version,
            "identities": len(folder.identities), "images": int(len(folder.paths)), "test_images": int(len(test_x)),
            "top1": top1, "replay_images": replay["images"], "seconds": round(time.perf_counter() - t_start, 2)}
