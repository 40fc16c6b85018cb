"""facerec's Python API: a handful of functions over a workspace, as the CLI offers them.

    import facerec

    facerec.enroll("alice", ["alice1.jpg", "alice2.jpg"], workspace="my-ws")
    result = facerec.recognize("group.jpg", workspace="my-ws")       # an ImageResult
    [face.identity for face in result.faces]                          # ["alice", "unknown"]
    facerec.verify("a.jpg", "b.jpg", workspace="my-ws").same
    facerec.forget(["alice"], workspace="my-ws")                      # model, gallery and crops

Images are file paths or numpy arrays ``(H, W, 3)`` in RGB order (as PIL, imageio and
face_recognition give them; ``data.images.image_from_array``). ``workspace`` is a directory, else
``$FACEREC_WORKSPACE``, else ``./facerec-workspace``; a workspace that does not exist yet starts
from the shipped model on its first change, as with the CLI. Results are frozen dataclasses whose
``asdict`` is what the matching command prints with ``--json``; ``forget``, ``calibrate`` and
``remove`` return that report as a dict. Errors a caller can cause raise
:class:`facerec.core.errors.FaceRecError` with a one-line message. Each call opens the workspace
and takes the writer lock when it changes something, so several processes may share a workspace.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from facerec.core.errors import FaceRecError
from facerec.core.names import validate_name
from facerec.recognition.enrollment import enroll_people, enroll_summary, nothing_enrolled
from facerec.recognition.pipeline import FacePipeline, image_label, largest_face
from facerec.recognition.calibration import calibrate as _calibrate
from facerec.recognition.pipeline import recognize as _recognize
from facerec.recognition.pipeline import verify as _verify
from facerec.workspace.workspace import Workspace, resolve_workspace_path
from facerec.workspace.writer import enrolled_people, settle, writing

Image = str | os.PathLike | np.ndarray


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


def _root(workspace) -> Path:
    return resolve_workspace_path(workspace)


def _pipeline(root: Path, detector: str, device: str | None, read_only: bool = False) -> FacePipeline:
    settle(root)
    return FacePipeline(Workspace(root), detector=detector, device=device, read_only=read_only)


def _images(images) -> list:
    return [images] if isinstance(images, (str, os.PathLike, np.ndarray)) else list(images)


def open_workspace(workspace: str | os.PathLike | None = None, *, create: bool = True) -> WorkspaceInfo:
    """The workspace at ``workspace``; with ``create``, a new one on the shipped model if none is there."""
    root = _root(workspace)
    if create and not Workspace(root).exists():
        with writing(root, create=True, seed=True):
            pass
    pipe = _pipeline(root, "aligned", "cpu", read_only=True)
    manifest = pipe.ws.manifest()
    return WorkspaceInfo(str(root), manifest["model"]["name"], pipe.model_version, len(enrolled_people(root)),
                         pipe.threshold, pipe.calibrated)


def enroll(name: str, images, *, workspace=None, detector: str = "haar", multi_face: str = "dominant",
           device: str | None = None) -> Enrollment:
    """Enroll ``name`` from one image or several (paths or RGB arrays). ``detector="aligned"``
    takes the images as 112x112 face crops. Raises FaceRecError when nothing could be enrolled."""
    validate_name(name)
    images = _images(images)
    labels = [image_label(x, i) for i, x in enumerate(images)]
    root = _root(workspace)
    with writing(root, seed=True):
        reports = enroll_people(_pipeline(root, detector, device), {name: (images, labels)}, multi_face=multi_face)
    report, _ = enroll_summary(reports)
    if (error := nothing_enrolled(report)) is not None:
        raise error
    return Enrollment(**report)


def recognize(images, *, workspace=None, detector: str = "haar", top_k: int = 1, device: str | None = None):
    """Every face in an image (an :class:`ImageResult`), or in each of a list of images (a list)."""
    single = isinstance(images, (str, os.PathLike, np.ndarray))
    report = _recognize(_pipeline(_root(workspace), detector, device, True), _images(images), top_k=top_k)
    results = [ImageResult(r["image"], r["status"],
                           [Face(f["box"], f["identity"], f["score"], [Match(**m) for m in f["candidates"]])
                            for f in r["faces"]]) for r in report["results"]]
    return results[0] if single else results


def verify(image_a: Image, image_b: Image, *, workspace=None, detector: str = "haar",
           device: str | None = None) -> Verification:
    """Whether the largest faces of two images are the same person, at the workspace's threshold."""
    return Verification(**_verify(_pipeline(_root(workspace), detector, device, True), image_a, image_b))


def embed(image: Image, *, workspace=None, detector: str = "haar", device: str | None = None) -> np.ndarray:
    """The unit embedding ``(d,)`` of an image's largest face under the workspace's model
    (``detector="aligned"``: the image is a face crop). Raises FaceRecError when there is no face."""
    pipe = _pipeline(_root(workspace), detector, device, True)
    found = pipe.read_faces(image)
    if found.status != "ok":
        raise FaceRecError(f"{found.path}: {found.status}")
    return pipe.embed([found.crops[largest_face(found)]])[0]


def people(*, workspace=None) -> dict[str, int]:
    """Enrolled people with their image counts."""
    root = _root(workspace)
    Workspace(root).manifest()  # a missing or newer workspace is an error, not "no one"
    return enrolled_people(root)


def remove(name: str, *, workspace=None) -> dict:
    """Remove ``name`` from the gallery and the stored crops (not from the model: see :func:`forget`)."""
    from facerec.recognition.enrollment import remove as _remove

    validate_name(name)
    root = _root(workspace)
    with writing(root):
        return _remove(_pipeline(root, "aligned", None), name)


def calibrate(far: float = 1e-3, *, workspace=None, strangers: str | os.PathLike | None = None,
              detector: str = "haar") -> dict:
    """Set the workspace's open-set threshold at ``far``: on the enrolled people, or with
    ``strangers`` (a folder per person of people nobody enrolled) as the rate a stranger is
    accepted as anyone."""
    root = _root(workspace)
    with writing(root, seed=True):
        return _calibrate(_pipeline(root, detector, None), far=far, strangers=str(strangers) if strangers else None)


def forget(names, *, workspace=None, method: str = "gs-lora", settings: list[str] = (), steps: int | None = None,
           seed: int = 0, device: str | None = None, show_progress: bool = False) -> dict:
    """Erase people from the model (GS-LoRA by default), the gallery and the stored crops, in one
    transaction; returns the forget report (``facerec forget --json``). ``settings``: GS-LoRA's
    ``KEY=VALUE`` options (``forgetting.gslora.GSLoRAConfig``)."""
    from forgetting.request import ForgetRequest, run_request

    request = ForgetRequest.build(names, method=method, settings=settings, steps=steps, seed=seed)
    root = _root(workspace)
    with writing(root, seed=True) as ws:
        return run_request(ws, request, device=device, show_progress=show_progress)
