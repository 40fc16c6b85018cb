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
"""

from __future__ import annotations

import hashlib
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

FORMAT_VERSION = 1
JPEG_QUALITY = 95


@dataclass
class CropStore:
    """Decoded crops of a store: ``images[i]`` is the aligned RGB crop of ``paths[i]``."""

    paths: list[str]  # "person/file", relative to the dataset root
    images: np.ndarray  # (N, 112, 112, 3) uint8 RGB
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
    paths, encoded, face, skipped = [], [], [], list(rejected)
    for rel, crop, found in align_files(root, [f for files in listing.values() for f in files], detect, skipped):
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        paths.append(rel)
        encoded.append(jpeg.tobytes())
        face.append(found)
        if progress:
            progress(1)
    return write_crop_store(out, paths, encoded, face, {"root": str(root), "detector": detector,
                                                         "jpeg_quality": JPEG_QUALITY, "skipped": skipped})


def write_crop_store(out: Path, paths: list[str], encoded: list[bytes], face: list[bool], info: dict) -> dict:
    """Write JPEG-encoded crops as a store (``crops.rec``/``.idx`` and the sidecar with ``info``)."""
    from ..data.insightface_formats import write_records

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_records(out / "crops.rec", encoded, list(range(len(encoded))))
    meta = {"format_version": FORMAT_VERSION, **info, "count": len(paths), "faces_detected": int(sum(face)),
            "rec_sha256": hashlib.sha256((out / "crops.rec").read_bytes()).hexdigest(),
            "paths": list(paths), "face": [bool(f) for f in face]}
    atomic_write_json(out / "crops.json", meta)
    return meta


def load_crop_store(path: str | Path) -> CropStore:
    """Decode a store written by :func:`build_crop_store` (checks its version and the ``.rec`` hash)."""
    from ..data.insightface_formats import RecordFile, decode_rgb

    path = Path(path)
    try:
        meta = json.loads((path / "crops.json").read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: not a crop store ({err})") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise DataError(f"{path}: crop store format {meta.get('format_version')!r}, expected {FORMAT_VERSION}")
    data = (path / "crops.rec").read_bytes()
    if hashlib.sha256(data).hexdigest() != meta["rec_sha256"]:
        raise DataError(f"{path}/crops.rec does not match its checksum in crops.json; rebuild the store")
    records = RecordFile(path / "crops.rec")
    keys = records.image_keys()
    if len(keys) != meta["count"]:
        raise DataError(f"{path}: {len(keys)} records, crops.json lists {meta['count']}")
    images = np.stack([decode_rgb(records.read(k).payload, name=f"record {k}") for k in keys])
    return CropStore(list(meta["paths"]), images, np.array(meta["face"], bool), meta)

