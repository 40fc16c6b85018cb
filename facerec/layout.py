"""What a workspace holds on disk, read without ever following a link.

facerec deletes and rewrites files only inside its workspace, and only files it made. A symbolic
link inside the workspace (``crops/Bob -> /home/user``: a shared volume, an archive restored from
elsewhere, crops "moved" to another disk) would make *inside* mean *anywhere*: the clean-up of a
killed command would delete what it finds there. So nothing under the workspace's own folders is
followed. :func:`check_layout` walks every entry facerec manages with ``lstat`` semantics
(``os.scandir`` without ``follow_symlinks``) before a command reads or writes, and stops the
command with one line naming the first wrong path (exit 2), before anything is changed:

- a symbolic link anywhere in a managed folder, or one of the managed names being a link;
- a FIFO, socket or device where facerec keeps files;
- a file where facerec keeps a folder (``crops/Bob`` a regular file) or a folder where it keeps
  a file.

The workspace folder itself may be reached through a link (``-w`` is the user's choice); what is
inside it may not. Entries facerec does not manage (a user's notes beside ``workspace.json``) are
neither checked nor touched. The listing helpers below never follow links either, so code that
deletes works on what the check saw even if a link appears afterwards.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import WorkspaceError

# Files facerec writes at the top of a workspace, and the folders whose whole content is its own,
# with the kind of entry each level holds: crops/<person>/<crop>, quarantine/<batch>/<person>/<crop>.
FILES = ("workspace.json", "erasure.key", "api-keys.json", "train-state.pt", ".lock", ".demo")
_PEOPLE = ("folder", "file")
FOLDERS = {"models": ("file",), "gallery": ("file",), "gallery.rebuild": ("file",), "gallery.old": ("file",),
           "gallery.staging": ("file",), "journal": ("file",), "crops": _PEOPLE, "replay": _PEOPLE,
           "replay.staging": _PEOPLE, "replay.old": _PEOPLE, "synthetic-data": _PEOPLE,
           "quarantine": ("folder", "folder", "file")}


class LayoutError(WorkspaceError):
    """A workspace entry is not what facerec made: a link, a special file, or the wrong kind."""

    def __init__(self, path: Path, problem: str):
        super().__init__(f"{path} {problem}; facerec never follows links or touches special files inside a workspace "
                         f"(was the workspace changed by hand?): replace it by what facerec made, or remove it, "
                         f"and run again; nothing was changed")
        self.path = path


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "link"
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISREG(mode):
        return "file"
    return "special"


def _problem(kind: str, want: str) -> str | None:
    if kind == want:
        return None
    if kind == "link":
        return "is a symbolic link"
    if kind == "special":
        return "is a special file (FIFO, socket or device)"
    if want == "nothing":
        return f"is a {kind} where facerec keeps none"
    return f"is a {kind} where facerec keeps a {want}"


def _lstat_kind(path: Path) -> str | None:
    try:
        return _kind(os.lstat(path).st_mode)
    except FileNotFoundError:
        return None
    except OSError as err:  # a name too long, a permission problem: not a layout facerec can use
        raise WorkspaceError(f"{path} cannot be examined ({err.strerror})") from None


def check_layout(root: str | os.PathLike) -> None:
    """Raise :class:`LayoutError` for the first managed entry of the workspace at ``root`` that is
    a link, a special file or of the wrong kind. A missing workspace or entry is not an error."""
    root = Path(root)
    if not root.is_dir():
        return
    for name in FILES:
        kind = _lstat_kind(root / name)
        if kind is not None and (problem := _problem(kind, "file")):
            raise LayoutError(root / name, problem)
    for name, shape in FOLDERS.items():
        folder = root / name
        kind = _lstat_kind(folder)
        if kind is None:
            continue
        if problem := _problem(kind, "folder"):
            raise LayoutError(folder, problem)
        _check_tree(folder, shape)


def _check_tree(top: Path, shape: tuple[str, ...]) -> None:
    """Every entry ``d`` levels under ``top`` is a real entry of kind ``shape[d]``."""
    stack = [(top, 0)]
    while stack:
        folder, depth = stack.pop()
        for entry in _scan(folder):
            path = folder / entry.name
            want = shape[depth] if depth < len(shape) else "nothing"
            if problem := _problem(_entry_kind(entry), want):
                raise LayoutError(path, problem)
            if want == "folder":
                stack.append((path, depth + 1))


def _scan(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except FileNotFoundError:
        return []
    except OSError as err:
        raise WorkspaceError(f"{folder} cannot be listed ({err.strerror})") from None


def _entry_kind(entry: os.DirEntry) -> str:
    if entry.is_symlink():
        return "link"
    if entry.is_dir(follow_symlinks=False):
        return "folder"
    if entry.is_file(follow_symlinks=False):
        return "file"
    return "special"


def real_folders(parent: Path) -> list[Path]:
    """The sub-folders of ``parent`` that are real folders (never links), sorted by name; none
    when ``parent`` is missing or is itself a link."""
    if _lstat_kind(parent) != "folder":
        return []
    return sorted(parent / e.name for e in _scan(parent) if _entry_kind(e) == "folder")


def real_files(parent: Path) -> list[Path]:
    """The regular files directly in ``parent`` (never links), sorted by name; none when
    ``parent`` is missing or is itself a link."""
    if _lstat_kind(parent) != "folder":
        return []
    return sorted(parent / e.name for e in _scan(parent) if _entry_kind(e) == "file")


def is_real_folder(path: Path) -> bool:
    return _lstat_kind(path) == "folder"
