"""insightface's dataset formats without MXNet and without unpickling code.

``.bin`` verification sets (lfw.bin, cfp_fp.bin, agedb_30.bin): a pickle of ``(bins, issame)``,
``bins`` the JPEG bytes of ``2 × len(issame)`` images with pairs interleaved. They are read with an
unpickler that resolves no class at all beyond numpy's plain-array reconstruction, so a file that
tries to run code is refused instead of executed.

``.rec`` / ``.idx`` (MXNet RecordIO, e.g. ``faces_webface_112x112``, CASIA-WebFace): ``.idx`` is
text, ``key<TAB>offset`` per line; each ``.rec`` record is ``uint32 magic 0xced7230a``,
``uint32 lrecord`` (length in the low 29 bits, continuation flag in the top 3), the payload,
zero padding to 4 bytes. A payload is an ``IRHeader`` (``<IfQQ``: flag, label, id, id2), then
``flag`` float32 labels when ``flag > 0``, then the image bytes. By insightface's convention a
record 0 with ``flag > 0`` is a header whose labels ``[a, b]`` say images are keys ``1 … a-1``.
"""

from __future__ import annotations

import io
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import DataError

RECORD_MAGIC = 0xCED7230A
_IR_HEADER = struct.Struct("<IfQQ")
_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),  # how Python 2 pickles of bytes arrive under encoding="bytes"
    ("builtins", "bytearray"), ("__builtin__", "bytearray"),  # image buffers in older .bin files
}


class _DataOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a .bin set holds only data")


def decode_rgb(data: bytes, size: int = 112) -> np.ndarray:
    if not data:
        raise DataError("an image record is empty")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    if image is None:
        raise DataError("an image in the set cannot be decoded")
    if image.shape[:2] != (size, size):
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_bin(path: str | Path, size: int = 112) -> tuple[np.ndarray, np.ndarray]:
    """``(images (2P, size, size, 3) uint8 RGB, issame (P,) bool)`` of an insightface ``.bin`` set."""
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror or err}") from None
    try:
        bins, issame = _DataOnlyUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except (pickle.UnpicklingError, ValueError, TypeError, EOFError) as err:
        raise DataError(f"{path} is not an insightface .bin verification set: {err}") from None
    issame = np.asarray(issame)
    if issame.dtype != bool or issame.ndim != 1 or len(bins) != 2 * len(issame):
        raise DataError(f"{path}: expected 2 images per pair and a boolean issame list")
    images = [decode_rgb(bytes(b) if not isinstance(b, np.ndarray) else b.tobytes(), size) for b in bins]
    return np.stack(images), issame


def write_bin(path: str | Path, images: list[bytes], issame: list[bool]) -> None:
    """Write a ``.bin`` set (encoded images, pairs interleaved) — for tests and small custom sets."""
    from ..io import atomic_write_bytes

    atomic_write_bytes(path, pickle.dumps((list(images), [bool(s) for s in issame]), protocol=4))


@dataclass
class Record:
    key: int
    flag: int
    label: float | np.ndarray  # scalar label, or the float32 label array when flag > 0
    payload: bytes  # the image bytes


def _unpack(key: int, data: bytes) -> Record:
    if len(data) < _IR_HEADER.size:
        raise DataError(f"record {key} is too short for an IRHeader")
    flag, label, _, _ = _IR_HEADER.unpack_from(data)
    rest = data[_IR_HEADER.size:]
    if flag > 0:
        labels = np.frombuffer(rest[:4 * flag], np.float32).copy()
        return Record(key, flag, labels, rest[4 * flag:])
    return Record(key, flag, label, rest)


