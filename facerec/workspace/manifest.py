"""The schema of ``workspace.json``, checked on every read: a damaged or hand-edited manifest is
reported as one line naming the field, never a KeyError deep inside a command.

Only structure and ranges are checked here; that the weights file matches ``model`` (its tensors'
names and shapes, then its content hash) is checked when the model is loaded.
"""

from __future__ import annotations

import math
import re

from facerec.core.errors import WorkspaceError
from facerec.models.config import FaceViTConfig
from facerec.workspace.galleries import gallery_record_problem

_WEIGHTS = re.compile(r"models/[0-9a-f]{16}\.safetensors", re.ASCII)  # content-addressed, inside the workspace
_VERSION = re.compile(r"[0-9a-f]{16}", re.ASCII)
MAX_CLASSES = 10_000_000


def _int(value, low: int, high: int) -> bool:
    return type(value) is int and low <= value <= high


def _number(value, low: float, high: float) -> bool:
    return type(value) in (int, float) and math.isfinite(value) and low <= value <= high


def _strings(value, allow_none: bool = False) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) or (allow_none and v is None) for v in value)


def _check_model(model) -> str | None:
    if not isinstance(model, dict):
        return "model: expected an object"
    if not isinstance(model.get("name"), str):
        return "model.name: expected a model name"
    if not isinstance(model.get("config"), dict):
        return "model.config: expected an object"
    try:  # sizes first: a config asking for a million blocks is refused before anything is built
        FaceViTConfig.from_dict(model["config"])
    except (TypeError, ValueError) as err:
        return f"model.config: {' '.join(str(err).split())[:300]}"
    if not _int(model.get("num_classes"), 1, MAX_CLASSES):
        return f"model.num_classes: expected a whole number from 1 to {MAX_CLASSES:,}"
    if not isinstance(model.get("weights"), str) or not _WEIGHTS.fullmatch(model["weights"]):
        return "model.weights: expected models/<16 hex digits>.safetensors"
    if not isinstance(model.get("version"), str) or not _VERSION.fullmatch(model["version"]):
        return "model.version: expected 16 hex digits"
    if "open_set" in model and not (isinstance(model["open_set"], dict)
                                    and _number(model["open_set"].get("threshold"), -2.0, 2.0)):
        return "model.open_set: expected an object with a threshold between -2 and 2"
    return None


def _check_split(split) -> str | None:
    if not isinstance(split, dict):
        return "split: expected an object"
    for key in ("seed", "test_per_identity"):
        if not _int(split.get(key), -(2 ** 63), 2 ** 63 - 1):
            return f"split.{key}: expected a whole number"
    for part in ("train", "test"):
        files = split.get(part)
        if not isinstance(files, dict) or not all(_strings(v) for v in files.values()):
            return f"split.{part}: expected an object of person -> list of file paths"
    return None


def _check_erasure(record) -> str | None:
    if not isinstance(record, dict):
        return "erasure: expected an object"
    forgotten = record.get("forgotten", [])
    if not isinstance(forgotten, list) or not all(
            isinstance(e, dict) and isinstance(e.get("hash"), str)
            and (e.get("row") is None or _int(e.get("row"), 0, MAX_CLASSES)) for e in forgotten):
        return "erasure.forgotten: expected a list of {hash, row, request}"
    if not isinstance(record.get("ledger", []), list) or not all(isinstance(e, dict) for e in record.get("ledger", [])):
        return "erasure.ledger: expected a list of request records"
    if "pending" in record and not isinstance(record["pending"], str):
        return "erasure.pending: expected a request id"
    if "pending_seal" in record and not isinstance(record["pending_seal"], str):
        return "erasure.pending_seal: expected text"
    return None


def manifest_problem(data, format_version: int) -> str | None:
    """The first thing wrong with a parsed manifest (``"field: what was expected"``), or None."""
    if not isinstance(data, dict):
        return "expected a JSON object"
    if not _int(data.get("format_version"), 1, 1 << 30):
        return "format_version: expected a whole number"
    if data["format_version"] > format_version:
        return None  # a newer format: the caller reports that instead
    problem = _check_model(data.get("model"))
    if problem:
        return problem
    if not _strings(data.get("identities"), allow_none=True) or len(data["identities"]) != data["model"]["num_classes"]:
        return "identities: expected one name (or null) per head row, model.num_classes in all"
    problem = _check_split(data.get("split"))
    if problem:
        return problem
    for key in ("data", "training", "recognition"):
        if key in data and not isinstance(data[key], dict):
            return f"{key}: expected an object"
    threshold = data.get("recognition", {}).get("threshold", 0.0)
    if not _number(threshold, -2.0, 2.0):  # a cosine; a threshold just above 1 accepts no one
        return "recognition.threshold: expected a number between -2 and 2"
    if "gallery" in data and (problem := gallery_record_problem(data["gallery"])):
        return problem
    if "erasure" in data:
        return _check_erasure(data["erasure"])
    return None


def check_manifest(data, path, format_version: int) -> dict:
    problem = manifest_problem(data, format_version)
    if problem:
        raise WorkspaceError(f"{path} is invalid: {problem}")
    return data
