"""The face model that ships with facerec (``MODEL_CARD.md`` beside this file says what it is).

``face-vit.safetensors`` holds the weights, ``face-vit.json`` their record: config, content hash,
identity head rows, the training split and the people left out of training, the recipe and the
measured numbers. ``tools/train_face_model.py --install`` writes both.

A workspace without a model of its own starts from this one: readers (verify, recognize,
eval) use it in memory; the first writer (enroll, calibrate, forget) copies it into the
workspace (``workspace.shipped.seed_workspace``), so every later command, forgetting included, works on a normal
workspace whose model happens to be the shipped one.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from facerec.core.errors import WorkspaceError

PRETRAINED_DIR = Path(__file__).resolve().parent
WEIGHTS = PRETRAINED_DIR / "face-vit.safetensors"
RECORD = PRETRAINED_DIR / "face-vit.json"
MAX_RECORD_BYTES = 64 * 2 ** 20  # a record names the training people and the split: ~0.7 MB for LFW


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


def read_record(weights: str | Path) -> dict:
    """The record of another model file in the shipped model's format (``NAME.json`` beside
    ``NAME.safetensors``, as ``tools/train_face_model.py`` writes them): a backbone to fine-tune
    from instead of the shipped one (e.g. one that left the benchmark's people out)."""
    weights = Path(weights)
    path = weights.with_suffix(".json")
    if weights.suffix != ".safetensors" or not weights.is_file() or not path.is_file():
        raise WorkspaceError(f"{weights}: not a face model file (a .safetensors with its record {path.name} beside it)")
    if path.stat().st_size > MAX_RECORD_BYTES:
        raise WorkspaceError(f"{path}: {path.stat().st_size} bytes, more than a model record holds "
                             f"({MAX_RECORD_BYTES} at most)")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise WorkspaceError(f"{path}: unreadable model record ({err})") from None
    if not isinstance(info, dict) or not {"name", "version", "config", "num_classes"} <= info.keys():
        raise WorkspaceError(f"{path}: not a face model record (needs name, version, config, num_classes)")
    return info


def _described(weights: str | Path | None) -> tuple[Path, str]:
    """The weights file and how errors name its record."""
    path = WEIGHTS if weights is None else Path(weights)
    return path, f"{path.with_suffix('.json')} ({'the installation is damaged' if weights is None else 'model file'})"


def check_file(weights: str | Path) -> dict:
    """:func:`read_record` of a model file, and its tensors' shapes checked against the record
    (``models.checked.check_model_file``) without reading its weights: a cheap check before anything
    is written; :func:`load_model` reads and hashes the weights."""
    from facerec.models.checked import check_model_file

    info = read_record(weights)
    path, where = _described(weights)
    check_model_file(path, info["config"], info["num_classes"], where)
    return info


def load_model(device="cpu", weights: str | Path | None = None, version: str | None = None):
    """The shipped model (or the model file ``weights``), checked against its record as a
    workspace's model is against its manifest (``models.checked.load_checked_model``); with
    ``version``, the record must still name that version (a fine-tune's starting point)."""
    from facerec.models.checked import load_checked_model

    info = record() if weights is None else read_record(weights)
    if version is not None and info["version"] != version:
        raise WorkspaceError(f"the model to start from is {version}, but {weights or 'the shipped model'} "
                             f"is now {info['version']}")
    path, where = _described(weights)
    return load_checked_model(path, info["config"], info["num_classes"], info["version"], where, device)


def fill_sface_stem(model) -> None:
    """Give a freshly built hybrid model (``stem="sface"``) its frozen SFace stem from the shipped
    model's file, which carries SFace's first K stages; a cut beyond those needs SFace's own file
    (``tools/train_face_model.py``). Other models are left as they are."""
    config = model.config
    if config.stem != "sface":
        return
    shipped = record()["config"] if available() else {}
    if shipped.get("stem") != "sface" or shipped.get("stem_stages", 0) < config.stem_stages:
        raise WorkspaceError(f"{config.stem_stages} SFace stages for the stem, but the shipped model carries "
                             f"{shipped.get('stem_stages', 0) if shipped.get('stem') == 'sface' else 'none'}: "
                             f"build it with tools/train_face_model.py from SFace's model file")
    from safetensors import safe_open

    prefix, keep = "patch_embed.stem.", set(map(str, range(config.stem_stages)))
    with safe_open(WEIGHTS, "pt") as weights:
        state = {k[len(prefix):]: weights.get_tensor(k) for k in weights.keys()
                 if k.startswith(prefix) and k[len(prefix):].split(".", 1)[0] in keep}
    model.patch_embed.stem.load_state_dict(state)