class RecordFile:
    """Random access to a ``.rec`` file through its ``.idx`` (or a sequential scan without one)."""

    def __init__(self, rec_path: str | Path, idx_path: str | Path | None = None):
        self.path = Path(rec_path)
        if not self.path.is_file():
            raise DataError(f"record file {self.path} does not exist")
        idx_path = Path(idx_path) if idx_path else self.path.with_suffix(".idx")
        self.offsets = self._read_idx(idx_path) if idx_path.is_file() else self._scan()

    @staticmethod
    def _read_idx(path: Path) -> dict[int, int]:
        offsets = {}
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    key, offset = line.split("\t")
                    offsets[int(key)] = int(offset)
                except ValueError:
                    raise DataError(f"{path}:{number}: expected 'key<TAB>offset'") from None
        return offsets

    def _scan(self) -> dict[int, int]:
        offsets, key, position = {}, 0, 0
        with open(self.path, "rb") as f:
            while True:
                start = position
                data, position = self._read_from(f, position)
                if data is None:
                    return offsets
                offsets[key] = start
                key += 1

    def _read_from(self, f, position: int) -> tuple[bytes | None, int]:
        """The record payload starting at ``position`` (joining split parts) and the next position."""
        parts = []
        f.seek(position)
        while True:
            head = f.read(8)
            if len(head) < 8:
                if parts:
                    raise DataError(f"{self.path}: truncated record at byte {position}")
                return None, position
            magic, lrecord = struct.unpack("<II", head)
            if magic != RECORD_MAGIC:
                raise DataError(f"{self.path}: bad record magic at byte {position} (not a RecordIO file, or an old one)")
            length, cflag = lrecord & ((1 << 29) - 1), lrecord >> 29
            body = f.read(length)
            if len(body) < length:
                raise DataError(f"{self.path}: truncated record at byte {position}")
            f.read((4 - length % 4) % 4)
            position = f.tell()
            parts.append(body)
            if cflag in (0, 3):  # a whole record, or the last part of a split one
                return struct.pack("<I", RECORD_MAGIC).join(parts), position

    def keys(self) -> list[int]:
        return sorted(self.offsets)

    def read(self, key: int) -> Record:
        if key not in self.offsets:
            raise DataError(f"{self.path}: no record {key}")
        with open(self.path, "rb") as f:
            data, _ = self._read_from(f, self.offsets[key])
        return _unpack(key, data)

    def label(self, key: int) -> float:
        """The scalar label of an image record, reading only its headers (not the image)."""
        with open(self.path, "rb") as f:
            f.seek(self.offsets[key])
            head = f.read(8 + _IR_HEADER.size + 4)
        if len(head) < 8 + _IR_HEADER.size:
            raise DataError(f"{self.path}: truncated record {key}")
        flag, label, _, _ = _IR_HEADER.unpack_from(head, 8)
        return float(np.frombuffer(head[8 + _IR_HEADER.size:], np.float32)[0]) if flag > 0 else label

    def image_keys(self) -> list[int]:
        """Keys of image records (skipping insightface's header and identity records)."""
        keys = self.keys()
        if keys and keys[0] == 0:
            first = self.read(0)
            if first.flag > 0:
                end = int(first.label[0])
                return [k for k in keys if 1 <= k < end]
        return keys


def write_records(rec_path: str | Path, images: list[bytes], labels: list[int], header: bool = True) -> None:
    """Write ``.rec`` + ``.idx`` in insightface's layout (a header record, then one record per image)."""
    rec_path = Path(rec_path)
    records = []
    if header:
        records.append((0, _IR_HEADER.pack(2, 0.0, 0, 0) + np.array([len(images) + 1, len(images) + 1],
                                                                     np.float32).tobytes()))
    start = 1 if header else 0
    for i, (image, label) in enumerate(zip(images, labels)):
        records.append((start + i, _IR_HEADER.pack(0, float(label), start + i, 0) + image))
    offsets, out = [], io.BytesIO()
    for key, payload in records:
        offsets.append((key, out.tell()))
        out.write(struct.pack("<II", RECORD_MAGIC, len(payload)) + payload + b"\0" * ((4 - len(payload) % 4) % 4))
    rec_path.write_bytes(out.getvalue())
    rec_path.with_suffix(".idx").write_text("".join(f"{k}\t{o}\n" for k, o in offsets))
