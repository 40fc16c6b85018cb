"""A workspace's replay buffer: a few training crops per person, so forgetting needs no dataset.

A forget request unlearns from the forgotten people's images and replays the retained people's
(GS-LoRA's retention term). Both usually come from the training data root, which a deployment
may no longer have, or may not be allowed to keep. GS-LoRA++ (Zhao et al., 2025) forgets with a
few replay images per retained person (4-shot), so training keeps ``shots`` of each person's
training crops (seeded; exactly what the model was fed, 112x112 RGB, lossless PNG):

    WORKSPACE/replay/<person>/<sha256[:16]>.png

A forget then takes its forget set from the person's replay crops, enrolled crops and
``--images``, and its replay from everyone else's buffer. The buffer is personal data like the
crops: a forget deletes the person's folder (``erasure.purge_people``). The buffer is written in
a staging folder and renamed into place, so a reader sees the old buffer or the new one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from facerec.data.folder import png_bytes, read_image
from facerec.core.errors import DataError
from facerec.workspace.layout import real_files, rename_inside, rmtree_inside

FORMAT_VERSION = 1
FOLDER = "replay"
DEFAULT_SHOTS = 4


def choose_shots(labels: np.ndarray, shots: int, seed: int) -> np.ndarray:
    """Indices of up to ``shots`` images per label (seeded, sorted)."""
    rng = np.random.default_rng([seed, 7])
    order = np.argsort(labels, kind="stable")  # each label's indices in increasing order, labels in order
    cuts = np.flatnonzero(np.diff(labels[order])) + 1
    picked = [rng.permutation(rows)[:shots] for rows in np.split(order, cuts)] if len(labels) else []
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, np.int64)


def write_replay(root: Path, images: np.ndarray, labels: np.ndarray, identities: list[str | None], *,
                 shots: int, seed: int) -> dict:
    """Replace ``root/replay`` by ``shots`` crops per person of ``images`` (N, 112, 112, 3) RGB with
    head-row ``labels``; returns the manifest record."""
    live, staging = root / FOLDER, root / f"{FOLDER}.staging"
    rmtree_inside(root, staging)
    count = 0
    for i in choose_shots(labels, shots, seed) if shots > 0 else []:
        person = identities[labels[i]]
        if person is None:
            continue
        folder = staging / person
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{hashlib.sha256(images[i].tobytes()).hexdigest()[:16]}.png").write_bytes(png_bytes(images[i]))
        count += 1
    old = root / f"{FOLDER}.old"
    rmtree_inside(root, old)
    if live.exists():
        rename_inside(root, live, old)
    if staging.exists():
        rename_inside(root, staging, live)
    rmtree_inside(root, old)
    return {"format_version": FORMAT_VERSION, "shots": shots, "seed": seed, "images": count}


def read_replay(root: Path, person: str, limit: int | None = None) -> list[np.ndarray]:
    """The person's replay crops (at most ``limit``); none when the person has no buffer."""
    files = [f for f in real_files(root / FOLDER / person) if f.suffix == ".png"][:limit]  # never through a link
    out = []
    for f in files:
        try:
            out.append(read_image(f))
        except DataError:
            continue  # a damaged crop: use the others
    return out
