"""Reading image files as hostile input: bounded reads, size checked from the header, no crash.

Every image facerec decodes (photos to enroll or recognise, dataset files, stored crops, the
images inside ``.bin``/``.rec`` sets) goes through :func:`decode_image`, so one set of rules holds:

- only regular files are read (a FIFO, ``/dev/zero`` or a directory is refused before it is
  opened for reading), and at most :data:`MAX_FILE_BYTES` of them;
- the pixel dimensions are read from the header (PNG, JPEG, BMP, PNM, TIFF, WebP) and an image
  over :data:`MAX_PIXELS` is refused *before* the decoder allocates anything; OpenCV's own
  ``OPENCV_IO_MAX_IMAGE_PIXELS`` check is set to the same limit as a backstop for other formats;
- large JPEGs are decoded at a reduced scale (libjpeg's DCT scaling), and anything decoded larger
  than :data:`MAX_SIDE` is shrunk, so face detection time stays bounded;
- every failure is an :class:`ImageError` (a DataError) naming the file — never an OpenCV
  assertion, a MemoryError or a hang.
"""

from __future__ import annotations

import contextlib
import os
import stat
import struct
import sys
import threading

import cv2
import numpy as np

from facerec.core.errors import DataError

MAX_FILE_BYTES = 64 << 20  # no photo or face crop is bigger; a 40 MP JPEG is ~20 MB
MAX_PIXELS = 40_000_000  # 40 MP: 120 MB as 8-bit BGR, bounded even for 16-bit RGBA sources
MAX_SIDE = 4096  # images are shrunk to this longest side before detection
# facerec/__init__.py sets OPENCV_IO_MAX_IMAGE_PIXELS to MAX_PIXELS before OpenCV's first decode.


class ImageError(DataError):
    """One file that cannot be used as an image: ``str()`` is ``"<file>: <reason>"``."""

    def __init__(self, name: str, reason: str):
        super().__init__(f"{name}: {reason}")
        self.name, self.reason = name, reason


