"""The face model that ships with facerec (``MODEL_CARD.md`` beside this file says what it is).

``face-vit.safetensors`` holds the weights, ``face-vit.json`` their record: config, content hash,
identity head rows, the training split and the people left out of training, the recipe and the
measured numbers. ``tools/train_face_model.py --install`` writes both.

A workspace without a model of its own starts from this one: readers (verify, recognize,
eval) use it in memory; the first writer (enroll, calibrate, forget) copies it into the
workspace (``seed_workspace``), so every later command, forgetting included, works on a normal
workspace whose model happens to be the shipped one.
"""

from __future__ import annotations

import json
import shutil
import time
from functools import lru_cache
from pathlib import Path

import torch

from ..errors import WorkspaceError

PRETRAINED_DIR = Path(__file__).resolve().parent
WEIGHTS = PRETRAINED_DIR / "face-vit.safetensors"
RECORD = PRETRAINED_DIR / "face-vit.json"


def available() -> bool:
    return WEIGHTS.is_file() and RECORD.is_file()


@lru_cache(maxsize=1)
def record() -> dict:
    """The shipped model's record (``face-vit.json``)."""
    if not available():
        raise WorkspaceError(f"this facerec has no shipped model ({WEIGHTS.name} is missing); train one with "
                             f"`facerec train DATA_DIR`")
    return json.loads(RECORD.read_text(encoding="utf-8"))


def model_name() -> str:
    return record()["name"]


def load_model(device: torch.device | str = "cpu"):
    """The shipped model, its content hash checked against the record."""
    from safetensors.torch import load_file

    from ..models import FaceViT, FaceViTConfig
    from ..workspace import weights_version

    info = record()
    state = load_file(WEIGHTS, device="cpu")
    if weights_version(state) != info["version"]:
        raise WorkspaceError(f"{WEIGHTS} does not match the hash in {RECORD.name}: the installation is damaged")
    model = FaceViT(FaceViTConfig.from_dict(info["config"]), info["num_classes"])
    model.load_state_dict(state)
    return model.to(device).eval()


def manifest() -> dict:
    """A workspace manifest whose model is the shipped one (weights at ``models/<version>``)."""
    from .. import __version__
    from ..workspace import FORMAT_VERSION

    info = record()
    return {
        "format_version": FORMAT_VERSION,
        "facerec_version": __version__,
        "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": {"name": info["name"], "config": info["config"], "num_classes": info["num_classes"],
                  "weights": f"models/{info['version']}.safetensors", "version": info["version"]},
        "identities": list(info["identities"]),
        "data": {"source": "shipped model", **info.get("data", {})},
        "training": {"shipped": True, "recipe": info.get("recipe", {}),
                     "excluded_people": info.get("excluded_people", [])},
        "split": info["split"],
    }


def seed_workspace(root: str | Path) -> dict:
    """Make ``root`` a workspace whose model is the shipped one (weights copied, manifest written)."""
    from ..io import atomic_write_json, atomic_write_with
    from ..workspace import MANIFEST

    root = Path(root)
    data = manifest()
    weights = root / data["model"]["weights"]
    weights.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_with(weights, lambda tmp: shutil.copyfile(WEIGHTS, tmp))
    atomic_write_json(root / MANIFEST, data)
    return data
