"""The Python API's results: frozen dataclasses whose ``asdict`` (:func:`to_dict`) is exactly what
the matching CLI command prints with ``--json`` and the server answers, because all three build
them the same way (:class:`facerec.public.session.Session`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class WorkspaceInfo:
    path: str
    model: str
    model_version: str
    people: int  # enrolled
    threshold: float
    calibrated: bool


@dataclass(frozen=True)
class Match:
    identity: str
    score: float


@dataclass(frozen=True)
class Face:
    box: list[float]  # x, y, width, height in the image's pixels
    identity: str  # "unknown" below the workspace's threshold
    score: float | None
    candidates: list[Match]


@dataclass(frozen=True)
class ImageResult:
    image: str  # the path, or "array N"
    status: str  # "ok", "no face", "unreadable: ..."
    faces: list[Face]


@dataclass(frozen=True)
class Recognition:
    """``facerec recognize --json`` and ``POST /recognize``: every image's faces, at one threshold."""
    results: list[ImageResult]
    threshold: float
    calibrated: bool


@dataclass(frozen=True)
class Verification:
    same: bool
    score: float
    threshold: float
    calibrated: bool
    notes: list[str]


@dataclass(frozen=True)
class Enrollment:
    people: list[dict]  # per person: name, enrolled, and each image's status
    enrolled_images: int
    already_enrolled: int
    problems: int
    rejected_folders: list[str]


def to_dict(result) -> dict:
    """A result as the CLI's ``--json`` prints it."""
    return asdict(result)


def recognition_of(report: dict) -> Recognition:
    """The dataclass of ``recognition.pipeline.recognize``'s report."""
    return Recognition([ImageResult(r["image"], r["status"],
                                    [Face(f["box"], f["identity"], f["score"], [Match(**m) for m in f["candidates"]])
                                     for f in r["faces"]]) for r in report["results"]],
                       report["threshold"], report["calibrated"])