def read_file_bytes(path: str | os.PathLike, limit: int = MAX_FILE_BYTES, what: str = "a file",
                    follow: bool = True) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; anything else is an ImageError.
    ``follow=False``: a link is refused too (files inside a workspace)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)  # O_NONBLOCK: a FIFO cannot block us
    except (OSError, ValueError) as err:
        raise ImageError(os.fsdecode(path), f"cannot read: {getattr(err, 'strerror', None) or err}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ImageError(os.fsdecode(path), "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file")
        if info.st_size > limit:
            raise ImageError(os.fsdecode(path), f"{info.st_size:,} bytes, over the {limit:,}-byte limit for {what}")
        chunks, total = [], 0
        while total <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:  # the file grew while we read it
            raise ImageError(os.fsdecode(path), f"over the {limit:,}-byte limit for {what}")
        return b"".join(chunks)
    except OSError as err:
        raise ImageError(os.fsdecode(path), f"cannot read: {err.strerror or err}") from None
    finally:
        os.close(fd)


def image_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from the header of a PNG, JPEG, BMP, PNM, TIFF or WebP file; None when
    the format is not one of these (or the header is too damaged to say)."""
    try:
        for magic, reader in _READERS:
            if data.startswith(magic):
                return reader(data)
    except (struct.error, ValueError, IndexError, KeyError):
        raise ValueError("corrupt header") from None
    return None


def _png(data: bytes) -> tuple[int, int]:
    if data[12:16] != b"IHDR":
        raise ValueError("no IHDR")
    position = 8  # every chunk must fit in the file: OpenCV allocates a chunk's claimed length up front
    while position + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        if length > len(data) - position - 12:
            raise ValueError(f"a {kind!r} chunk claims {length} bytes")
        if kind == b"IEND":
            break
        position += 12 + length
    return struct.unpack(">II", data[16:24])


def _jpeg(data: bytes) -> tuple[int, int] | None:
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            position += 1  # tolerate fill bytes and garbage between segments, as libjpeg does
            continue
        marker = data[position + 1]
        if marker in (0xFF, 0x01) or 0xD0 <= marker <= 0xD8:
            position += 2 if marker != 0xFF else 1
            continue
        length = struct.unpack(">H", data[position + 2:position + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start-of-frame segment
            height, width = struct.unpack(">HH", data[position + 5:position + 9])
            return width, height
        if marker == 0xDA:  # start of scan before any frame header
            return None
        position += 2 + length
    return None


def _bmp(data: bytes) -> tuple[int, int]:
    header = struct.unpack("<I", data[14:18])[0]
    if header == 12:  # OS/2 BITMAPCOREHEADER
        return struct.unpack("<HH", data[18:22])
    width, height = struct.unpack("<ii", data[18:26])
    return abs(width), abs(height)


def _pnm(data: bytes) -> tuple[int, int]:
    if data[:2] == b"P7":  # PAM: "WIDTH w" / "HEIGHT h" lines
        fields = dict(line.split(None, 1) for line in data[:4096].split(b"\n")[1:] if b" " in line.strip())
        return int(fields[b"WIDTH"]), int(fields[b"HEIGHT"])
    tokens, position = [], 2
    head = data[:4096]
    while len(tokens) < 2 and position < len(head):
        if head[position:position + 1] == b"#":
            position = head.find(b"\n", position) + 1 or len(head)
        elif head[position:position + 1].isspace():
            position += 1
        else:
            end = position
            while end < len(head) and head[end:end + 1].isdigit():
                end += 1
            if end == position:
                raise ValueError("bad PNM header")
            tokens.append(int(head[position:end]))
            position = end
    return tokens[0], tokens[1]


def _tiff(data: bytes) -> tuple[int, int] | None:
    order = "<" if data[:2] == b"II" else ">"
    offset = struct.unpack(order + "I", data[4:8])[0]
    count = struct.unpack(order + "H", data[offset:offset + 2])[0]
    found = {}
    for i in range(min(count, 512)):
        tag, kind, _, value = struct.unpack(order + "HHII", data[offset + 2 + 12 * i:offset + 14 + 12 * i])
        if kind == 3:  # SHORT: the value sits in the first two bytes of the field
            value = struct.unpack(order + "H", data[offset + 10 + 12 * i:offset + 12 + 12 * i])[0]
        if tag in (256, 257):
            found[tag] = value
    return (found[256], found[257]) if len(found) == 2 else None


def _webp(data: bytes) -> tuple[int, int] | None:
    if data[8:12] != b"WEBP":
        return None
    chunk = data[12:16]
    if chunk == b"VP8X":
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8L":
        bits = struct.unpack("<I", data[21:25])[0]
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None


_READERS = (
    (b"\x89PNG\r\n\x1a\n", _png), (b"\xff\xd8", _jpeg), (b"BM", _bmp),
    *((b"P%d" % i, _pnm) for i in range(1, 8)),
    (b"II*\x00", _tiff), (b"MM\x00*", _tiff), (b"RIFF", _webp),
)


def decode_image(data: bytes, name: str, max_pixels: int = MAX_PIXELS, max_side: int | None = MAX_SIDE) -> np.ndarray:
    """Decode encoded image bytes as BGR uint8 ``(H, W, 3)``; ``name`` is the file named in errors.

    Raises:
        DataError: empty, not an image, corrupt, or larger than ``max_pixels``.
    """
    if not data:
        raise ImageError(name, "empty file")
    try:
        size = image_size(data)
    except ValueError:
        raise ImageError(name, "corrupt image header") from None
    flag = cv2.IMREAD_COLOR  # grey -> 3 channels, 16-bit -> 8, alpha dropped
    if size is not None:
        width, height = size
        if width <= 0 or height <= 0:
            raise ImageError(name, f"header says {width}x{height} pixels (corrupt file)")
        if width * height > max_pixels:
            raise ImageError(name, f"{width}x{height} pixels ({width * height / 1e6:.0f} MP), over the "
                                   f"{max_pixels / 1e6:.0f} MP limit; downscale it")
        if max_side and data.startswith(b"\xff\xd8"):  # libjpeg decodes at 1/2, 1/4 or 1/8 scale for free
            for factor, reduced in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                                    (2, cv2.IMREAD_REDUCED_COLOR_2)):
                if max(width, height) // factor >= max_side:
                    flag = reduced
                    break
    try:
        with _quiet_stderr():  # libpng, libjpeg and OpenCV print their complaints on stderr
            image = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    except cv2.error:  # OpenCV's size check (formats without a header reader above) or a decoder failure
        image = None
    if image is None or image.size == 0:
        raise ImageError(name, "not an image (unknown format, or corrupt)")
    return _shrink(image, max_side)


def _shrink(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """``image`` scaled down so its longer side is at most ``max_side`` (unchanged if it is)."""
    if max_side and max(image.shape[:2]) > max_side:
        scale = max_side / max(image.shape[:2])
        image = cv2.resize(image, (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))),
                           interpolation=cv2.INTER_AREA)
    return image


_quiet = {"lock": threading.Lock(), "depth": 0, "saved": -1}


@contextlib.contextmanager
def _quiet_stderr():
    """Point file descriptor 2 at /dev/null while decoders run (re-entrant across threads), so a
    corrupt file ends in facerec's one-line error and not in lines of decoder chatter."""
    if os.environ.get("FACEREC_DEBUG"):
        yield
        return
    with _quiet["lock"]:
        if _quiet["depth"] == 0:
            sys.stderr.flush()
            _quiet["saved"] = os.dup(2)
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 2)
            os.close(null)
        _quiet["depth"] += 1
    try:
        yield
    finally:
        with _quiet["lock"]:
            _quiet["depth"] -= 1
            if _quiet["depth"] == 0:
                os.dup2(_quiet["saved"], 2)
                os.close(_quiet["saved"])


