"""Changing who is enrolled: enroll, remove and reindex, each a short sequence of journaled steps.

A person's enrolled images live twice: as aligned crops (``WORKSPACE/crops/<person>/<sha256[:16]>-0.png``,
the source, kept so the gallery can be re-embedded when the model changes; each PNG carries the
nonce of the command that wrote it) and as gallery rows and vectors. Enroll writes the crops, then commits the gallery; remove commits the gallery, then
deletes the crops. Each writes a journal entry first (:mod:`facerec.workspace.journal`), so a command killed
between its two steps is finished or undone by the next writer from what the entry says, and
crops without a gallery row are never mistaken for leftovers (see :mod:`facerec.workspace.recovery`).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from gallery import Gallery, GalleryError, GalleryWriteError

from facerec.workspace import journal
from facerec.data.folder import png_bytes
from facerec.detect import check_multi_face_rule, subject_face
from facerec.core.errors import FaceRecError, NotEnrolledError
from facerec.workspace.layout import is_real_folder, write_inside
from facerec.core.names import validate_name
from facerec.recognition.pipeline import FacePipeline, image_label, rebuild_gallery, stored_people

ALREADY_ENROLLED = "already enrolled"  # the person has an image with this content: enrolling it is a no-op


def enroll(pipe: FacePipeline, name: str, image_paths: list[str], progress=None,
           labels: list[str] | None = None, multi_face: str = "dominant") -> dict:
    """Enroll ``name`` from images of them; returns per-image statuses.

    ``multi_face``: which face of a photo holding several is ``name``
    (:func:`facerec.detect.subject_face`): the one that clearly dominates (default), the largest,
    or none (``refuse``: every image must hold exactly one face). A photo without a subject is
    reported and skipped.

    ``labels``: what to report and record as each image's source instead of its path (the HTTP
    server's uploads live in temporary files; their labels are the uploaded file names).

    Idempotent: an image whose content (SHA-256) ``name`` already has is reported as
    :data:`ALREADY_ENROLLED` and not added again, so re-running an interrupted enroll adds only
    what is missing.
    """
    return enroll_people(pipe, {name: (image_paths, labels)}, progress, multi_face)[0]


def enroll_people(pipe: FacePipeline, people: dict[str, list[str] | tuple[list[str], list[str] | None]],
                  progress=None, multi_face: str = "dominant") -> list[dict]:
    """:func:`enroll` for each of ``people`` (``{name: paths}`` or ``{name: (paths, labels)}``),
    the gallery opened and checked against the crops once for all of them (per person, the check
    would list every person's crops again: quadratic in a folder of thousands of people). A
    problem with one image never stops the batch; each person is committed on their own."""
    for name in people:
        validate_name(name)
    check_multi_face_rule(multi_face)  # an unknown rule fails before anything is read
    exists = pipe.gallery_store.exists() or stored_people(pipe.ws.root / "crops")
    gallery = pipe.open_gallery() if exists else None  # a missing gallery is rebuilt from the crops first
    reports = []
    try:
        for name, paths in people.items():
            paths, labels = paths if isinstance(paths, tuple) else (paths, None)
            statuses, crops, hashes, sources = _read(pipe, gallery, name, paths, labels, progress, multi_face)
            if crops:
                gallery = gallery or pipe.open_gallery(create=True)
                _store_and_commit(pipe, gallery, name, crops, hashes, sources)
            reports.append({"name": name, "enrolled": len(crops), "images": statuses})
    finally:
        if gallery is not None:
            gallery.close()
    return reports


def _read(pipe: FacePipeline, gallery: Gallery | None, name: str, paths: list[str], labels: list[str] | None,
          progress, multi_face: str) -> tuple[list[dict], list[np.ndarray], list[str], list[str]]:
    """Per image: its status; and the crops, hashes and sources of the ones to add."""
    known = {h[:16] for h in gallery.image_hashes(name)} if gallery else set()  # 16 hex digits, as crops store
    statuses, crops, hashes, sources = [], [], [], []
    for path, label in zip(paths, labels or [image_label(p, i) for i, p in enumerate(paths)]):
        found = pipe.read_faces(path)
        subject = subject_face(found.faces, *found.size, multi_face) if found.status == "ok" else None
        if found.status == "ok" and subject is None:
            found.status = (f"{len(found.crops)} faces found; enrolling needs exactly one" if multi_face == "refuse" else
                            f"{len(found.crops)} faces found and none stands out; crop the photo to the person "
                            "or use --multi-face largest")
        if found.status == "ok" and found.sha256[:16] in known:
            found.status = ALREADY_ENROLLED
        elif found.status == "ok":
            known.add(found.sha256[:16])  # the same image twice in one command is enrolled once
            crops.append(found.crops[subject])
            hashes.append(found.sha256)
            sources.append(storable(str(label)))
        statuses.append({"image": storable(str(label)), "status": found.status, "faces": len(found.faces)})
        if progress:
            progress(1)
    return statuses, crops, hashes, sources


def _store_and_commit(pipe: FacePipeline, gallery: Gallery, name: str, crops: list[np.ndarray], hashes: list[str],
                      sources: list[str]) -> None:
    """Write the crops, then commit the gallery, under a journal entry naming each new crop and
    its bytes' hash. On a failure in between, the entry is settled here exactly as the next writer
    would settle it (``cleanup.settle_journal``): the crops the gallery did not commit go."""
    from facerec.workspace.recovery import undo_enroll

    root = pipe.ws.root
    crop_dir = pipe.crops_dir(name)
    entry = journal.Entry("enroll", name)
    files = {crop_dir / f"{digest[:16]}-0.png": png_bytes(crop, note=entry.nonce) for crop, digest in zip(crops, hashes)}
    entry.crops = {path.relative_to(root).as_posix(): journal.digest(data) for path, data in files.items()
                   if not os.path.lexists(path)}  # a crop already there (enrolled before) is not this command's to undo
    journal.begin(root, entry)
    try:
        for path, data in files.items():
            write_inside(root, path, data)
        gallery.add(name, pipe.embed(crops), image_hashes=hashes, sources=sources, model_version=pipe.model_version)
        gallery.save()
    except BaseException as err:
        with contextlib.suppress(Exception):  # the first error is the one to report; the entry stays if this fails
            gallery.rollback()  # back to what is committed, which decides what is undone
            undo_enroll(root, entry, {name: gallery.image_hashes(name)})
            journal.end(root, entry)
        if isinstance(err, GalleryError) and not isinstance(err, GalleryWriteError):
            raise FaceRecError(str(err)) from None
        raise
    journal.end(root, entry)


def storable(text: str) -> str:
    """``text`` as UTF-8 can hold it: a file name's undecodable bytes (``café`` in Latin-1, which
    Python carries as lone surrogates) shown escaped, ``caf\\xe9``, instead of failing the insert."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def remove(pipe: FacePipeline, name: str) -> dict:
    """Remove ``name``'s vectors, metadata and stored crops, quarantined ones included (not the
    model's knowledge of them: ``still_in_model`` says whether the model was trained on ``name``;
    `facerec forget` erases that).

    The gallery commit comes first, then the crops go, under a journal entry: if the command is
    killed or the deletion fails in between, the entry stays and the next writer finishes it,
    rather than leaving crops that look like damage (or that a restore would enroll again)."""
    from facerec.workspace.recovery import delete_person_crops, quarantined_people

    from facerec.workspace.recovery import person_files

    validate_name(name)
    root = pipe.ws.root
    entry = journal.begin(root, journal.Entry("remove", name, {  # what a kill after the commit leaves to go
        path.relative_to(root).as_posix(): journal.file_digest(path) or "" for path in person_files(root, name)}))
    removed, in_gallery, galleries = 0, False, pipe.gallery_store
    doomed_vectors = galleries.person_vectors([name])
    try:
        if galleries.exists():
            gallery = pipe.open_gallery()
            try:
                in_gallery = name in gallery.people()
                if in_gallery:
                    removed = gallery.remove_person(name)
                    gallery.save()
            finally:
                gallery.close()
        if not in_gallery and not is_real_folder(pipe.crops_dir(name)) and name not in quarantined_people(root):
            raise NotEnrolledError(f"{name!r} is not enrolled")
    except BaseException:
        if not in_gallery or not removed:  # nothing committed: nothing to finish
            journal.end(root, entry)
        raise
    crops = delete_person_crops(root, name)  # if this fails, the entry stays for the next writer
    journal.end(root, entry)
    report = {"name": name, "vectors_removed": removed, "crops_removed": crops,
              "still_in_model": name in pipe.ws.manifest()["identities"]}
    if (database := galleries.erasure_check([name], doomed_vectors)) is not None:
        report["database"] = database  # reclaimed, then looked for in its files
    return report


