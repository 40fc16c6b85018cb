"""Recognise and verify: the face pipeline over a workspace's gallery.

Pipeline per image: read -> detect every face -> align each to 112x112 -> ``model.embed`` ->
gallery search. Aligned crops of enrolled faces are kept in ``WORKSPACE/crops/<person>/`` so the
gallery can be (re)built from them when the model changes (:func:`build_gallery`); enrolling and
removing people is :mod:`facerec.recognition.enrollment`. The open-set threshold lives in the manifest
(``recognition.threshold``): a best match below it is "unknown"; ``facerec calibrate`` sets it
(:mod:`facerec.recognition.calibration`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from gallery import Gallery

from facerec.workspace.consistency import crop_key, open_live_gallery
from facerec.data.folder import list_identity_files, read_image
from facerec.data.images import MAX_PIXELS, ImageError, image_from_array, read_image_file
from facerec.detect import Face, align_face, central_face, make_detector
from facerec.core.errors import DataError, FaceRecError
from facerec.workspace.layout import real_files, real_folders
from facerec.core.names import name_problem, validate_name
from facerec.workspace.workspace import Workspace

DEFAULT_THRESHOLD = 0.4  # cosine, for a model that carries no open-set threshold; replaced by `facerec calibrate`


def default_threshold(manifest: dict, recognizer=None) -> float:
    """An uncalibrated workspace's threshold: the one its model carries (the shipped model's is set
    for strangers against a gallery of 100 people: ``distill.evaluate.open_set_threshold``), kept
    through forgetting, which moves the forgotten people's scores, not strangers'; else
    :data:`DEFAULT_THRESHOLD`. Never the workspace model's for another recognizer (``--recognizer``)."""
    carried = manifest["model"].get("open_set", {}).get("threshold")
    return float(carried) if carried is not None and recognizer is None else DEFAULT_THRESHOLD


@dataclass
class ImageFaces:
    path: str
    status: str  # "ok", "unreadable", "no face"
    faces: list[Face] = field(default_factory=list)
    crops: list[np.ndarray] = field(default_factory=list)  # aligned RGB uint8 (112, 112, 3)
    sha256: str = ""
    size: tuple[int, int] = (0, 0)  # image width, height


class FacePipeline:
    """A workspace's model, gallery and detector, loaded once for many images."""

    max_pixels = MAX_PIXELS  # largest image read, from its header (a server may set less)

    def __init__(self, workspace: Workspace, detector: str = "haar", device: str | None = None,
                 recognizer: str | None = None, read_only: bool = False):
        """``recognizer``: an ArcFace-layout ONNX model (``facerec export --onnx``, or insightface's)
        to embed with instead of the workspace's model; the gallery is re-embedded for it.
        ``read_only``: a command that only searches (recognize, verify, embed) embeds through the
        model's ONNX copy (``Workspace.write_onnx_copy``) when there is one, without torch."""
        from facerec import pretrained
        from facerec.workspace.shipped import shipped_manifest

        self.ws = workspace
        fast = read_only and recognizer is None and device in (None, "auto", "cpu") and workspace.exists()
        manifest = workspace.manifest() if fast else None
        self.fast = _onnx_copy(workspace, manifest["model"]["version"]) if fast else None
        if self.fast is not None:
            self.model, self.device = self.fast, "cpu"
        else:
            from facerec.core.device import resolve_device

            self.device = resolve_device(device)
            if workspace.exists() or not pretrained.available():
                manifest = manifest or workspace.manifest()
                self.model = workspace.load_model(self.device) if recognizer is None else None
            else:  # no model of its own yet: the shipped one (the first writer copies it in)
                manifest = shipped_manifest()
                self.model = pretrained.load_model(self.device) if recognizer is None else None
        self.model_version = manifest["model"]["version"]
        self.trained_people = set(filter(None, manifest.get("identities") or []))  # the identity head's people
        self.onnx = None
        if recognizer is not None:
            from facerec.models.onnx import OnnxEmbedder

            self.model = self.onnx = OnnxEmbedder(recognizer)
            self.model_version = self.onnx.version
        recognition = manifest.get("recognition", {})
        calibrated = "threshold" in recognition and recognition.get("recognizer") == (self.onnx and self.onnx.version)
        self.threshold = float(recognition["threshold"]) if calibrated else default_threshold(manifest, self.onnx)
        self.calibrated = calibrated
        self.detect = make_detector(detector)

    # -- images -> crops -> embeddings ------------------------------------------------------
    def read_faces(self, path: str | Path | np.ndarray, label: str | None = None) -> ImageFaces:
        """The faces of an image file, or of an RGB numpy array (``data.images.image_from_array``)."""
        label = label or image_label(path)
        try:
            if isinstance(path, np.ndarray):
                image, raw = image_from_array(path, label, max_pixels=self.max_pixels)
            else:
                image, raw = read_image_file(path, max_pixels=self.max_pixels)
        except ImageError as err:
            return ImageFaces(label, f"unreadable: {err.reason}")
        faces = self.detect(image)
        size = (image.shape[1], image.shape[0])
        if not faces:
            return ImageFaces(label, "no face", sha256=hashlib.sha256(raw).hexdigest(), size=size)
        crops = [cv2.cvtColor(align_face(image, f), cv2.COLOR_BGR2RGB) for f in faces]
        return ImageFaces(label, "ok", faces, crops, hashlib.sha256(raw).hexdigest(), size)

    def embed(self, crops: list[np.ndarray] | np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Aligned RGB crops -> ``(n, d)`` float32 unit embeddings."""
        if self.onnx is not None or self.fast is not None:
            return self.model.embed(crops, batch_size)
        return embed_images(self.model, crops, self.device, batch_size)

    # -- gallery ----------------------------------------------------------------------------
    @property
    def gallery_store(self):
        """Where the workspace's galleries live (``workspace.galleries``: folders or PostgreSQL)."""
        from facerec.workspace.galleries import store

        return store(self.ws.root)

    def crops_dir(self, name: str) -> Path:
        return self.ws.root / "crops" / validate_name(name)

    def open_gallery(self, create: bool = False) -> Gallery:
        """The workspace's gallery, re-embedded first when the model changed. With no gallery but
        stored crops (a gallery removed as corrupt, or a first enroll killed before its gallery
        was written) it is rebuilt from the crops, which are the gallery's source."""
        galleries = self.gallery_store
        if not galleries.exists():
            if stored_people(self.ws.root / "crops"):
                rebuild_gallery(self)
            elif not create:
                raise FaceRecError(f"no one is enrolled in {self.ws.root}; run `facerec enroll` first")
            else:
                return galleries.create("gallery", self.model.embedding_dim, self.model_version)
        gallery = open_live_gallery(self.ws.root)  # checked against the stored crops too
        if gallery.model_version != self.model_version:
            gallery.close()
            rebuild_gallery(self)
            gallery = open_live_gallery(self.ws.root)
        return gallery


def embed_images(model, crops: list[np.ndarray] | np.ndarray, device, batch_size: int = 64) -> np.ndarray:
    """Aligned RGB crops -> ``(n, d)`` float32 unit embeddings under ``model``, in batches."""
    import torch

    from facerec.data.transforms import to_tensor

    with torch.no_grad():
        out = [model.embed(to_tensor(np.stack(crops[i:i + batch_size])).to(device)).cpu().numpy()
               for i in range(0, len(crops), batch_size)]
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, model.embedding_dim), np.float32)


