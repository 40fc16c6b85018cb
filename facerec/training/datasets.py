"""The data a training run reads: listed, split, and either decoded into memory or streamed.

Sets up to ``data.streaming.STREAM_FROM`` images are decoded once into memory, as they always
were (unreadable files found and counted before training); larger sets, or any set when asked,
are streamed: only the index is in memory and every sample is decoded when it is drawn
(``data.streaming``). Both give the run the same sample sources (``[i] -> (crop, label)``,
``decode(rows)``), so training, the head's imprinting, the held-out top-1 and the replay buffer
read them one way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from facerec.data.folder import FaceFolder, list_identity_files, load_face_folder
from facerec.data.split import Split, make_split
from facerec.data.streaming import FaceListing, list_face_folder, should_stream
from facerec.data.transforms import ArrayFaces
from facerec.workspace.replay import choose_shots

IMPRINT_SHOTS = 16  # a streamed set imprints each person's head row from this many crops at most
TRAIN_TOP1_SAMPLE = 5_000  # a streamed set's training top-1 is measured on this many crops at most


@dataclass
class TrainingData:
    folder: FaceFolder | FaceListing
    split: Split
    train: ArrayFaces | object  # a sample source: ArrayFaces or streaming.StreamedFaces
    test: ArrayFaces | object
    streamed: bool
    unreadable: set[str] = field(default_factory=set)  # found while decoding (streamed sets)

    @property
    def identities(self) -> list[str]:
        return self.folder.identities

    def rows(self, part: str, per_person: int | None, seed: int) -> np.ndarray:
        """All rows of ``part``, or up to ``per_person`` of each person's (seeded)."""
        source = getattr(self, part)
        return np.arange(len(source)) if per_person is None else choose_shots(source.labels, per_person, seed)

    def decode(self, part: str, rows) -> tuple[np.ndarray, np.ndarray]:
        images, labels, bad = getattr(self, part).decode(rows)
        self.unreadable.update(bad)
        return images, labels

    def imprint_sample(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """The crops a new head row is imprinted from: all of them in memory, a few streamed."""
        return self.decode("train", self.rows("train", IMPRINT_SHOTS if self.streamed else None, seed))

    def top1(self, predict, part: str, seed: int = 0, chunk: int = 512) -> float:
        """Top-1 of ``predict(images) -> labels`` on ``part`` (streamed: training crops sampled),
        decoded a chunk at a time; unreadable crops are left out."""
        rows = self.rows(part, None, seed)
        if self.streamed and part == "train" and len(rows) > TRAIN_TOP1_SAMPLE:
            rows = np.sort(np.random.default_rng([seed, 11]).choice(rows, TRAIN_TOP1_SAMPLE, replace=False))
        right = total = 0
        for start in range(0, len(rows), chunk):
            images, labels = self.decode(part, rows[start:start + chunk])
            if len(images):
                right += int((predict(images) == labels).sum())
                total += len(labels)
        return right / total if total else float("nan")

    def skipped(self) -> list[str]:
        return sorted(set(self.folder.skipped) | self.unreadable)


def load_training_data(data_dir: str | os.PathLike, *, min_images: int | None, max_images: int | None,
                       test_per_identity: int, seed: int, stream: bool | None = None) -> TrainingData:
    """List (and, unless streaming, decode) ``data_dir``, then split it (``data.split``)."""
    listed = sum(len(files) for files in list_identity_files(data_dir).values())
    if should_stream(listed, stream):
        listing = list_face_folder(data_dir, min_images=min_images, max_images=max_images)
        split = make_split(listing.files_by_identity(), test_per_identity, seed)
        return TrainingData(listing, split, listing.source(split.paths("train")), listing.source(split.paths("test")),
                            streamed=True)
    folder = load_face_folder(data_dir, min_images=min_images, max_images=max_images)
    split = make_split(folder.files_by_identity(), test_per_identity, seed)
    return TrainingData(folder, split, ArrayFaces(*folder.select(split.paths("train"))),
                        ArrayFaces(*folder.select(split.paths("test"))), streamed=False)
