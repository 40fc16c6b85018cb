"""One writer at a time per workspace: an exclusive ``flock`` on ``WORKSPACE/.lock``.

Two processes enrolling into one workspace are serialised rather than interleaved, so neither
loses the other's changes. The lock is released when the process exits, however it exits.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from .errors import WorkspaceError


@contextlib.contextmanager
def workspace_lock(root: str | os.PathLike, create: bool = False):
    """Hold the workspace's writer lock; ``create`` makes the directory first (for ``train``)."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise WorkspaceError(f"workspace {root} is a file, not a folder; name a folder with -w")
    if create:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as err:  # a parent that is a file, no permission, a read-only disk
            raise WorkspaceError(f"workspace {root} cannot be created ({err.strerror})") from None
    elif not root.is_dir():
        raise WorkspaceError(f"workspace {root} does not exist; run `facerec train DATA_DIR -w {root}` first")
    try:  # never through a link: the lock file is created inside the workspace or not at all
        fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as err:
        raise WorkspaceError(f"{root / '.lock'} cannot be opened ({err.strerror}); is it a link?") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # blocks until the other writer is done
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