def image_label(image, index: int | None = None) -> str:
    """How an image is named in reports: its path, or "array" ("array N": the N-th of a list)."""
    if isinstance(image, np.ndarray):
        return "array" if index is None else f"array {index}"
    return str(image)


def _onnx_copy(workspace: Workspace, version: str):
    """The ONNX copy of the workspace's model version as an embedder, or None (none, or no onnxruntime)."""
    path = workspace.onnx_copy(version)
    if not path.is_file():
        return None
    try:
        from facerec.models.onnx import OnnxEmbedder

        return OnnxEmbedder(path, normalisation=(127.5, 127.5))
    except (ImportError, FaceRecError):
        return None


def rebuild_gallery(pipe: FacePipeline, skipped: list[str] | None = None) -> int:
    """Re-embed every stored crop with the workspace's current model into a fresh gallery.

    The new gallery is built beside the old one (``gallery.rebuild``) and swapped in. Returns
    vectors added; unreadable crops are listed in ``skipped`` when given.
    """
    from facerec.workspace.erasure import complete_pending

    complete_pending(pipe.ws)  # an interrupted forget's people must not come back from their crops
    total = build_gallery(pipe, "gallery.rebuild", skipped=skipped)
    pipe.gallery_store.swap_in("gallery.rebuild")
    return total


def stored_people(crops_root: Path) -> list[Path]:
    """The crop folders of people (real folders of valid names only: a folder left by an older
    facerec under a name that cannot be stored or printed is not a person)."""
    return [p for p in real_folders(crops_root) if not name_problem(p.name)]


def build_gallery(pipe: FacePipeline, role: str, exclude: set[str] = frozenset(), progress=None,
                  skipped: list[str] | None = None) -> int:
    """Embed the stored crops of everyone but ``exclude`` with ``pipe``'s model into a new gallery
    in ``role`` (``gallery.staging`` or ``gallery.rebuild``; replaced if present). Returns the number
    of vectors. A crop that cannot be read is left out (listed in ``skipped`` when given) rather
    than stopping the rebuild."""
    gallery = pipe.gallery_store.create(role, pipe.model.embedding_dim, pipe.model_version)
    total = 0
    for person_dir in stored_people(pipe.ws.root / "crops"):
        if person_dir.name in exclude:
            continue
        files, crops = [], []
        for f in (f for f in real_files(person_dir) if crop_key(f.name)):  # what is not a crop is not read
            try:
                crops.append(read_image(f))  # not cv2.imread: it crashes on undecodable path names
                files.append(f)
            except DataError as err:
                if skipped is not None:
                    skipped.append(str(err))
        if not files:
            continue
        gallery.add(person_dir.name, pipe.embed(crops), image_hashes=[crop_key(f.name) for f in files],
                    sources=[f"crops/{person_dir.name}/{f.name}" for f in files], model_version=pipe.model_version)
        total += len(files)
        if progress:
            progress(len(files))
    gallery.save()
    gallery.close()
    return total