def image_from_array(array, name: str = "array", max_pixels: int = MAX_PIXELS,
                     max_side: int | None = MAX_SIDE) -> tuple[np.ndarray, bytes]:
    """``(BGR image, bytes to hash)`` of an in-memory image: a numpy array ``(H, W, 3)`` in **RGB**
    order (as PIL, face_recognition and imageio give), ``(H, W, 4)`` RGBA or ``(H, W)`` grey,
    uint8 (or float in [0, 1]), under the same size rules as a file."""
    if not isinstance(array, np.ndarray):
        raise ImageError(name, f"not a numpy array ({type(array).__name__})")
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)) or 0 in array.shape:
        raise ImageError(name, f"shape {array.shape} is not (H, W), (H, W, 3) or (H, W, 4)")
    height, width = array.shape[:2]
    if width * height > max_pixels:
        raise ImageError(name, f"{width}x{height} pixels, over the {max_pixels / 1e6:.0f} MP limit; downscale it")
    if array.dtype != np.uint8:
        if array.dtype.kind != "f" or not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise ImageError(name, f"dtype {array.dtype}: give uint8, or floats in [0, 1]")
        array = np.round(array * 255).astype(np.uint8)
    code = {2: cv2.COLOR_GRAY2BGR, 3: cv2.COLOR_RGB2BGR, 4: cv2.COLOR_RGBA2BGR}[array.shape[2] if array.ndim == 3 else 2]
    image = cv2.cvtColor(np.ascontiguousarray(array), code)
    return _shrink(image, max_side), f"{array.shape}|".encode() + np.ascontiguousarray(array).tobytes()


def read_image_file(path: str | os.PathLike, max_pixels: int = MAX_PIXELS,
                    max_side: int | None = MAX_SIDE) -> tuple[np.ndarray, bytes]:
    """``(BGR image, the file's bytes)`` of an image file, under every rule above."""
    data = read_file_bytes(path, what="an image")
    return decode_image(data, os.fsdecode(path), max_pixels, max_side), data
