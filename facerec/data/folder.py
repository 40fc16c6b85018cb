"""Folder-per-identity face datasets: ``ROOT/<person>/<image>``, any of PGM, JPEG, PNG, BMP, TIFF, WebP.

Images are decoded once into memory as 112x112 RGB uint8 (grey images are replicated to three
channels), which suits the CPU-sized datasets this tool trains on (ORL: 400 images; an LFW
subset: a few thousand). Files that are not images by their extension are ignored; files with an
image extension that fail to decode are *skipped and counted* (``FaceFolder.skipped``), so one
corrupt JPEG does not stop a run but is never silently hidden.
"""

from __future__ import annotations

import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from facerec.core.errors import DataError
from facerec.core.names import name_problem
from .images import read_image_file

IMAGE_EXTENSIONS = frozenset({".pgm", ".ppm", ".pbm", ".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})


def png_bytes(rgb: np.ndarray, note: str | None = None) -> bytes:
    """An RGB uint8 image ``(H, W, 3)`` encoded as PNG: how crops are stored (read back by :func:`read_image`).

    ``note``: ASCII text kept in a ``tEXt`` chunk (keyword ``facerec``) after the header, which
    decoders skip: an enrolled crop carries the nonce of the command that wrote it, so its bytes
    tell it apart from the same face written by another command (:mod:`facerec.workspace.journal`)."""
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError("could not encode a PNG")
    data = png.tobytes()
    if note is None:
        return data
    text = b"facerec\0" + note.encode("ascii")
    chunk = struct.pack(">I", len(text)) + b"tEXt" + text + struct.pack(">I", zlib.crc32(b"tEXt" + text))
    end_of_header = 8 + 4 + 4 + 13 + 4  # signature, then the IHDR chunk: length, type, 13 bytes, CRC
    return data[:end_of_header] + chunk + data[end_of_header:]


def read_image(path: str | os.PathLike, size: int | None = 112) -> np.ndarray:
    """Decode an image file as RGB uint8 ``(H, W, 3)``, resized to ``size x size`` if given.

    The file is read under :mod:`facerec.data.images`' limits (regular files only, size checked
    from the header before decoding).

    Raises:
        DataError: the file is missing, too large or not a decodable image.
    """
    image = cv2.cvtColor(read_image_file(path)[0], cv2.COLOR_BGR2RGB)
    if size is not None and image.shape[:2] != (size, size):
        shrinking = image.shape[0] > size or image.shape[1] > size
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return image


@dataclass
class FaceFolder:
    """The decoded images of a folder dataset, after filtering."""

    root: Path
    identities: list[str]  # sorted; a label is an index into this list
    paths: list[str]  # relative to root, "person/file"
    labels: np.ndarray  # (N,) int64
    images: np.ndarray  # (N, size, size, 3) uint8 RGB
    skipped: list[str] = field(default_factory=list)  # unreadable files (relative) and unusable folder names
    dropped_identities: list[str] = field(default_factory=list)  # filtered out by min_images

    def files_by_identity(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {name: [] for name in self.identities}
        for path, label in zip(self.paths, self.labels):
            out[self.identities[label]].append(path)
        return out

    def select(self, paths: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Images and labels of the given relative paths, in that order."""
        index = {p: i for i, p in enumerate(self.paths)}
        rows = np.array([index[p] for p in paths], dtype=np.int64)
        return self.images[rows], self.labels[rows]


def is_record_file(root: str | os.PathLike) -> bool:
    """An MXNet RecordIO dataset (``train.rec`` beside ``train.idx``) instead of a folder tree."""
    return Path(root).suffix == ".rec"


@lru_cache(maxsize=4)
def record_file(path: str):
    """The ``RecordFile`` of ``path``, parsed once per process (the listing and the reads share it)."""
    from .insightface_formats import RecordFile

    return RecordFile(path)


def read_dataset_image(root: str | os.PathLike, rel: str, size: int | None = 112) -> np.ndarray:
    """One image of a dataset by its relative path: ``person/file`` in a folder tree, or
    ``person/key`` in a ``.rec`` file."""
    if is_record_file(root):
        from .insightface_formats import decode_rgb

        key = int(rel.rsplit("/", 1)[1])
        image = decode_rgb(record_file(str(root)).read(key).payload, 112, f"{root}, record {key}", exact=True)
        return image if size in (None, 112) else cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return read_image(Path(root) / rel, size)


def list_identity_files(root: str | os.PathLike, rejected: list[str] | None = None) -> dict[str, list[str]]:
    """``{person: [relative image paths]}`` for every subfolder of ``root``, sorted.

    Subfolders whose names are not valid person names (:mod:`facerec.core.names`) are left out and,
    when ``rejected`` is given, listed there.

    A ``.rec`` file is listed by its labels: person ``id<label>`` with paths ``id<label>/<key>``.

    Raises:
        DataError: ``root`` is missing, not a directory, or holds no image in any subfolder.
    """
    if is_record_file(root):
        records = record_file(str(root))
        found: dict[str, list[str]] = {}
        keys = records.image_keys()
        _check_crop_size(root, records, keys)
        for key, label in zip(keys, records.labels(keys, unreadable=-1)):
            if label < 0:
                if rejected is not None:
                    rejected.append(f"record {key} (truncated or damaged)")
                continue
            person = f"id{label:05d}"
            found.setdefault(person, []).append(f"{person}/{key}")
        if not found:
            raise DataError(f"{root} holds no image records")
        return dict(sorted(found.items()))
    root = Path(root)
    if not root.exists():
        raise DataError(f"dataset folder {root} does not exist")
    if not root.is_dir():
        raise DataError(f"{root} is not a directory (expected one subfolder per person)")
    found: dict[str, list[str]] = {}
    for person in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        problem = name_problem(person.name)
        if problem:  # it could not be enrolled, printed or forgotten by that name
            if rejected is not None:
                rejected.append(f"{person.name}/ (not usable as a name: {problem})")
            continue
        files = sorted(
            f"{person.name}/{f.name}" for f in person.iterdir()
            if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS
        )
        if files:
            found[person.name] = files
    if not found:
        raise DataError(f"{root} holds no images: expected one subfolder per person with image files in it")
    return found


def _check_crop_size(root, records, keys) -> None:
    """A record file of crops other than 112x112 (not insightface's aligned layout) is refused
    whole, from its first readable image records; one odd record later is skipped where read."""
    from .images import decode_image
    from .insightface_formats import MAX_CROP_PIXELS

    for key in keys[:3]:
        try:
            image = decode_image(records.read(key).payload, f"record {key}", MAX_CROP_PIXELS, None)
        except DataError:
            continue  # damaged: skipped where read
        if image.shape[:2] != (112, 112):
            raise DataError(f"{root}: record {key} is {image.shape[1]}x{image.shape[0]}, not a 112x112 aligned crop")


def read_folder_images(root: str | os.PathLike, what: str = "folder") -> list[np.ndarray]:
    """Every image of a folder-per-person dataset (or record file), as aligned crops, in listing
    order: e.g. the bench's strangers. ``what`` names the folder in the error when it holds none."""
    photos = [read_dataset_image(root, rel) for files in list_identity_files(root).values() for rel in files]
    if not photos:
        raise DataError(f"{what} {root}: no images in person subfolders")
    return photos


def check_limits(min_images: int | None, max_images: int | None) -> None:
    if min_images is not None and min_images < 1:
        raise DataError(f"--min-images must be >= 1, got {min_images}")
    if max_images is not None and max_images < 1:
        raise DataError(f"--max-images must be >= 1, got {max_images}")
    if min_images and max_images and max_images < min_images:
        raise DataError(f"--max-images ({max_images}) is smaller than --min-images ({min_images})")


def load_face_folder(
    root: str | os.PathLike,
    *,
    min_images: int | None = None,
    max_images: int | None = None,
    size: int = 112,
    workers: int = 4,
) -> FaceFolder:
    """Scan, decode and filter a folder-per-identity dataset.

    Args:
        root: the dataset folder, one subfolder per person.
        min_images: drop people with fewer readable images than this (LFW has 4,069 people with one).
        max_images: keep at most this many images per person (the first in sorted order), so one
            person with 530 photos does not dominate.
        size: side of the square images kept in memory.
        workers: decoding threads (OpenCV releases the GIL while decoding).
    """
    check_limits(min_images, max_images)
    root = Path(root)
    rejected: list[str] = []
    listing = list_identity_files(root, rejected)
    flat = [path for files in listing.values() for path in files]

    def decode(rel: str) -> np.ndarray | None:
        try:
            return read_dataset_image(root, rel, size)
        except DataError:
            return None

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        decoded = dict(zip(flat, pool.map(decode, flat)))
    skipped = rejected + [rel for rel, image in decoded.items() if image is None]

    identities, paths, labels, dropped = [], [], [], []
    for person, files in listing.items():
        readable = [f for f in files if decoded[f] is not None]
        if max_images is not None:
            readable = readable[:max_images]
        if not readable or (min_images is not None and len(readable) < min_images):
            dropped.append(person)
            continue
        label = len(identities)
        identities.append(person)
        paths.extend(readable)
        labels.extend([label] * len(readable))
    if not identities:
        raise DataError(
            f"no person in {root} has enough readable images"
            + (f" (--min-images {min_images})" if min_images else "")
        )
    images = np.stack([decoded[p] for p in paths])  # (N, size, size, 3)
    return FaceFolder(root, identities, paths, np.asarray(labels, dtype=np.int64), images, skipped, dropped)