def reindex(pipe: FacePipeline, restore_quarantined: bool = False) -> dict:
    """Rebuild the gallery from the stored crops with the current model (replaces a damaged one).

    Every stored crop is enrolled, its person's gallery row present or not; a gallery row whose
    crop is gone cannot be rebuilt and is counted (``rows_without_crop``). With
    ``restore_quarantined``, quarantined crops (:mod:`facerec.workspace.recovery`) are moved back first; a
    crop that cannot be read is quarantined (and listed in ``skipped``)."""
    from facerec.workspace.recovery import quarantine_unenrolled, restore_quarantined as restore

    restored = restore(pipe.ws.root) if restore_quarantined else 0
    lost = _rows_without_crop(pipe.ws.root)
    skipped: list[str] = []
    total = rebuild_gallery(pipe, skipped)
    if skipped:
        quarantine_unenrolled(pipe.ws.root)  # unreadable: kept, but out of the way of the check
    people = len(stored_people(pipe.ws.root / "crops"))
    return {"vectors": total, "people": people, "skipped": skipped, "model_version": pipe.model_version,
            "restored_from_quarantine": restored, "rows_without_crop": lost}


def _rows_without_crop(root: Path) -> int | None:
    """Gallery rows with no stored crop (lost by a rebuild), or None when the rows are unreadable."""
    from facerec.workspace.consistency import compare
    from facerec.workspace.galleries import store

    try:
        return len(compare(root, store(root).hashes()).rows_without_crop)
    except GalleryError:
        return None


def enroll_summary(reports: list[dict], rejected: list[str] = ()) -> dict:
    """The report of an enroll of several people, from :func:`enroll`'s per-person reports."""
    problems = sum(i["status"] not in ("ok", ALREADY_ENROLLED) for r in reports for i in r["images"])
    known = sum(i["status"] == ALREADY_ENROLLED for r in reports for i in r["images"])
    return {"people": reports, "enrolled_images": sum(r["enrolled"] for r in reports), "already_enrolled": known,
            "problems": problems, "rejected_folders": list(rejected)}


def nothing_enrolled(report: dict) -> FaceRecError | None:
    """The error to raise when an enroll added nothing and found nothing already enrolled."""
    if report["enrolled_images"] == 0 and not report["already_enrolled"]:
        return FaceRecError("nothing was enrolled: no image held exactly one face")
    return None
