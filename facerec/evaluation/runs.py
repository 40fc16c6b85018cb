"""Evaluation runs that embed images with a workspace's model: LFW-style verification and
closed/open-set identification. The metrics themselves are pure functions in ``verification.py``
and ``evaluation.py``; this module reads images, embeds them and writes reports and plots.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facerec.data.folder import list_identity_files, read_dataset_image
from facerec.core.errors import DataError, FaceRecError
from facerec.data.pairs import fold_people, pairs_in_folds, read_pairs
from facerec.recognition.pipeline import FacePipeline, central_face_of
from facerec.metrics import contiguous_folds, plot_roc, roc_curve, verification_report


def embed_crops(pipe: FacePipeline, crops: np.ndarray, flip: bool = False) -> np.ndarray:
    """Unit embeddings of aligned RGB crops; with ``flip`` the sum of the crop's and its mirror's."""
    emb = pipe.embed(crops)
    if flip:
        emb = emb + pipe.embed(np.ascontiguousarray(crops[:, :, ::-1]))
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return emb


def _crop_of(pipe: FacePipeline, path: Path) -> tuple[np.ndarray | None, str]:
    """The central face's aligned crop, or the whole image resized when no face is found;
    ``None`` when the file cannot be decoded."""
    found = pipe.read_faces(path)
    if found.crops:
        return found.crops[central_face_of(found)], "face"
    if found.status.startswith("unreadable"):
        return None, found.status
    return read_dataset_image(path.parent, path.name), "no face"


def _identification_crop(pipe: FacePipeline, root: str, rel: str, aligned: bool) -> np.ndarray | None:
    if not aligned:
        return _crop_of(pipe, Path(root) / rel)[0]
    try:
        return read_dataset_image(root, rel)
    except DataError:
        return None


def run_verification(pipe: FacePipeline, *, pairs_file: str | None = None, root: str | None = None,
                     bin_path: str | None = None, flip: bool = False, folds: int = 10,
                     out: str | None = None, skip_unreadable: bool = False, only_folds=None,
                     progress=None) -> dict:
    """10-fold accuracy (thresholds from the other folds), TAR at FAR 1e-3/1e-2, optional ROC PNG.

    ``only_folds`` (1-based, of the listing's 10 folds) keeps only those folds' pairs, which are
    then split into ``folds`` contiguous sub-folds: ``only_folds=[1]`` is the person-disjoint
    protocol for a model trained without fold 1's people (600 pairs, 10 sub-folds of 60).

    Every pair is scored: a pair image that is missing is an error; one where no face is found
    is embedded whole (and counted), so the protocol's folds stay intact. An image that exists but
    cannot be decoded is an error too, unless ``skip_unreadable``: then its pairs are left out of
    their folds and listed in the report.
    """
    if bool(pairs_file) == bool(bin_path):
        raise FaceRecError("give either --pairs FILE --root DIR or --bin FILE")
    no_face = 0
    if bin_path:
        from facerec.data.insightface_formats import decode_images, load_bin

        images, same = load_bin(bin_path)  # decoded batch by batch: memory stays bounded on any set
        emb = np.concatenate([embed_crops(pipe, decode_images(images[i:i + 256], name=str(bin_path), start=i), flip)
                              for i in range(0, len(images), 256)])
        if progress:
            progress(len(images))
        scores = np.einsum("nd,nd->n", emb[0::2], emb[1::2])  # pairs are interleaved
        source = {"bin": str(bin_path)}
    else:
        if not root:
            raise FaceRecError("--pairs needs --root (the image folder)")
        pairs = read_pairs(pairs_file, root)
        if only_folds:
            pairs = pairs_in_folds(pairs, only_folds)
        unique = sorted({p for a, b, _ in pairs for p in (a, b)})
        crops, unreadable = {}, {}
        for path in unique:
            crop, status = _crop_of(pipe, path)
            if crop is None:
                unreadable[path] = status
                if not skip_unreadable:
                    raise FaceRecError(f"pair image {path} is {status}; fix it, or pass --skip-unreadable to leave "
                                       f"its pairs out (they are then listed in the report)")
            else:
                crops[path] = crop
            no_face += status == "no face"
            if progress:
                progress(1)
        kept = [i for i, (a, b, _) in enumerate(pairs) if a in crops and b in crops]
        kept_set = set(kept)
        fold_of = contiguous_folds(len(pairs), folds)[kept]
        order = list(crops)
        if not order:
            raise FaceRecError("no pair image could be read")
        emb = embed_crops(pipe, np.stack([crops[p] for p in order]), flip)
        index = {p: i for i, p in enumerate(order)}
        first = np.fromiter((index[pairs[i][0]] for i in kept), np.int64, len(kept))
        second = np.fromiter((index[pairs[i][1]] for i in kept), np.int64, len(kept))
        scores = np.concatenate([np.einsum("nd,nd->n", emb[first[i:i + 65536]], emb[second[i:i + 65536]])
                                 for i in range(0, len(kept), 65536)] or [np.zeros(0)])  # in bounded blocks
        same = np.fromiter((pairs[i][2] for i in kept), bool, len(kept))
        source = {"pairs_file": str(pairs_file), "root": str(root), "only_folds": sorted(only_folds or []),
                  "images": len(unique),
                  "no_face_whole_image": no_face, "pairs_listed": len(pairs),
                  "pairs_skipped": [f"{pairs[i][0].name} {pairs[i][1].name}" for i in range(len(pairs)) if i not in kept_set]}
    report = {**source, "flip": flip, **verification_report(scores, same, folds, fold_of if not bin_path else None)}
    if out:
        fpr, tpr = roc_curve(scores, same)
        path = Path(out) / "roc.png"
        plot_roc({f"{pipe.model_version} (acc {report['accuracy_mean']:.3f})": (fpr, tpr)}, path,
                 title=f"ROC, {Path(bin_path or pairs_file).name}")
        report["roc_png"] = str(path)
    return report


def select_people(listing: dict[str, list[str]], *, pairs_file: str | None = None, pairs_root: str | None = None,
                  only_folds=None, exclude=()) -> dict[str, list[str]]:
    """The people of ``listing`` in the pairs listing's ``only_folds`` (when given), less ``exclude``."""
    keep = set(listing)
    if only_folds:
        if not pairs_file:
            raise FaceRecError("--fold needs --pairs (the listing whose folds name the people)")
        keep &= fold_people(read_pairs(pairs_file, pairs_root), only_folds)
    keep -= set(exclude)
    return {p: f for p, f in listing.items() if p in keep}


def run_identification(pipe: FacePipeline, root: str, *, gallery_per_person: int = 1, fpir: float = 0.01,
                       max_people: int | None = None, aligned: bool = True, people=None,
                       progress=None) -> dict:
    """Closed-set rank-1/rank-5 and open-set TPIR at FPIR on a folder dataset (faces are crops).

    People with more than ``gallery_per_person`` images are enrolled from their first images and
    probed with the rest (mated probes); people with no more than that many are never enrolled
    and probe as distractors (LFW's one-image people). Open set: the threshold lets ``fpir`` of
    distractors through; TPIR is the share of mated probes that are right at rank 1 and above it.
    Undecodable images are skipped and listed (as training does); a person left with no gallery
    image is an error. ``people`` (a function of the listing) restricts who takes part, e.g. to
    one LFW fold's people (``select_people``). Unless ``aligned``, each image's central face is
    detected and aligned as in verification.
    """
    from facerec.metrics import threshold_at_far

    listing = list_identity_files(root)
    if people is not None:
        listing = people(listing)
    enrolled = {p: f for p, f in listing.items() if len(f) > gallery_per_person}
    distractor_files = [f for p, files in listing.items() if p not in enrolled for f in files]
    if max_people is not None:
        enrolled = dict(list(enrolled.items())[:max_people])
    if len(enrolled) < 2:
        raise FaceRecError(f"{root}: identification needs at least 2 people with more than {gallery_per_person} images")
    names = list(enrolled)

    skipped: list[str] = []

    def embed_files(files: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings of the decodable files and a mask of which ones they are (the rest are skipped)."""
        out, keep = [], np.ones(len(files), bool)
        for i in range(0, len(files), 128):
            batch = []
            for j, f in enumerate(files[i:i + 128], start=i):
                crop = _identification_crop(pipe, root, f, aligned)
                if crop is None:
                    keep[j] = False
                    skipped.append(f)
                else:
                    batch.append(crop)
            if batch:
                out.append(pipe.embed(np.stack(batch)))
            if progress:
                progress(len(files[i:i + 128]))
        return (np.concatenate(out) if out else np.zeros((0, pipe.model.embedding_dim), np.float32)), keep

    gallery_files = [f for p in names for f in enrolled[p][:gallery_per_person]]
    gallery_labels = np.repeat(np.arange(len(names)), gallery_per_person)
    probe_files = [f for p in names for f in enrolled[p][gallery_per_person:]]
    probe_labels = np.array([i for i, p in enumerate(names) for _ in enrolled[p][gallery_per_person:]])
    gallery, keep = embed_files(gallery_files)
    gallery_labels = gallery_labels[keep]
    probes, keep = embed_files(probe_files)
    probe_labels = probe_labels[keep]
    distractors, _ = embed_files(distractor_files)
    missing = sorted(set(range(len(names))) - set(gallery_labels.tolist()))
    if missing:
        raise FaceRecError(f"no readable gallery image for {', '.join(names[i] for i in missing[:3])}")

    starts = np.searchsorted(gallery_labels, np.arange(len(names)))  # labels are sorted: one block per person

    def person_scores(q: np.ndarray) -> np.ndarray:  # (n, people): best image score per person
        return np.maximum.reduceat(q @ gallery.T, starts, axis=1) if len(q) else np.zeros((0, len(names)))

    mated = person_scores(probes)
    ranking = np.argsort(-mated, axis=1)
    rank_of_truth = (ranking == probe_labels[:, None]).argmax(1)
    report = {"people": len(names), "gallery_images": len(gallery), "mated_probes": len(probes),
              "distractors": len(distractors), "skipped_unreadable": skipped, "rank1": float((rank_of_truth < 1).mean()),
              "rank5": float((rank_of_truth < 5).mean())}
    if len(distractors):
        best_distractor = person_scores(distractors).max(1)
        threshold = threshold_at_far(best_distractor, fpir)
        hit = (rank_of_truth == 0) & (mated.max(1) >= threshold)
        report.update({"fpir_target": fpir, "threshold": threshold,
                       "fpir": float((best_distractor >= threshold).mean()), "tpir": float(hit.mean())})
    return report
