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


class WorkspaceBusy(WorkspaceError):
    """Another command held the workspace's lock for longer than a caller would wait (HTTP 503)."""


_STORAGE_ERRNOS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                   errno.EROFS: "read-only file system", errno.EFBIG: "file too large", errno.EIO: "input/output error",
                   errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
                   errno.ENAMETOOLONG: "file name too long"}


def storage_problem(err: BaseException) -> str | None:
    """What is wrong with the storage, when ``err`` (or its cause) is a full, read-only or failing
    disk, a permission the process lacks or a path the file system cannot hold, which libraries report as OSError, RuntimeError
    (faiss, torch) or their own types."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in _STORAGE_ERRNOS:
            where = f" ({err.filename})" if err.filename else ""
            return f"{_STORAGE_ERRNOS[err.errno]}{where}"
        text = str(err)
        for marker in ("No space left on device", "Disk quota exceeded", "database or disk is full"):
            if marker in text:
                return marker[0].lower() + marker[1:]
        err = err.__cause__ or err.__context__
    return None