def folder_people(root: str | Path, split_part: str | None = None, workspace: Workspace | None = None,
                  rejected: list[str] | None = None) -> dict[str, list[str]]:
    """``{person: [image paths]}`` of a folder-per-person tree (for ``enroll --folder``).

    With ``split_part`` ("train"/"test"), only the files the workspace's recorded split puts there.
    Folders whose names are not valid person names are left out (listed in ``rejected``).
    """
    people = list_identity_files(root, rejected)
    if split_part is not None:
        part = getattr(workspace.split(), split_part)
        keep = {p: set(files) for p, files in part.items()}  # one set per person, not one per file
        people = {p: [f for f in files if f in keep.get(p, ())] for p, files in people.items()}
        people = {p: files for p, files in people.items() if files}
        if not people:
            raise DataError(f"no file of {root} is in the workspace's {split_part} split")
    return {person: [str(Path(root) / f) for f in files] for person, files in people.items()}


def recognize(pipe: FacePipeline, image_paths: list, top_k: int = 1, progress=None) -> dict:
    """Every face in every image (paths, or RGB numpy arrays): box, identity (or "unknown") and
    score, plus the top-k people."""
    gallery = pipe.open_gallery()
    results = []
    try:
        for i, path in enumerate(image_paths):
            found = pipe.read_faces(path, image_label(path, i))
            entry = {"image": found.path, "status": found.status, "faces": []}
            if found.crops:
                embeddings = pipe.embed(found.crops)
                for face, matches in zip(found.faces, _top_people(gallery, embeddings, top_k)):
                    best = matches[0] if matches else None
                    known = best is not None and best["score"] >= pipe.threshold
                    entry["faces"].append({
                        "box": [round(v, 1) for v in face.box],
                        "identity": best["identity"] if known else "unknown",
                        "score": best["score"] if best else None,
                        "candidates": matches,
                    })
            results.append(entry)
            if progress:
                progress(1)
    finally:
        gallery.close()
    return {"results": results, "threshold": pipe.threshold, "calibrated": pipe.calibrated}


def _top_people(gallery: Gallery, embeddings: np.ndarray, k: int) -> list[list[dict]]:
    """The ``k`` best distinct people per embedding (``Gallery.search_people``), as reports print them."""
    return [[{"identity": m.identity, "score": round(m.score, 4)} for m in row]
            for row in gallery.search_people(embeddings, k)]


def central_face_of(found: ImageFaces) -> int:
    """Index of the face nearest the image centre (the labelled person in dataset photos)."""
    return central_face(found.faces, *found.size)


def largest_face(found: ImageFaces) -> int:
    """Index of the largest face found (the one ``verify`` and ``embed`` compare)."""
    return int(np.argmax([f.box[2] * f.box[3] for f in found.faces]))


def verify(pipe: FacePipeline, image_a: str, image_b: str) -> dict:
    """Same person or not: cosine of the largest face in each image against the threshold."""
    embeddings, notes = [], []
    for i, path in enumerate((image_a, image_b)):
        found = pipe.read_faces(path, image_label(path, i))
        if found.status != "ok":
            raise FaceRecError(f"{found.path}: {found.status}")
        pick = largest_face(found)
        if len(found.faces) > 1:
            notes.append(f"{found.path}: {len(found.faces)} faces, compared the largest")
        embeddings.append(pipe.embed([found.crops[pick]])[0])
    score = float(embeddings[0] @ embeddings[1])
    return {"same": score >= pipe.threshold, "score": round(score, 4), "threshold": pipe.threshold,
            "calibrated": pipe.calibrated, "notes": notes}


def evaluate_recognition(pipe: FacePipeline, people: dict[str, list[str]], progress=None) -> dict:
    """Recognise labelled images (``{true name: paths}``) and score the answers.

    ``rank1``: the best gallery match is the right person (closed set, threshold ignored);
    ``unknown_rate``: answered "unknown" (best score under the threshold); ``open_set_accuracy``:
    right person and above the threshold. Each image's face is its central face.
    """
    gallery = pipe.open_gallery()
    right = unknown = total = no_face = accepted_right = 0
    try:
        for name, paths in people.items():
            for path in paths:
                found = pipe.read_faces(path)
                if progress:
                    progress(1)
                if not found.crops:
                    no_face += 1
                    continue
                best = _top_people(gallery, pipe.embed([found.crops[central_face_of(found)]]), 1)[0]
                total += 1
                hit = bool(best) and best[0]["identity"] == name
                below = not best or best[0]["score"] < pipe.threshold
                right += hit
                unknown += below
                accepted_right += hit and not below
    finally:
        gallery.close()
    return {"images": total, "no_face": no_face, "rank1": right / total if total else float("nan"),
            "unknown_rate": unknown / total if total else float("nan"),
            "open_set_accuracy": accepted_right / total if total else float("nan"), "threshold": pipe.threshold}
