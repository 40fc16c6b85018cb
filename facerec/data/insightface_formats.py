"""insightface's dataset formats without MXNet and without unpickling code.

``.bin`` verification sets (lfw.bin, cfp_fp.bin, agedb_30.bin): a pickle of ``(bins, issame)``,
``bins`` the JPEG bytes of ``2 × len(issame)`` images with pairs interleaved. They are read with an
own data-only pickle interpreter (:mod:`.safe_pickle`) that resolves no class beyond numpy's
plain-array reconstruction and caps every size, so a file that tries to run code, or to make the
reader allocate gigabytes, is refused instead.

``.rec`` / ``.idx`` (MXNet RecordIO, e.g. ``faces_webface_112x112``, CASIA-WebFace): ``.idx`` is
text, ``key<TAB>offset`` per line; each ``.rec`` record is ``uint32 magic 0xced7230a``,
``uint32 lrecord`` (length in the low 29 bits, continuation flag in the top 3), the payload,
zero padding to 4 bytes. A payload is an ``IRHeader`` (``<IfQQ``: flag, label, id, id2), then
``flag`` float32 labels when ``flag > 0``, then the image bytes. By insightface's convention a
record 0 with ``flag > 0`` is a header whose labels ``[a, b]`` say images are keys ``1 … a-1``.
"""

from __future__ import annotations

import pickle
from array import array
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facerec.core.errors import DataError
from .images import ImageError, decode_image, read_file_bytes
from .safe_pickle import PickleRefused, loads, resolve

RECORD_MAGIC = 0xCED7230A
MAX_CROP_PIXELS = 4_000_000  # an aligned face crop is 112x112; 4 MP leaves room for any crop size
_IR_HEADER = struct.Struct("<IfQQ")
_IDX_LINE = re.compile(r"([0-9]{1,18})\t([0-9]{1,18})", re.ASCII)
MAX_BIN_BYTES = 384 << 20  # cfp_fp.bin, the largest common set, is ~90 MB
MAX_BIN_PAIRS = 100_000  # lfw.bin has 6,000


def decode_rgb(data: bytes, size: int = 112, name: str = "an image in the set", exact: bool = False) -> np.ndarray:
    """An encoded face crop as RGB uint8 ``(size, size, 3)`` (crops are small: 4 MP at most);
    ``exact``: a crop of another size is an error (an aligned set's crops all have one size)."""
    image = decode_image(bytes(data), name, max_pixels=MAX_CROP_PIXELS, max_side=None)
    if exact and image.shape[:2] != (size, size):
        raise DataError(f"{name} is {image.shape[1]}x{image.shape[0]}, not a {size}x{size} aligned crop")
    if image.shape[:2] != (size, size):
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def load_bin(path: str | Path) -> tuple[list[memoryview], np.ndarray]:
    """``(encoded images, issame (P,) bool)`` of an insightface ``.bin`` set, images not yet decoded.

    The pickle is read by :mod:`.safe_pickle` (data only, hard limits), so a hostile file is
    refused with a one-line error instead of running code or allocating without bound.
    """
    try:
        raw = read_file_bytes(path, MAX_BIN_BYTES, "a .bin set")
    except ImageError as err:
        raise DataError(str(err)) from None
    try:
        top = resolve(loads(raw))
        if not isinstance(top, (tuple, list)) or len(top) != 2:
            raise PickleRefused("expected (images, issame)")
        bins, issame = (resolve(v) for v in top)
        if not isinstance(bins, (list, tuple)) or len(bins) > 2 * MAX_BIN_PAIRS:
            raise PickleRefused(f"expected a list of at most {2 * MAX_BIN_PAIRS:,} encoded images")
        images = [_encoded(resolve(b)) for b in bins]
        same = _issame(issame)
    except PickleRefused as err:
        raise DataError(f"{path} is not an insightface .bin verification set: {err}") from None
    if len(images) != 2 * len(same) or not len(same):
        raise DataError(f"{path}: expected 2 images per pair and a boolean issame list "
                        f"(found {len(images)} images, {len(same)} pairs)")
    return images, same


