"""One writer at a time per workspace: an exclusive ``flock`` on ``WORKSPACE/.lock``.

Two processes enrolling into one workspace are serialised rather than interleaved, so neither
loses the other's changes. The lock is released when the process exits, however it exits.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path


@contextlib.contextmanager
def workspace_lock(root: str | os.PathLike):
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # blocks until the other writer is done
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
