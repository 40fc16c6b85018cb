"""The exceptions a user can cause. The CLI prints them as one line and exits non-zero.

Anything else escaping the library is a bug, and the CLI says so.
"""

from __future__ import annotations

import errno


class FaceRecError(Exception):
    """Base class: a problem with the user's input, data or workspace, with a message that says
    what is wrong and, where there is one, the fix."""

    exit_code = 2


class DataError(FaceRecError, ValueError):
    """A dataset folder, image or split that cannot be used."""


class UnknownModelError(FaceRecError, LookupError):
    """A model name that is not in the registry."""


class NotEnrolledError(FaceRecError, LookupError):
    """A person the gallery does not hold (removing them; the HTTP API answers 404)."""


class WorkspaceError(FaceRecError):
    """A workspace that is missing, incomplete, corrupt or from a newer facerec."""


_STORAGE_ERRNOS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                   errno.EROFS: "read-only file system", errno.EFBIG: "file too large", errno.EIO: "input/output error"}


def storage_problem(err: BaseException) -> str | None:
    """What is wrong with the storage, when ``err`` (or its cause) is a full, read-only or failing
    disk, which libraries report as OSError, RuntimeError (faiss, torch) or their own types."""
    while err is not None:
        if isinstance(err, OSError) and err.errno in _STORAGE_ERRNOS:
            where = f" ({err.filename})" if err.filename else ""
            return f"{_STORAGE_ERRNOS[err.errno]}{where}"
        text = str(err)
        for marker in ("No space left on device", "Disk quota exceeded", "database or disk is full"):
            if marker in text:
                return marker[0].lower() + marker[1:]
        err = err.__cause__ or err.__context__
    return None
