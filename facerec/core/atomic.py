"""Atomic file writes: write a temporary file beside the target, flush it to disk, rename.

A reader (or a crash) sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable


def atomic_write_with(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` to produce the content, then move it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            handle.write(data)

    atomic_write_with(path, write)


def atomic_write_json(path: str | os.PathLike, obj, strict: bool = False) -> None:
    """``obj`` as indented JSON; ``strict``: non-finite floats written as ``null`` (RFC 8259), for
    reports other tools read (a manifest keeps Python's ``NaN``, which facerec reads back)."""
    text = json.dumps(strict_json(obj), indent=2, allow_nan=False) if strict else json.dumps(obj, indent=2)
    atomic_write_bytes(path, (text + "\n").encode("utf-8"))


def strict_json(value):
    """``value`` with every non-finite float as ``None``: ``--json`` prints RFC 8259 JSON (``null``,
    never ``NaN``, which ``jq`` and most parsers refuse), e.g. ``acc_o`` of a first forget request."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


@contextlib.contextmanager
def built_folder(out: str | os.PathLike):
    """Yield a temporary folder beside ``out`` to fill; renamed to ``out`` when the block ends
    without an error, removed when it raises: a half-built folder never exists at ``out``."""
    out = Path(out)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        yield tmp
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
