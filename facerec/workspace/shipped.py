"""A workspace whose model is the shipped one: its manifest, and a new workspace seeded with it."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from facerec import __version__, pretrained
from facerec.core.atomic import atomic_write_json, atomic_write_with
from facerec.workspace.workspace import FORMAT_VERSION, MANIFEST, Workspace, onnx_copies_wanted


def shipped_manifest() -> dict:
    """A workspace manifest whose model is the shipped one (weights at ``models/<version>``)."""
    info = pretrained.record()
    return {
        "format_version": FORMAT_VERSION,
        "facerec_version": __version__,
        "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": {"name": info["name"], "config": info["config"], "num_classes": info["num_classes"],
                  "weights": f"models/{info['version']}.safetensors", "version": info["version"],
                  **({"open_set": info["open_set"]} if "open_set" in info else {})},
        "identities": list(info["identities"]),
        "data": {"source": "shipped model", **info.get("data", {})},
        "training": {"shipped": True, "recipe": info.get("recipe", {}),
                     "excluded_people": info.get("excluded_people", [])},
        "split": info["split"],
    }


def seed_workspace(root: str | Path) -> dict:
    """Make ``root`` a workspace whose model is the shipped one (weights copied, manifest written)."""
    root = Path(root)
    data = shipped_manifest()
    weights = root / data["model"]["weights"]
    weights.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_with(weights, lambda tmp: shutil.copyfile(pretrained.WEIGHTS, tmp))
    atomic_write_json(root / MANIFEST, data)
    if onnx_copies_wanted():  # checked first: it spares loading the model to export it
        Workspace(root).write_onnx_copy(pretrained.load_model("cpu"), data["model"]["version"], data["model"]["name"])
    return data
