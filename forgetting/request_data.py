"""Where a forget request's images come from: the data root, stored crops, the replay buffer.

The forget set of a person is everything the workspace holds of them: their training images
under the recorded data root (when it is still there), their enrolled crops, their replay crops
(``facerec.workspace.replay``) and the ``--images`` of the request. The replay set is, per retained person,
a seeded fraction or ``shots`` of their training images from the data root, or their replay
crops when the data root is gone. Held-out images (for the accuracy report) exist only under the
data root; without it the request still forgets, and reports accuracies as n/a.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facerec.data.folder import list_identity_files, read_dataset_image, read_image
from facerec.data.split import make_split
from facerec.core.errors import DataError
from facerec.workspace.erasure import erasure_key, forgotten_rows, name_hash
from facerec.workspace.layout import real_files
from facerec.workspace.replay import read_replay

from .gslora import Data


def rows_of(images: list[np.ndarray], label: int) -> Data:
    return Data(np.stack(images) if images else np.zeros((0, 112, 112, 3), np.uint8),
                np.full(len(images), label, dtype=np.int64))


def join(parts: list[Data]) -> Data:
    parts = [p for p in parts if len(p)]
    if not parts:
        return Data(np.zeros((0, 112, 112, 3), np.uint8), np.zeros(0, np.int64))
    return Data(np.concatenate([p.images for p in parts]), np.concatenate([p.labels for p in parts]))


def read_all(root: Path | None, rel_paths: list[str]) -> list[np.ndarray]:
    """The dataset images that can still be read (none without a data root)."""
    if root is None:
        return []
    out = []
    for rel in rel_paths:
        try:
            out.append(read_dataset_image(root, rel))
        except DataError:
            continue  # a dataset file that has gone away since training: use the others
    return out


def people_images(root: Path | None, files: dict[str, list[str]], rows: dict[str, int], people: list[str]) -> Data:
    """The readable images ``files[person]`` of ``people`` under ``root``, labelled with their head rows."""
    return join([rows_of(read_all(root, files.get(p, [])), rows[p]) for p in people])


def replay_files(files: list[str], person: str, *, fraction: float, shots: int | None, seed: int) -> list[str]:
    """A seeded subset of one retained person's training files: ``shots`` of them, or ``fraction``."""
    k = shots if shots is not None else max(1, round(fraction * len(files)))
    rng = np.random.default_rng([seed, zlib.crc32(person.encode("utf-8"))])
    return sorted(rng.choice(files, min(k, len(files)), replace=False).tolist()) if files else []


@dataclass
class RequestData:
    forget: Data  # what is unlearnt
    replay: Data  # what is retained
    forget_test: Data  # held-out images of the people of this request
    retain_test: Data  # held-out images of everyone retained
    old_test: Data  # held-out images of people forgotten by earlier requests
    source: str  # "data root" or "workspace" (crops and replay buffer only)


def stored_crops(ws_root: Path, person: str) -> list[np.ndarray]:
    return [read_image(c) for c in real_files(ws_root / "crops" / person) if c.suffix == ".png"]


def gather(ws_root: Path, manifest: dict, split, rows: dict[str, int], people: list[str], data_root: Path | None, *,
           extra: list[np.ndarray], replay_fraction: float, shots: int | None, seed: int) -> RequestData:
    """The request's images (see the module docstring); ``extra`` are the ``--images`` crops of
    ``people[0]``."""
    forget = [rows_of(read_all(data_root, split.train.get(p, [])) + stored_crops(ws_root, p)
                      + (read_replay(ws_root, p) if data_root is None else []), rows[p]) for p in people]
    if extra:
        forget.append(rows_of(extra, rows[people[0]]))
    retained = [p for p in rows if p not in people]
    if data_root is not None:
        replay = [rows_of(read_all(data_root, replay_files(split.train.get(p, []), p, fraction=replay_fraction,
                                                           shots=shots, seed=seed)), rows[p]) for p in retained]
    else:
        replay = [rows_of(read_replay(ws_root, p, limit=shots), rows[p]) for p in retained]
    return RequestData(
        forget=join(forget), replay=join(replay),
        forget_test=people_images(data_root, split.test, rows, people),
        retain_test=people_images(data_root, split.test, rows, retained),
        old_test=earlier_forgotten_test_set(ws_root, manifest, data_root),
        source="data root" if data_root is not None else "workspace")


def earlier_forgotten_test_set(ws_root: Path, manifest: dict, data_root: Path | None) -> Data:
    """Held-out images of people forgotten by earlier requests, found in the data root by keyed hash."""
    from facerec.workspace.workspace import Workspace

    rows = forgotten_rows(manifest)
    key = erasure_key(Workspace(ws_root))
    if not rows or key is None or data_root is None:
        return join([])
    split_info, data_info = manifest["split"], manifest.get("data", {})
    unreadable = set(data_info.get("skipped_unreadable") or [])
    try:
        listing = list_identity_files(data_root)
    except DataError:
        return join([])
    parts = []
    for person, files in listing.items():
        row = rows.get(name_hash(key, person))
        files = [f for f in files if f not in unreadable][:data_info.get("max_images") or None]  # as trained
        if row is None or len(files) <= split_info["test_per_identity"]:
            continue
        test = make_split({person: files}, split_info["test_per_identity"], split_info["seed"]).test[person]
        parts.append(rows_of(read_all(data_root, test), row))
    return join(parts)
