"""LFW-100: a CASIA-100-style forgetting benchmark split built from LFW, in one call.

The GS-LoRA papers (Zhao et al., CVPR 2024; GS-LoRA++, 2025) forget people of a face model
trained on CASIA-100, the 100 most photographed identities of CASIA-WebFace. LFW-100 is the same
shape from LFW, which is what this project may use: the 100 people with the most photos among
those *not* in LFW View 2 fold 1 (fold-1 people stay unseen by every training stage, so they are
the benchmark's strangers), each capped at ``cap`` photos (a seeded choice; LFW's counts run from
530 down to 13, and one person must not make up a quarter of the data).

Every photo is detected and aligned once (the face nearest the centre, five-point aligned to the
112x112 template, as the pipeline does at run time) and written as a lossless PNG crop:

    OUT/people/<person>/<photo>.png       the 100 identities (train a workspace on this folder)
    OUT/strangers/<person>/<photo>.png    up to ``strangers_per_person`` photos of each fold-1 person
    OUT/split.json                        format version, config, people, photo counts, skipped files

The folder is built beside ``OUT`` and renamed into place, so a half-built split never exists.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..detect import make_detector
from .aligned import align_files
from facerec.core.errors import DataError
from facerec.core.atomic import atomic_write_bytes, atomic_write_json, built_folder
from .folder import list_identity_files, png_bytes
from .pairs import fold_people, most_photographed, read_pairs

FORMAT_VERSION = 1


def choose_photos(listing: dict[str, list[str]], *, people: int, cap: int, exclude: set[str],
                  seed: int) -> dict[str, list[str]]:
    """The ``people`` most photographed people outside ``exclude``, at most ``cap`` photos each."""
    rng = np.random.default_rng(seed)
    chosen = {}
    for person in most_photographed(listing, people, exclude=exclude):
        files = sorted(listing[person])
        chosen[person] = sorted(rng.choice(files, cap, replace=False).tolist()) if len(files) > cap else files
    return chosen


def _write_crops(root: Path, files: list[str], dest: Path, detect, progress) -> tuple[int, list[str]]:
    """Align ``files`` (relative to ``root``) into ``dest``; returns (written, skipped)."""
    written, skipped = 0, []
    for rel, crop, found in align_files(root, files, detect, skipped):
        if not found:
            skipped.append(rel)  # no face: not a photo the benchmark can use
            continue
        target = dest / (str(Path(rel).with_suffix("")) + ".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, png_bytes(crop))
        written += 1
        if progress:
            progress(1)
    return written, skipped


def build_lfw100(lfw_images: str | Path, pairs_file: str | Path, out: str | Path, *, detector: str,
                 people: int = 100, cap: int = 30, strangers_per_person: int = 2, held_out_folds=(1,),
                 seed: int = 0, progress=None) -> dict:
    """Build the split under ``out`` (which must not exist yet); returns the ``split.json`` record."""
    lfw_images, out = Path(lfw_images), Path(out)
    if out.exists():
        raise DataError(f"{out} already exists; choose a new folder (a split is built once and kept)")
    listing = list_identity_files(lfw_images)
    unseen = fold_people(read_pairs(pairs_file, lfw_images), list(held_out_folds))
    chosen = choose_photos(listing, people=people, cap=cap, exclude=unseen, seed=seed)
    if len(chosen) < people:
        raise DataError(f"{lfw_images}: only {len(chosen)} people outside folds {list(held_out_folds)}")
    rng = np.random.default_rng([seed, 1])
    strangers = {p: sorted(rng.choice(sorted(listing[p]), min(strangers_per_person, len(listing[p])),
                                      replace=False).tolist())
                 for p in sorted(unseen) if p in listing}
    detect = make_detector(detector)
    with built_folder(out) as tmp:
        n_people, skipped = _write_crops(lfw_images, [f for files in chosen.values() for f in files],
                                         tmp / "people", detect, progress)
        n_strangers, skipped_strangers = _write_crops(lfw_images, [f for files in strangers.values() for f in files],
                                                      tmp / "strangers", detect, progress)
        record = {
            "format_version": FORMAT_VERSION, "name": f"LFW-{people}",
            "config": {"people": people, "cap": cap, "strangers_per_person": strangers_per_person,
                       "held_out_folds": list(held_out_folds), "seed": seed, "detector": detector},
            "source": {"images": str(lfw_images.resolve()), "pairs": str(Path(pairs_file).resolve())},
            "people": {p: len(files) for p, files in chosen.items()},
            "photos": n_people, "strangers": {"people": len({f.split("/")[0] for f in _done(tmp / "strangers")}),
                                              "photos": n_strangers},
            "skipped": skipped + skipped_strangers,
        }
        atomic_write_json(tmp / "split.json", record)
    return record


def _done(folder: Path) -> list[str]:
    return [f"{p.parent.name}/{p.name}" for p in folder.glob("*/*.png")] if folder.is_dir() else []