def _encoded(value) -> memoryview:
    if isinstance(value, np.ndarray):
        if value.dtype != np.uint8 or value.ndim != 1:
            raise PickleRefused("an image must be encoded bytes (or a 1-D uint8 array of them)")
        return memoryview(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return memoryview(value)
    raise PickleRefused("an image must be encoded bytes")


def _issame(value) -> np.ndarray:
    if isinstance(value, np.ndarray):
        if value.dtype != bool or value.ndim != 1:
            raise PickleRefused("issame must be a 1-D boolean array")
        return value.copy()
    if not isinstance(value, (list, tuple)) or len(value) > MAX_BIN_PAIRS:
        raise PickleRefused(f"issame must be a list of at most {MAX_BIN_PAIRS:,} booleans")
    if not all(isinstance(v, (bool, np.bool_)) or (type(v) is int and v in (0, 1)) for v in value):
        raise PickleRefused("issame must hold booleans")
    return np.array([bool(v) for v in value], dtype=bool)


def decode_images(encoded: list, size: int = 112, name: str = "a .bin set", start: int = 0) -> np.ndarray:
    """Decode encoded face images to ``(n, size, size, 3)`` RGB uint8 (errors name the image index)."""
    out = np.empty((len(encoded), size, size, 3), np.uint8)
    for i, data in enumerate(encoded):
        out[i] = decode_rgb(data, size, f"{name}, image {start + i}")
    return out


def read_bin(path: str | Path, size: int = 112) -> tuple[np.ndarray, np.ndarray]:
    """``(images (2P, size, size, 3) uint8 RGB, issame (P,) bool)`` of an insightface ``.bin`` set.

    Decodes every image at once; for large sets use :func:`load_bin` and :func:`decode_images`
    batch by batch.
    """
    images, same = load_bin(path)
    return decode_images(images, size, str(path)), same


def write_bin(path: str | Path, images: list[bytes], issame: list[bool]) -> None:
    """Write a ``.bin`` set (encoded images, pairs interleaved) — for tests and small custom sets."""
    from facerec.core.atomic import atomic_write_bytes

    atomic_write_bytes(path, pickle.dumps((list(images), [bool(s) for s in issame]), protocol=4))


@dataclass
class Record:
    key: int
    flag: int
    label: float | np.ndarray  # scalar label, or the float32 label array when flag > 0
    payload: bytes  # the image bytes


MAX_RECORD_BYTES = 16 << 20  # one face image with its header; real records are ~10 KB
MAX_IDX_BYTES = 1 << 30  # CASIA-WebFace's index is ~10 MB, Glint360K's (17 M records) ~350 MB


def _unpack(path: Path, key: int, data: bytes) -> Record:
    if len(data) < _IR_HEADER.size:
        raise DataError(f"{path}: record {key} is too short for an IRHeader")
    flag, label, _, _ = _IR_HEADER.unpack_from(data)
    rest = data[_IR_HEADER.size:]
    if flag > 0:
        if len(rest) < 4 * flag:
            raise DataError(f"{path}: record {key} claims {flag} labels but holds {len(rest)} bytes")
        labels = np.frombuffer(rest[:4 * flag], np.float32).copy()
        return Record(key, flag, labels, rest[4 * flag:])
    return Record(key, flag, label, rest)


def _label_value(path: Path, key: int, value: float) -> int:
    if not np.isfinite(value) or not 0 <= value < 2 ** 31:
        raise DataError(f"{path}: record {key} has an invalid label {value}")
    return int(value)


class RecordFile:
    """Random access to a ``.rec`` file through its ``.idx`` (or a sequential scan without one).

    Both files are hostile input: the index must be UTF-8 ``key<TAB>offset`` lines with offsets
    inside the record file, and no record may claim more bytes than the file holds (or than
    :data:`MAX_RECORD_BYTES`), so nothing is allocated from a number the file made up.
    """

    def __init__(self, rec_path: str | Path, idx_path: str | Path | None = None):
        self.path = Path(rec_path)
        if not self.path.is_file():
            raise DataError(f"record file {self.path} does not exist")
        self.size = self.path.stat().st_size
        if self.size == 0:
            raise DataError(f"record file {self.path} is empty")
        idx_path = Path(idx_path) if idx_path else self.path.with_suffix(".idx")
        self._read_idx(idx_path) if idx_path.is_file() else self._scan()  # sorted keys and their offsets
        self._check_end()

    def _read_idx(self, path: Path) -> None:
        try:
            size = path.stat().st_size
        except OSError as err:
            raise DataError(f"cannot read {path}: {err.strerror or err}") from None
        if size > MAX_IDX_BYTES:
            raise DataError(f"{path} is {size >> 20} MiB, over the {MAX_IDX_BYTES >> 20} MiB a record index may have")
        keys, offsets = array("q"), array("q")
        with open(path, "rb") as f:  # line by line, each at most 64 bytes: a 17 M-record index in bounded steps
            number = 0
            while raw := f.readline(64):
                number += 1
                if not raw.endswith(b"\n") and len(raw) == 64:
                    raise DataError(f"{path}:{number}: a line over 64 bytes (expected 'key<TAB>offset')")
                try:
                    line = raw.decode("utf-8").strip()
                except UnicodeDecodeError:
                    raise DataError(f"{path} is not a text index (not UTF-8)") from None
                if not line:
                    continue
                match = _IDX_LINE.fullmatch(line)
                if not match:
                    raise DataError(f"{path}:{number}: expected 'key<TAB>offset' (two whole numbers)")
                if int(match[2]) >= self.size:
                    raise DataError(f"{path}:{number}: offset {match[2]} is past the end of {self.path.name}")
                keys.append(int(match[1]))
                offsets.append(int(match[2]))
        if not keys:
            raise DataError(f"{path} lists no records")
        return self._arrays(keys, offsets, path)

    def _check_end(self) -> None:
        """A file cut short (an interrupted download or copy) is refused whole: its last record
        must end inside it. (A damaged record in the middle is skipped and counted where read.)"""
        last = int(self._offsets.max())
        with open(self.path, "rb") as f:
            f.seek(last)
            head = f.read(8)
        if len(head) < 8:
            raise DataError(f"{self.path} is truncated: its last record (at byte {last}) is cut off")
        magic, lrecord = struct.unpack("<II", head)
        if magic == RECORD_MAGIC and last + 8 + (lrecord & ((1 << 29) - 1)) > self.size:
            raise DataError(f"{self.path} is truncated: its last record (at byte {last}) runs past the end of the file")

    def _arrays(self, keys, offsets, where) -> None:
        keys, offsets = np.frombuffer(keys, np.int64), np.frombuffer(offsets, np.int64)
        order = np.argsort(keys, kind="stable")
        keys, offsets = keys[order], offsets[order]
        if len(keys) > 1 and (twice := np.flatnonzero(keys[1:] == keys[:-1])).size:
            raise DataError(f"{where}: record key {keys[twice[0]]} is listed twice")
        self._keys, self._offsets = keys, offsets

    def _scan(self) -> None:
        keys, offsets, key, position = array("q"), array("q"), 0, 0
        with open(self.path, "rb") as f:
            while True:
                start = position
                data, position = self._read_from(f, position)
                if data is None:
                    break
                keys.append(key)
                offsets.append(start)
                key += 1
        if not keys:
            raise DataError(f"{self.path} holds no records")
        return self._arrays(keys, offsets, self.path)

    def _read_from(self, f, position: int) -> tuple[bytes | None, int]:
        """The record payload starting at ``position`` (joining split parts) and the next position."""
        parts, total = [], 0
        f.seek(position)
        while True:
            head = f.read(8)
            if len(head) < 8:
                if parts or head:
                    raise DataError(f"{self.path}: truncated record at byte {position}")
                return None, position
            magic, lrecord = struct.unpack("<II", head)
            if magic != RECORD_MAGIC:
                raise DataError(f"{self.path}: bad record magic at byte {position} (not a RecordIO file, or an old one)")
            length, cflag = lrecord & ((1 << 29) - 1), lrecord >> 29
            total += length
            if total > MAX_RECORD_BYTES:
                raise DataError(f"{self.path}: the record at byte {position} is over {MAX_RECORD_BYTES >> 20} MiB")
            if length > self.size - f.tell():
                raise DataError(f"{self.path}: truncated record at byte {position}")
            body = f.read(length)
            f.read((4 - length % 4) % 4)
            position = f.tell()
            parts.append(body)
            if cflag in (0, 3):  # a whole record, or the last part of a split one
                return struct.pack("<I", RECORD_MAGIC).join(parts), position

    def keys(self) -> list[int]:
        return self._keys.tolist()

    def _offset(self, key: int) -> int:
        i = int(np.searchsorted(self._keys, key))
        if i == len(self._keys) or self._keys[i] != key:
            raise DataError(f"{self.path}: no record {key}")
        return int(self._offsets[i])

    def read(self, key: int) -> Record:
        offset = self._offset(key)
        with open(self.path, "rb") as f:
            data, _ = self._read_from(f, offset)
        if data is None:
            raise DataError(f"{self.path}: record {key} is missing (offset {offset})")
        return _unpack(self.path, key, data)

    def label(self, key: int) -> int:
        """The label of an image record, reading only its headers (not the image)."""
        with open(self.path, "rb") as f:
            return self._label_at(f, key, self._offset(key))

    def labels(self, keys, unreadable: int | None = None) -> list[int]:
        """The labels of ``keys``, each from its record's headers, through one open file. A record
        whose headers cannot be read gets ``unreadable`` when given (else the error is raised)."""
        out = []
        with open(self.path, "rb") as f:
            for key in keys:
                try:
                    out.append(self._label_at(f, int(key), self._offset(int(key))))
                except DataError:
                    if unreadable is None:
                        raise
                    out.append(unreadable)
        return out

    def _label_at(self, f, key: int, offset: int) -> int:
        f.seek(offset)
        head = f.read(8 + _IR_HEADER.size + 4)
        if len(head) < 8 + _IR_HEADER.size or struct.unpack_from("<I", head)[0] != RECORD_MAGIC:
            raise DataError(f"{self.path}: truncated or damaged record {key}")
        flag, label, _, _ = _IR_HEADER.unpack_from(head, 8)
        if flag > 0:
            if len(head) < 8 + _IR_HEADER.size + 4:
                raise DataError(f"{self.path}: truncated record {key}")
            label = float(np.frombuffer(head[8 + _IR_HEADER.size:], np.float32)[0])
        return _label_value(self.path, key, label)

    def image_keys(self) -> list[int]:
        """Keys of image records (skipping insightface's header and identity records)."""
        keys = self.keys()
        if keys and keys[0] == 0:
            first = self.read(0)
            if first.flag > 0:
                end = _label_value(self.path, 0, float(first.label[0]))
                return [k for k in keys if 1 <= k < end]
        return keys


def write_records(rec_path: str | Path, images, labels, header: bool = True, count: int | None = None) -> None:
    """Write ``.rec`` + ``.idx`` in insightface's layout (a header record, then one record per image).

    ``images`` and ``labels`` may be iterables (``count`` then gives their length for the header;
    none is needed without one):
    records go to the file as they come, so a set of any size is written in bounded memory; both
    files are written beside their targets and renamed into place when complete."""
    from facerec.core.atomic import atomic_write_with

    rec_path = Path(rec_path)
    count = len(images) if count is None and header else count
    offsets: list[tuple[int, int]] = []

    def write(tmp) -> None:
        with open(tmp, "wb") as out:
            def put(key: int, payload: bytes) -> None:
                offsets.append((key, out.tell()))
                out.write(struct.pack("<II", RECORD_MAGIC, len(payload)) + payload + b"\0" * ((4 - len(payload) % 4) % 4))

            if header:
                put(0, _IR_HEADER.pack(2, 0.0, 0, 0) + np.array([count + 1, count + 1], np.float32).tobytes())
            start = 1 if header else 0
            for i, (image, label) in enumerate(zip(images, labels)):
                put(start + i, _IR_HEADER.pack(0, float(label), start + i, 0) + bytes(image))

    atomic_write_with(rec_path, write)
    atomic_write_with(rec_path.with_suffix(".idx"),
                      lambda tmp: Path(tmp).write_text("".join(f"{k}\t{o}\n" for k, o in offsets)))
