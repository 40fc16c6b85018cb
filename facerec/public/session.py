"""One workspace opened for a run of calls: the road every front end takes to the library.

The module functions of :mod:`facerec.public` open a :class:`Session` per call, each CLI command
opens one (``facerec.cli.options.command_session``), and ``facerec serve`` keeps one for its
lifetime (``facerec.server.state.Engine`` is a Session with thread locks, keys and jobs on top).
So a recognition, an enroll or a forget is the same code, with the same report, whichever way it
comes in: the ``--json`` of a command, the server's answer and the API's dataclass agree by
construction.

A session chooses the detector, device and recognizer once, loads the model on first use and
loads it again only when the workspace's model or threshold changed (a forget or a calibrate, by
this process or any other). Every change takes the workspace's writer lock
(``workspace.writer.writing``), whose entry finishes or rolls back an interrupted command once.
"""

from __future__ import annotations

import copy
import os
import threading
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from facerec.core.errors import FaceRecError
from facerec.core.names import validate_name
from facerec.public.results import Enrollment, Recognition, Verification, WorkspaceInfo, recognition_of
from facerec.workspace.workspace import Workspace, resolve_workspace_path
from facerec.workspace.writer import enrolled_people, settle, writing


class Session:
    """``Session(workspace, detector="haar", device=None)``; see the module docstring.

    ``recognizer``: embed with this ArcFace-layout ONNX file instead of the workspace's model.
    ``max_pixels``: refuse larger images (the server's upload limit). ``onnx_reads``: recognize,
    verify and embed through the workspace's ONNX copy when it has one (no torch to import).
    """

    def __init__(self, workspace: str | os.PathLike | None = None, *, detector: str = "haar",
                 device: str | None = None, recognizer: str | None = None, max_pixels: int | None = None,
                 onnx_reads: bool = True):
        self.root = Path(resolve_workspace_path(workspace))
        self.detector, self.device, self.recognizer = detector, device, recognizer
        self.max_pixels, self.onnx_reads = max_pixels, onnx_reads
        self._reload = threading.Lock()
        self._pipes: dict[bool, tuple] = {}  # read_only -> (pipeline, the (model, threshold) it was loaded for)

    # -- what every call stands on --------------------------------------------------------------
    def pipeline(self, aligned: bool = False, read_only: bool = False):
        """The workspace's ``FacePipeline``, reloaded when its model or threshold changed;
        ``aligned`` takes the images as 112x112 face crops."""
        from facerec.recognition.pipeline import FacePipeline

        settle(self.root)
        ws = Workspace(self.root)
        manifest = ws.manifest() if ws.exists() else None
        state = (manifest["model"]["version"], manifest.get("recognition")) if manifest else None
        read_only = read_only and self.onnx_reads
        with self._reload:
            pipe, loaded_for = self._pipes.get(read_only, (None, None))
            if pipe is None or (state is not None and state != loaded_for):
                pipe = FacePipeline(ws, detector=self.detector, device=self.device, recognizer=self.recognizer,
                                    read_only=read_only)
                if self.max_pixels is not None:
                    pipe.max_pixels = self.max_pixels
                self._pipes[read_only] = (pipe, state)
        if aligned and self.detector != "aligned":
            from facerec.detect import make_detector

            pipe = copy.copy(pipe)
            pipe.detect = make_detector("aligned")
        return pipe

    def writing(self, create: bool = False, seed: bool = False, rebuilding: bool = False):
        """The workspace's writer lock; yields the recovered workspace. ``seed``: a workspace that
        does not exist yet starts from the shipped model."""
        return writing(self.root, create=create, seed=seed, rebuilding=rebuilding)

    def computing(self):
        """Held around model work; a server serialises it (two forward passes only fight over the cores)."""
        return nullcontext()

    @property
    def model_version(self) -> str | None:
        """The version of the model loaded last (None before the first call)."""
        loaded = [pipe for pipe, _ in self._pipes.values()]
        return loaded[-1].model_version if loaded else None

    # -- reads ----------------------------------------------------------------------------------
    def info(self) -> WorkspaceInfo:
        pipe = self.pipeline(read_only=True)
        return WorkspaceInfo(str(self.root), pipe.ws.manifest()["model"]["name"], pipe.model_version,
                             len(enrolled_people(self.root)), pipe.threshold, pipe.calibrated)

    def people(self) -> dict[str, int]:
        """Enrolled people with their image counts (an interrupted forget is finished first)."""
        Workspace(self.root).manifest()  # a missing or newer workspace is an error, not "no one"
        return enrolled_people(self.root)

    def recognize(self, images: list, *, top_k: int = 1, aligned: bool = False, progress=None) -> Recognition:
        """Every face of every image (paths or RGB arrays) against the gallery."""
        from facerec.recognition.pipeline import recognize

        with self.computing():
            return recognition_of(recognize(self.pipeline(aligned, read_only=True), images, top_k=top_k,
                                            progress=progress))

    def evaluate(self, people: dict[str, list[str]], progress=None) -> dict:
        """Rank-1 and unknown rate of labelled images (``{true name: paths}``) against the gallery."""
        from facerec.recognition.pipeline import evaluate_recognition

        with self.computing():
            return evaluate_recognition(self.pipeline(read_only=True), people, progress=progress)

    def verify(self, image_a, image_b, *, aligned: bool = False) -> Verification:
        """Whether the largest faces of two images are the same person, at the workspace's threshold."""
        from facerec.recognition.pipeline import verify

        with self.computing():
            return Verification(**verify(self.pipeline(aligned, read_only=True), image_a, image_b))

    def embed(self, image, *, aligned: bool = False) -> np.ndarray:
        """The unit embedding of an image's largest face. Raises FaceRecError when there is none."""
        from facerec.recognition.pipeline import largest_face

        with self.computing():
            pipe = self.pipeline(aligned, read_only=True)
            found = pipe.read_faces(image)
            if found.status != "ok":
                raise FaceRecError(f"{found.path}: {found.status}")
            return pipe.embed([found.crops[largest_face(found)]])[0]

    # -- changes (each under the writer lock) ----------------------------------------------------
    def enroll(self, people: dict, *, multi_face: str = "dominant", aligned: bool = False, progress=None,
               rejected: list[str] = ()) -> Enrollment:
        """Enroll ``{name: images}`` (or ``{name: (images, labels)}``); a problem with one image
        never stops the batch. Nothing enrolled is reported, not raised (see ``nothing_enrolled``)."""
        from facerec.detect import check_multi_face_rule
        from facerec.recognition.enrollment import enroll_people, enroll_summary

        for name in people:
            validate_name(name)  # before anything is written
        check_multi_face_rule(multi_face)
        with self.writing(seed=True), self.computing():
            reports = enroll_people(self.pipeline(aligned), people, progress=progress, multi_face=multi_face)
        return Enrollment(**enroll_summary(reports, rejected))

    def remove(self, name: str) -> dict:
        """Remove ``name`` from the gallery and the stored crops (not from the model: :meth:`forget`)."""
        from facerec.recognition.enrollment import remove

        validate_name(name)
        with self.writing(), self.computing():
            return remove(self.pipeline(), name)

    def reindex(self, restore_quarantined: bool = False) -> dict:
        """Rebuild the gallery from the stored crops with the workspace's model."""
        from facerec.recognition.enrollment import reindex

        with self.writing(rebuilding=True), self.computing():
            return reindex(self.pipeline(), restore_quarantined=restore_quarantined)

    def calibrate(self, far: float = 1e-3, *, strangers: str | None = None, pairs: str | None = None,
                  root: str | None = None, progress=None) -> dict:
        """Set the open-set threshold at ``far`` (``recognition.calibration.calibrate``)."""
        from facerec.recognition.calibration import calibrate

        with self.writing(seed=True), self.computing():
            return calibrate(self.pipeline(), far=far, pairs_file=pairs, root=root,
                             strangers=str(strangers) if strangers else None, progress=progress)

    def forget(self, request, *, show_progress: bool = False) -> dict:
        """Run one ``forgetting.request.ForgetRequest``: model, gallery, crops and ledger in one
        transaction. Not under :meth:`computing`: reads go on with the old model until the commit."""
        from forgetting.request import run_request

        with self.writing(seed=True) as ws:
            return run_request(ws, request, device=self.device, show_progress=show_progress)
