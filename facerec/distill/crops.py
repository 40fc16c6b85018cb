"""A compact store of aligned face crops: one detection/alignment pass over a folder dataset.

Training a face model reads every image many times; detecting and aligning once and keeping the
112x112 crops (JPEG, quality 95) in an insightface ``.rec``/``.idx`` pair makes each epoch a fast
decode, and makes the data small enough to carry to a GPU machine (LFW: ~13k crops, ~60 MB).
The crop is exactly what the pipeline feeds the model at run time: the face nearest the image
centre (the labelled person of a dataset photo), five-point aligned (YuNet + ArcFace template).

A sidecar JSON (``crops.json``) records the format version, the detector, and per record the
image's relative path and whether a face was found; images without a detected face are stored
as the whole image resized (as ``facerec eval verification`` embeds them) and flagged, so
training can leave them out.

A store of more than ``STREAM_FROM`` crops (or any, when asked) loads *streamed*: its
``images`` are a :class:`StoredCrops`, the record keys only, each crop decoded when it is read
(by a DataLoader worker, or a batch at a time for the teachers and evaluation), so distilling on
CASIA-WebFace's 0.49 M crops holds ~4 MB of keys instead of 18 GB of pixels.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..data.folder import list_identity_files
from facerec.data.aligned import align_files
from ..detect import make_detector
from facerec.core.errors import DataError
from facerec.core.atomic import atomic_write_json
from facerec.data.insightface_formats import RecordFile, decode_rgb, write_records
from facerec.data.streaming import STREAM_FROM

FORMAT_VERSION = 1
JPEG_QUALITY = 95


class StoredCrops:
    """A store's crops decoded on read, indexed like the ``(N, 112, 112, 3)`` array they stand for:
    ``[i]`` is one crop, ``[a:b]`` a decoded batch (an array), ``[rows]`` (indices or a mask) the
    subset, still not decoded. Holds the parsed index and the keys; reads open the file each time,
    so DataLoader workers share nothing."""

    def __init__(self, records: RecordFile, keys: np.ndarray):
        self.records, self.keys = records, np.asarray(keys, np.int64)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.keys), 112, 112, 3)

    def __len__(self) -> int:
        return len(self.keys)

    def _decode(self, key: int) -> np.ndarray:
        return decode_rgb(self.records.read(int(key)).payload, name=f"{self.records.path} record {key}")

    def __getitem__(self, item):
        if isinstance(item, (int, np.integer)):
            return self._decode(self.keys[item])
        if isinstance(item, slice):
            rows = self.keys[item]
            return np.stack([self._decode(k) for k in rows]) if len(rows) else np.zeros((0, 112, 112, 3), np.uint8)
        return StoredCrops(self.records, self.keys[np.asarray(item)])

    def __array__(self, dtype=None, copy=None):  # np.asarray(crops): decode them all, as the old store did
        images = self[:]
        return images if dtype is None else images.astype(dtype)


@dataclass
class CropStore:
    """A store: ``images[i]`` is the aligned RGB crop of ``paths[i]`` (decoded, or :class:`StoredCrops`)."""

    paths: list[str]  # "person/file", relative to the dataset root
    images: np.ndarray | StoredCrops  # (N, 112, 112, 3) uint8 RGB
    face: np.ndarray  # (N,) bool: a face was detected (else the whole image, resized)
    meta: dict

    @property
    def people(self) -> list[str]:
        return [p.split("/", 1)[0] for p in self.paths]

    def index(self) -> dict[str, int]:
        return {p: i for i, p in enumerate(self.paths)}


def build_crop_store(root: str | Path, out: str | Path, detector: str, progress=None) -> dict:
    """Detect, align and store every image of the folder dataset ``root`` under ``out``.

    Writes ``out/crops.rec``, ``out/crops.idx`` and ``out/crops.json``; returns the sidecar.
    Unreadable images are listed in the sidecar and skipped.
    """
    root, out = Path(root), Path(out)
    detect = make_detector(detector)
    rejected: list[str] = []
    listing = list_identity_files(root, rejected)
    paths, face, skipped = [], [], list(rejected)

    def encoded():  # written as they are aligned: no dataset-sized list of JPEGs in memory
        for rel, crop, found in align_files(root, [f for files in listing.values() for f in files], detect, skipped):
            ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            paths.append(rel)
            face.append(found)
            if progress:
                progress(1)
            yield jpeg.tobytes()

    info = {"root": str(root), "detector": detector, "jpeg_quality": JPEG_QUALITY, "skipped": skipped}
    return write_crop_store(out, paths, encoded(), face, info)


def write_crop_store(out: Path, paths: list[str], encoded, face: list[bool], info: dict) -> dict:
    """Write JPEG-encoded crops (any iterable; ``paths`` and ``face`` complete once it is consumed)
    as a store: ``crops.rec``/``.idx`` (no header record: the count is not known until the end)
    and the sidecar with ``info``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_records(out / "crops.rec", encoded, itertools.count(), header=False)
    meta = {"format_version": FORMAT_VERSION, **info, "count": len(paths), "faces_detected": int(sum(face)),
            "rec_sha256": _sha256(out / "crops.rec"),
            "paths": list(paths), "face": [bool(f) for f in face]}
    atomic_write_json(out / "crops.json", meta)
    return meta


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def load_crop_store(path: str | Path, stream: bool | None = None) -> CropStore:
    """Open a store written by :func:`build_crop_store` (checks its version and the ``.rec`` hash);
    its crops are decoded in memory, or left on disk (:class:`StoredCrops`) with ``stream`` or,
    by default, above ``STREAM_FROM`` crops."""
    path = Path(path)
    try:
        meta = json.loads((path / "crops.json").read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: not a crop store ({err})") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise DataError(f"{path}: crop store format {meta.get('format_version')!r}, expected {FORMAT_VERSION}")
    if _sha256(path / "crops.rec") != meta["rec_sha256"]:
        raise DataError(f"{path}/crops.rec does not match its checksum in crops.json; rebuild the store")
    records = RecordFile(path / "crops.rec")
    keys = records.image_keys()
    if len(keys) != meta["count"]:
        raise DataError(f"{path}: {len(keys)} records, crops.json lists {meta['count']}")
    crops = StoredCrops(records, np.array(keys, np.int64))
    stream = len(keys) > STREAM_FROM if stream is None else stream
    images = crops if stream else crops[:]
    return CropStore(list(meta["paths"]), images, np.array(meta["face"], bool), meta)

