"""One writer at a time per workspace: an exclusive ``flock`` on ``WORKSPACE/.lock``.

Two processes enrolling into one workspace are serialised rather than interleaved, so neither
loses the other's changes. The lock is released when the process exits, however it exits.
Readers take no lock, except to look again at something that looked inconsistent: under the
shared lock (:func:`shared_lock`) no writer is between two steps.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from pathlib import Path

from facerec.core.errors import WorkspaceBusy, WorkspaceError

WAIT_SECONDS = 30.0  # how long a reader waits for a writer before answering "busy"
_held = threading.local()  # the workspaces this thread holds the writer lock of


def held_here(root: str | os.PathLike) -> bool:
    """This thread holds the writer lock of ``root`` (its own changes are in progress)."""
    return os.path.realpath(root) in getattr(_held, "roots", set())


def _open(root: Path) -> int:
    try:  # never through a link: the lock file is created inside the workspace or not at all
        return os.open(root / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as err:
        raise WorkspaceError(f"{root / '.lock'} cannot be opened ({err.strerror}); is it a link?") from None


@contextlib.contextmanager
def workspace_lock(root: str | os.PathLike, create: bool = False):
    """Hold the workspace's writer lock; ``create`` makes the directory first (for ``train``).
    The workspace's layout is checked (:mod:`facerec.workspace.layout`) before and once the lock is held."""
    from facerec.workspace.layout import check_layout, require_folder

    root = Path(root)
    require_folder(root)
    if create:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as err:  # a parent that is a file, no permission, a read-only disk
            raise WorkspaceError(f"workspace {root} cannot be created ({err.strerror})") from None
    elif not root.is_dir():
        raise WorkspaceError(f"workspace {root} does not exist; run `facerec train DATA_DIR -w {root}` first")
    check_layout(root)
    fd = _open(root)
    key = os.path.realpath(root)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # blocks until the other writer is done
        _held.roots = getattr(_held, "roots", set()) | {key}
        try:
            check_layout(root)  # again: another writer may have been changing it while this one waited
            yield
        finally:
            _held.roots = _held.roots - {key}
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def shared_lock(root: str | os.PathLike, wait: float | None = None):
    """Hold the workspace's lock shared (no writer at work) for a moment; waits at most ``wait``
    seconds (:data:`WAIT_SECONDS`) for a writer to finish, then raises :class:`WorkspaceBusy`."""
    root = Path(root)
    fd = _open(root)
    deadline = time.monotonic() + (WAIT_SECONDS if wait is None else wait)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise WorkspaceBusy(f"{root} is being changed by another command (a forget?); try again "
                                        f"when it is done") from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
