"""The open-set threshold of a workspace: impostor scores from strangers' photos searched against
the gallery, from a pairs file, or from the enrolled people's own pairs, and the threshold at a
target FAR stored in the manifest (``facerec calibrate``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gallery import Gallery

from facerec.core.errors import DataError, FaceRecError
from facerec.data.pairs import read_pairs
from facerec.recognition.pipeline import FacePipeline, central_face_of, folder_people


def enrolled_pair_scores(gallery: Gallery) -> tuple[np.ndarray, np.ndarray, int]:
    """``(genuine, impostor, vectors)``: cosine scores over all pairs of a gallery's enrolled vectors."""
    from facerec.metrics import cross_person_scores

    _, names, vectors = gallery.export()
    labels = np.unique(names, return_inverse=True)[1]
    genuine, impostor = cross_person_scores(vectors, labels)
    return genuine, impostor, len(names)


def calibrate(pipe: FacePipeline, far: float = 1e-3, pairs_file: str | None = None, root: str | None = None,
              strangers: str | None = None, progress=None) -> dict:
    """Set the open-set threshold at ``far`` from impostor scores and store it in the workspace.

    Impostors come from ``strangers`` (a folder per person, none of them enrolled: each photo is
    searched against the gallery and its best match counts, so ``far`` is the rate at which a
    stranger is accepted as *someone*), from a ``pairs_file``, or from the enrolled people's pairs.
    The last is said plainly to be optimistic when the enrolled people were in the model's training
    data: a model separates the people it was trained on better than strangers."""
    from facerec.metrics import accept_rate, threshold_at_far

    if not 0 < far < 1:
        raise FaceRecError(f"--far must be between 0 and 1, got {far}")
    if pairs_file:
        genuine, impostor, source = _pair_scores(pipe, pairs_file, root, progress)
    else:
        gallery = pipe.open_gallery()
        try:
            genuine, impostor, count = enrolled_pair_scores(gallery)
            source = {"enrolled_vectors": count}
            if strangers:
                impostor, found = _stranger_scores(pipe, gallery, strangers, progress)
                source.update(found)
            enrolled = set(gallery.people())
        finally:
            gallery.close()
    if len(impostor) == 0:
        raise FaceRecError("no impostor scores to calibrate on: enroll at least two people, or pass --pairs "
                           "or --strangers")
    threshold = threshold_at_far(impostor, far)
    report = {"threshold": round(threshold, 6), "far_target": far, "far": accept_rate(impostor, threshold),
              "tar": accept_rate(genuine, threshold) if len(genuine) else None, "impostor_pairs": int(len(impostor)),
              "genuine_pairs": int(len(genuine)), **source}
    if len(impostor) * far < 1:
        report["warning"] = f"only {len(impostor)} impostor scores: a FAR of {far:g} cannot be resolved"
    if not pairs_file and not strangers:
        trained = enrolled & pipe.trained_people
        if trained and pipe.onnx is None:
            report["warning"] = (report.get("warning", "") + "; " if "warning" in report else "") + (f"{len(trained)} of the {len(enrolled)} enrolled people were in the model's training "
                                 "data, and their pairs are the impostors here: strangers will be accepted more often "
                                 f"than {far:g}; calibrate with --strangers DIR (photos of people neither enrolled "
                                 "nor trained on)")
    if pipe.onnx is not None:  # a threshold holds for the model it was measured with
        source["recognizer"] = pipe.onnx.version
    pipe.ws.update_manifest(lambda m: m.__setitem__("recognition", {"threshold": threshold, "far": far, **source}))
    pipe.threshold, pipe.calibrated = threshold, True
    return report


def _embed_central(pipe: FacePipeline, path) -> np.ndarray | None:
    found = pipe.read_faces(path)
    return pipe.embed([found.crops[central_face_of(found)]])[0] if found.crops else None


def _pair_scores(pipe: FacePipeline, pairs_file: str, root: str | None, progress) -> tuple[np.ndarray, np.ndarray, dict]:
    pairs = read_pairs(pairs_file, root or ".")
    cache: dict[Path, np.ndarray | None] = {}
    for path in {p for a, b, _ in pairs for p in (a, b)}:
        cache[path] = _embed_central(pipe, path)
        if progress:
            progress(1)
    scored = [(cache[a] @ cache[b], same) for a, b, same in pairs if cache[a] is not None and cache[b] is not None]
    return (np.array([s for s, same in scored if same]), np.array([s for s, same in scored if not same]),
            {"pairs": str(pairs_file), "pairs_scored": len(scored), "pairs_without_face": len(pairs) - len(scored)})


def _stranger_scores(pipe: FacePipeline, gallery: Gallery, root: str, progress) -> tuple[np.ndarray, dict]:
    """Each stranger photo's best score against the gallery (people who are enrolled are skipped)."""
    enrolled = set(gallery.people())
    if not enrolled:
        raise FaceRecError("--strangers needs an enrolled gallery to search: enroll people first")
    people = folder_people(root)
    best, faceless, skipped = [], 0, sorted(p for p in people if p in enrolled)
    for person, paths in people.items():
        for path in paths if person not in enrolled else ():
            vector = _embed_central(pipe, path)
            if vector is None:
                faceless += 1
            else:
                best.append(gallery.search_people(vector[None], 1)[0][0].score)
            if progress:
                progress(1)
    if not people:
        raise DataError(f"--strangers {root}: no person folders with images")
    return np.array(best), {"strangers": str(root), "stranger_photos": len(best), "stranger_photos_without_face": faceless,
                            "stranger_people": len(people) - len(skipped), "strangers_skipped_as_enrolled": skipped}
