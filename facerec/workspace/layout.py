"""What a workspace holds on disk, read and changed without ever following a link.

facerec deletes and rewrites files only inside its workspace, and only files it made. A symbolic
link inside the workspace (``crops/Bob -> /home/user``: a shared volume, an archive restored from
elsewhere, crops "moved" to another disk) would make *inside* mean *anywhere*: the clean-up of a
killed command would delete what it finds there. So nothing under the workspace is followed:

- :func:`check_layout` walks every entry facerec manages with ``lstat`` semantics before a
  command reads or writes, and stops the command with one line naming the first link, FIFO,
  socket or device (or a managed top-level name of the wrong kind: ``crops`` a file; or a file
  changed in place, the gallery's SQLite database, with a second hard link, as ``cp -al``
  backups make), exit 2, before anything is changed. Other entries of the wrong kind deeper down (a stray file in
  ``crops/``) are not dangerous; they are a writer's to quarantine (:mod:`facerec.workspace.recovery`).
- The listings (:func:`real_folders`, :func:`real_files`) never follow links, and every deletion,
  rename and folder creation goes through :func:`unlink_inside`, :func:`rmtree_inside`,
  :func:`rename_inside` and :func:`write_inside`, which open the path's folders one at a time
  from the workspace with ``O_NOFOLLOW`` and act relative to that descriptor: a folder swapped
  for a link between the check and the deletion (a race) makes the operation fail, never follow.

The workspace folder itself may be reached through a link (``-w`` is the user's choice); what is
inside it may not. Entries facerec does not manage (a user's notes beside ``workspace.json``) are
neither checked nor touched.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
from pathlib import Path

from facerec.core.errors import WorkspaceError

# Files facerec writes at the top of a workspace, and the folders whose whole content is its own.
FILES = ("workspace.json", "erasure.key", "api-keys.json", "train-state.pt", ".lock", ".demo")
IN_PLACE = "meta.sqlite"  # SQLite writes its files in place; everything else is written anew and renamed
FOLDERS = ("models", "gallery", "gallery.rebuild", "gallery.old", "gallery.staging", "journal", "crops", "replay",
           "replay.staging", "replay.old", "synthetic-data", "quarantine")


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
    return f"is a {kind} where facerec keeps a {want}"


def _lstat_kind(path: Path) -> str | None:
    try:
        return _kind(os.lstat(path).st_mode)
    except FileNotFoundError:
        return None
    except OSError as err:  # a name too long, a permission problem: not a layout facerec can use
        raise WorkspaceError(f"{path} cannot be examined ({err.strerror})") from None


_checked: dict[str, tuple] = {}  # workspace -> the stamp it last passed check_layout with


def stamp(root: str | os.PathLike) -> tuple:
    """A cheap fingerprint of the workspace's managed entries: the ``lstat`` (kind, inode, size,
    modification and change times, links) of each top-level managed name and of each entry one
    level inside every managed folder (two for ``quarantine``). Any entry added, removed,
    renamed or replaced where facerec looks changes its folder's times, and a new hard link
    changes a file's, so an unchanged stamp means an unchanged layout: a long-running server
    checks a workspace of thousands of people in milliseconds, not a walk of every crop."""
    found = []
    for name in (*FILES, *FOLDERS):
        path = os.path.join(root, name)
        found.append(_stat_key(path))
        depth = 2 if name == "quarantine" else 1
        stack = [(path, 0)] if found[-1] and stat.S_ISDIR(found[-1][0]) else []
        while stack:
            folder, level = stack.pop()
            with contextlib.suppress(OSError), os.scandir(folder) as listed:
                for entry in listed:
                    info = entry.stat(follow_symlinks=False)
                    found.append((entry.name, info.st_mode, info.st_ino, info.st_size, info.st_mtime_ns,
                                  info.st_ctime_ns, info.st_nlink))
                    if level + 1 < depth and stat.S_ISDIR(info.st_mode):
                        stack.append((entry.path, level + 1))
    return tuple(found)


def _stat_key(path: str) -> tuple | None:
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return info.st_mode, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_nlink


def check_layout(root: str | os.PathLike) -> None:
    """Raise :class:`LayoutError` for the first managed entry of the workspace at ``root`` that is
    a link or a special file, or a managed top-level name of the wrong kind. A missing workspace
    or entry is not an error. A workspace whose :func:`stamp` has not changed since it last
    passed is not walked again."""
    root = Path(root)
    if not root.is_dir():
        return
    key, now = os.path.realpath(root), stamp(root)  # taken first: a change during the walk shows next time
    if _checked.get(key) == now:
        return
    _walk(root)
    _checked[key] = now


def _walk(root: Path) -> None:
    for names, want in ((FILES, "file"), (FOLDERS, "folder")):
        for name in names:
            kind = _lstat_kind(root / name)
            if kind is not None and (problem := _problem(kind, want)):
                raise LayoutError(root / name, problem)
    for name in FOLDERS:
        stack = [root / name] if _lstat_kind(root / name) == "folder" else []
        while stack:
            folder = stack.pop()
            for entry in _scan(folder):
                kind = _entry_kind(entry)
                if kind in ("link", "special"):
                    raise LayoutError(folder / entry.name, _problem(kind, "file"))
                if kind == "folder":
                    stack.append(folder / entry.name)
                elif entry.name.startswith(IN_PLACE) and (links := entry.stat(follow_symlinks=False).st_nlink) > 1:
                    raise LayoutError(folder / entry.name, f"has {links} hard links, and facerec changes it in place, "
                                                           f"which would change the other copies too (copy it instead)")


def require_folder(root: str | os.PathLike) -> None:
    """A workspace path that exists must be a folder (``-w notes.txt`` is refused, not written to)."""
    if os.path.exists(root) and not os.path.isdir(root):
        raise WorkspaceError(f"workspace {root} is a file, not a folder; name a folder with -w")


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
    return [parent / name for name, kind in entries(parent) if kind == "folder"]


def real_files(parent: Path, follow: bool = False) -> list[Path]:
    """The regular files directly in ``parent`` (never links), sorted by name; none when
    ``parent`` is missing or is itself a link (unless ``follow``: the workspace folder itself)."""
    return [parent / name for name, kind in entries(parent, follow=follow) if kind == "file"]


def is_real_folder(path: Path) -> bool:
    return _lstat_kind(path) == "folder"


# -- changes that never follow a link ------------------------------------------------------------
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


@contextlib.contextmanager
def _parent(root: Path, path: Path, create: bool = False):
    """``(descriptor of path's folder, path's last name)``, the folder opened from ``root`` one
    component at a time with ``O_NOFOLLOW`` (made when missing, with ``create``)."""
    try:
        parts = Path(path).relative_to(root).parts
    except ValueError:
        raise WorkspaceError(f"{path} is outside the workspace {root}; facerec changes nothing there") from None
    if not parts or any(p in ("", ".", "..") for p in parts):
        raise WorkspaceError(f"{path} does not name an entry inside the workspace {root}")
    fd = os.open(root, _DIRECTORY)
    try:
        for i, part in enumerate(parts[:-1]):
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, dir_fd=fd)
            try:
                inner = os.open(part, _DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as err:
                where = Path(root, *parts[:i + 1])
                if err.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise LayoutError(where, "is a symbolic link or not a folder") from None
                raise
            os.close(fd)
            fd = inner
        yield fd, parts[-1]
    finally:
        os.close(fd)


def unlink_inside(root: Path, path: Path) -> None:
    """Delete the file (or link) ``path`` inside ``root``; a missing one is fine."""
    with _parent(root, path) as (fd, name), contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=fd)


def rmtree_inside(root: Path, path: Path) -> None:
    """Delete the folder ``path`` inside ``root`` and everything in it (``shutil.rmtree`` relative
    to a descriptor: it refuses a link at ``path`` and follows none inside); a missing one is fine."""
    with _parent(root, path) as (fd, name):
        try:
            kind = _kind(os.lstat(name, dir_fd=fd).st_mode)
        except FileNotFoundError:
            return
        if kind != "folder":
            raise LayoutError(Path(path), _problem(kind, "folder"))
        shutil.rmtree(name, dir_fd=fd)


def rename_inside(root: Path, source: Path, dest: Path) -> None:
    """Move ``source`` to ``dest``, both inside ``root`` (``dest``'s folders made as needed)."""
    with _parent(root, source) as (src_fd, src_name), _parent(root, dest, create=True) as (dst_fd, dst_name):
        os.rename(src_name, dst_name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)


def remove_if_empty(root: Path, folder: Path) -> None:
    """Delete ``folder`` inside ``root`` if it is an empty real folder."""
    with _parent(root, folder) as (fd, name), contextlib.suppress(OSError):
        os.rmdir(name, dir_fd=fd)  # fails on a link, a file, or a folder with anything in it


def write_inside(root: Path, path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` inside ``root`` as :func:`facerec.io.atomic_write_bytes` does (a
    temporary file beside it, flushed to disk, renamed over it), with every folder on the way
    opened without following a link (and made when missing)."""
    with _parent(root, path, create=True) as (fd, name):
        tmp = f".{name}.{secrets.token_hex(4)}.tmp"  # the name clean-up recognises as a leftover
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=fd)
        try:
            with os.fdopen(out, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.rename(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=fd)
            raise


def entries(folder: Path, sort: bool = True, follow: bool = False) -> list[tuple[str, str]]:
    """``(name, kind)`` of each entry of ``folder`` (kind: folder, file, link or special), never
    following a link; none when ``folder`` is missing or is itself a link (unless ``follow``)."""
    try:
        fd = os.open(folder, _DIRECTORY | (0 if follow else os.O_NOFOLLOW))  # a link: ELOOP
        try:
            with os.scandir(fd) as found:  # lists a duplicate of fd
                listed = [(e.name, _entry_kind(e)) for e in found]
        finally:
            os.close(fd)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as err:
        if err.errno == errno.ELOOP:
            return []
        raise WorkspaceError(f"{folder} cannot be listed ({err.strerror})") from None
    return sorted(listed) if sort else listed
