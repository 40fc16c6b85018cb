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
    if create:
        root.mkdir(parents=True, exist_ok=True)
    elif not root.is_dir():
        raise WorkspaceError(f"workspace {root} does not exist; run `facerec train DATA_DIR -w {root}` first")
    with open(root / ".lock", "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # blocks until the other writer is done
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
