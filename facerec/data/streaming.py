"""Face datasets listed, not decoded: training at CASIA-WebFace scale in bounded memory.

``load_face_folder`` decodes every image into memory: right for ORL or an LFW subset, not for
CASIA-WebFace (0.49 M crops, ~18 GB decoded) or MS1M (5.8 M). A :class:`FaceListing` holds only
the index (people, relative paths or record keys, labels); :class:`StreamedFaces` decodes sample
i when a DataLoader worker asks for it, so the memory of a run is the index plus the batches in
flight, whatever the dataset's size. A sample that cannot be decoded comes back as ``(None, -1)``:
training leaves it out of the loss and counts it (``TrainResult.unreadable``), evaluation skips it.

Listing does not decode, so ``min_images`` / ``max_images`` count the files (or records) listed,
not the readable ones as ``load_face_folder`` does; an unreadable file is found, skipped and
counted when it is first drawn.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facerec.core.errors import DataError
from .folder import check_limits, list_identity_files, read_dataset_image

STREAM_FROM = 50_000  # images: above this, training streams (~1.9 GB decoded at 112x112)


@dataclass
class FaceListing:
    """A folder-per-person dataset (or ``.rec``) after filtering, nothing decoded."""

    root: Path
    identities: list[str]
    paths: list[str]  # relative: "person/file", or "id<label>/<key>" in a record file
    labels: np.ndarray  # (N,) int64
    skipped: list[str] = field(default_factory=list)  # unusable folder names
    dropped_identities: list[str] = field(default_factory=list)

    def files_by_identity(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {name: [] for name in self.identities}
        for path, label in zip(self.paths, self.labels):
            out[self.identities[label]].append(path)
        return out

    def source(self, paths: list[str]) -> "StreamedFaces":
        """The samples of ``paths`` (in that order), decoded on demand."""
        index = {p: i for i, p in enumerate(self.paths)}
        return StreamedFaces(self.root, list(paths), self.labels[[index[p] for p in paths]])


class StreamedFaces:
    """Samples decoded on demand: ``[i]`` is ``(RGB uint8 crop, label)`` or ``(None, -1)``."""

    def __init__(self, root: str | os.PathLike, paths: list[str], labels: np.ndarray, size: int = 112):
        self.root, self.paths, self.labels, self.size = Path(root), paths, np.asarray(labels, np.int64), size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[np.ndarray | None, int]:
        try:
            return read_dataset_image(self.root, self.paths[i], self.size), int(self.labels[i])
        except DataError:
            return None, -1

    def decode(self, rows) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """``(images, labels, unreadable paths)`` of ``rows``, the readable ones decoded in memory."""
        images, labels, bad = [], [], []
        for i in rows:
            image, label = self[int(i)]
            if image is None:
                bad.append(self.paths[int(i)])
            else:
                images.append(image)
                labels.append(label)
        stacked = np.stack(images) if images else np.zeros((0, self.size, self.size, 3), np.uint8)
        return stacked, np.asarray(labels, np.int64), bad


def list_face_folder(root: str | os.PathLike, *, min_images: int | None = None,
                     max_images: int | None = None) -> FaceListing:
    """Index a folder-per-person dataset or ``.rec`` file, keeping people with at least
    ``min_images`` listed images and at most ``max_images`` each (the first in sorted order)."""
    check_limits(min_images, max_images)
    rejected: list[str] = []
    listing = list_identity_files(root, rejected)
    identities, paths, labels, dropped = [], [], [], []
    for person, files in listing.items():
        files = files[:max_images] if max_images is not None else files
        if min_images is not None and len(files) < min_images:
            dropped.append(person)
            continue
        labels.extend([len(identities)] * len(files))
        identities.append(person)
        paths.extend(files)
    if not identities:
        raise DataError(f"no person in {root} has enough images" + (f" (--min-images {min_images})" if min_images else ""))
    return FaceListing(Path(root), identities, paths, np.asarray(labels, np.int64), rejected, dropped)


def should_stream(images: int, stream: bool | None) -> bool:
    """Stream when asked, or (``stream`` None) when the set has more than ``STREAM_FROM`` images."""
    return images > STREAM_FROM if stream is None else stream
