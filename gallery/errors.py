"""What a gallery raises: the data does not allow an operation, the disk refused a write, or the
files are damaged. Shared by every gallery store."""

from __future__ import annotations

from pathlib import Path


class GalleryError(Exception):
    """A gallery operation the data does not allow (wrong dimension or model version, unknown person)."""


class GalleryWriteError(GalleryError):
    """The gallery's files could not be written (a full disk, a read-only one). The last saved
    generation is intact; the unsaved changes are still in memory (``rollback`` drops them)."""

    def __init__(self, path: Path, problem: str):
        super().__init__(f"the gallery at {path} cannot be written ({' '.join(problem.split())}); "
                         f"nothing was changed on disk")
        self.path = path


def write_failure(err: BaseException) -> str:
    """The useful end of a write error: faiss's messages end with the system's reason in brackets."""
    text = str(err)
    return text[text.rfind("(") + 1:text.rfind(")")] if text.endswith(")") and "(" in text else \
        getattr(err, "strerror", None) or text[-200:]


class GalleryCorrupt(GalleryError):
    """The gallery's files are damaged: unreadable metadata, a missing or altered index file, or
    counts that disagree. Nothing was changed; the gallery must be rebuilt from its sources."""

    def __init__(self, path: Path, problem: str):
        problem = " ".join(problem.split())  # SQLite's reports span lines; an error is one line
        super().__init__(f"the gallery at {path} is corrupt: {problem}")
        self.path, self.problem = path, problem
