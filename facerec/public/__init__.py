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
``remove`` return that report as a dict. :class:`Session` keeps a workspace open across calls
(the model loaded once); the CLI and ``facerec serve`` are built on it. Errors a caller can cause raise
:class:`facerec.core.errors.FaceRecError` with a one-line message. Each call opens the workspace
and takes the writer lock when it changes something, so several processes may share a workspace.
"""

from __future__ import annotations

import os

import numpy as np

from facerec.public.results import (Enrollment, Face, ImageResult, Match, Recognition, Verification,
                                    WorkspaceInfo, to_dict)
from facerec.public.session import Session
from facerec.recognition.enrollment import nothing_enrolled
from facerec.recognition.pipeline import image_label
from facerec.workspace.workspace import Workspace
from facerec.workspace.writer import writing

__all__ = ["open_workspace", "enroll", "recognize", "verify", "embed", "people", "remove", "calibrate", "forget",
           "Session", "to_dict", "WorkspaceInfo", "Enrollment", "Recognition", "ImageResult", "Face", "Match",
           "Verification"]

Image = str | os.PathLike | np.ndarray


def _images(images) -> list:
    return [images] if isinstance(images, (str, os.PathLike, np.ndarray)) else list(images)


def open_workspace(workspace: str | os.PathLike | None = None, *, create: bool = True) -> WorkspaceInfo:
    """The workspace at ``workspace``; with ``create``, a new one on the shipped model if none is there."""
    session = Session(workspace, detector="aligned", device="cpu")
    if create and not Workspace(session.root).exists():
        with writing(session.root, create=True, seed=True):
            pass
    return session.info()


def enroll(name: str, images, *, workspace=None, detector: str = "haar", multi_face: str = "dominant",
           device: str | None = None) -> Enrollment:
    """Enroll ``name`` from one image or several (paths or RGB arrays). ``detector="aligned"``
    takes the images as 112x112 face crops. Raises FaceRecError when nothing could be enrolled."""
    images = _images(images)
    labels = [image_label(x, i) for i, x in enumerate(images)]
    result = Session(workspace, detector=detector, device=device).enroll({name: (images, labels)},
                                                                        multi_face=multi_face)
    if (error := nothing_enrolled(to_dict(result))) is not None:
        raise error
    return result


def recognize(images, *, workspace=None, detector: str = "haar", top_k: int = 1, device: str | None = None):
    """Every face in an image (an :class:`ImageResult`), or in each of a list of images (a list)."""
    single = isinstance(images, (str, os.PathLike, np.ndarray))
    results = Session(workspace, detector=detector, device=device).recognize(_images(images), top_k=top_k).results
    return results[0] if single else results


def verify(image_a: Image, image_b: Image, *, workspace=None, detector: str = "haar",
           device: str | None = None) -> Verification:
    """Whether the largest faces of two images are the same person, at the workspace's threshold."""
    return Session(workspace, detector=detector, device=device).verify(image_a, image_b)


def embed(image: Image, *, workspace=None, detector: str = "haar", device: str | None = None) -> np.ndarray:
    """The unit embedding ``(d,)`` of an image's largest face under the workspace's model
    (``detector="aligned"``: the image is a face crop). Raises FaceRecError when there is no face."""
    return Session(workspace, detector=detector, device=device).embed(image)


def people(*, workspace=None) -> dict[str, int]:
    """Enrolled people with their image counts."""
    return Session(workspace).people()


def remove(name: str, *, workspace=None) -> dict:
    """Remove ``name`` from the gallery and the stored crops (not from the model: see :func:`forget`)."""
    return Session(workspace, detector="aligned").remove(name)


def calibrate(far: float = 1e-3, *, workspace=None, strangers: str | os.PathLike | None = None,
              detector: str = "haar") -> dict:
    """Set the workspace's open-set threshold at ``far``: on the enrolled people, or with
    ``strangers`` (a folder per person of people nobody enrolled) as the rate a stranger is
    accepted as anyone."""
    return Session(workspace, detector=detector).calibrate(far, strangers=strangers)


def forget(names, *, workspace=None, method: str = "gs-lora", settings: list[str] = (), steps: int | None = None,
           seed: int = 0, device: str | None = None, show_progress: bool = False) -> dict:
    """Erase people from the model (GS-LoRA by default), the gallery and the stored crops, in one
    transaction; returns the forget report (``facerec forget --json``). ``settings``: GS-LoRA's
    ``KEY=VALUE`` options (``forgetting.gslora.GSLoRAConfig``)."""
    from forgetting.request import ForgetRequest

    request = ForgetRequest.build(names, method=method, settings=settings, steps=steps, seed=seed)
    return Session(workspace, device=device).forget(request, show_progress=show_progress)
