"""CASIA-100 from the real CASIA-WebFace files: the GS-LoRA papers' face split, in one call.

Zhao et al. (CVPR 2024; GS-LoRA++, 2025) pre-train and forget on "CASIA-100": 100 identities of
CASIA-WebFace, 112x112 aligned, which the authors ship already split without saying how the
people or the test images were chosen (``../shared/reference/gs-lora-and-salun-spec.md`` §A4;
their checkpoints imply ~360 training images a person, which the most photographed CASIA people
have). The rule here is recorded, not guessed: the ``people`` identities with the most records in
insightface's ``faces_webface_112x112`` ``train.rec`` (ties by label), each capped at ``cap``
records (a seeded choice) when a cap is given, plus ``strangers_per_person`` records of
``strangers`` other people (seeded) as the benchmark's strangers. The workspace that trains on
``OUT/people`` records its own seeded train/test split (``data.split``), as for LFW-100.

Records are copied as they are (their JPEG bytes, no re-encoding) after each one is decoded once
to check it; a record that does not decode is skipped and listed.

    OUT/people/id<label>/<key>.jpg     the identities
    OUT/strangers/id<label>/<key>.jpg  the strangers
    OUT/split.json                     format version, rule, seed, people and counts, skipped records

Then ``facerec bench forgetting --data OUT/people --strangers OUT/strangers`` runs the protocols
on it as on LFW-100. The folder is built beside ``OUT`` and renamed into place.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facerec.core.atomic import atomic_write_bytes, atomic_write_json, built_folder
from facerec.core.errors import DataError
from .folder import is_record_file, list_identity_files, record_file
from .insightface_formats import RecordFile, decode_rgb
from .pairs import most_photographed

FORMAT_VERSION = 1


def choose(listing: dict[str, list[str]], *, people: int, cap: int | None, strangers: int,
           strangers_per_person: int, seed: int) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """``(chosen people's records, strangers' records)`` by the module's rule."""
    rng = np.random.default_rng([seed, 100])
    chosen = {}
    for person in most_photographed(listing, people):
        files = listing[person]
        chosen[person] = sorted(rng.choice(files, cap, replace=False).tolist()) if cap and len(files) > cap else files
    others = sorted(p for p in listing if p not in chosen)
    picked = sorted(rng.choice(others, min(strangers, len(others)), replace=False).tolist()) if others else []
    return chosen, {p: sorted(rng.choice(listing[p], min(strangers_per_person, len(listing[p])), replace=False).tolist())
                    for p in picked}


def _copy(records: RecordFile, rels: list[str], dest: Path, progress) -> tuple[int, list[str]]:
    written, skipped = 0, []
    for rel in rels:
        person, key = rel.split("/")
        try:
            payload = records.read(int(key)).payload
            decode_rgb(payload, name=f"record {key}", exact=True)  # checked once; copied as it is
        except DataError:
            skipped.append(rel)
            continue
        atomic_write_bytes(dest / person / f"{key}.jpg", payload)
        written += 1
        if progress:
            progress(1)
    return written, skipped


def build_casia100(rec: str | Path, out: str | Path, *, people: int = 100, cap: int | None = None,
                   strangers: int = 100, strangers_per_person: int = 2, seed: int = 0, progress=None) -> dict:
    """Build the split under ``out`` (which must not exist) from ``rec`` (``train.rec`` beside its
    ``.idx``); returns the ``split.json`` record."""
    rec, out = Path(rec), Path(out)
    if not is_record_file(rec):
        raise DataError(f"{rec}: expected insightface's train.rec (with train.idx beside it)")
    if out.exists():
        raise DataError(f"{out} already exists; choose a new folder (a split is built once and kept)")
    rejected: list[str] = []
    listing = list_identity_files(rec, rejected)
    if len(listing) < people:
        raise DataError(f"{rec} holds {len(listing)} people; CASIA-{people} needs {people}")
    chosen, strangers_chosen = choose(listing, people=people, cap=cap, strangers=strangers,
                                      strangers_per_person=strangers_per_person, seed=seed)
    records = record_file(str(rec))  # parsed once: the listing's
    with built_folder(out) as tmp:
        n_people, skipped = _copy(records, [f for files in chosen.values() for f in files], tmp / "people", progress)
        n_strangers, skipped_strangers = _copy(records, [f for files in strangers_chosen.values() for f in files],
                                               tmp / "strangers", progress)
        record = {
            "format_version": FORMAT_VERSION, "name": f"CASIA-{people}",
            "rule": "the people with the most records (ties by label), cap records each (seeded); strangers: "
                    "seeded people among the rest",
            "config": {"people": people, "cap": cap, "strangers": strangers,
                       "strangers_per_person": strangers_per_person, "seed": seed},
            "source": {"rec": str(rec.resolve()), "records": len(records.keys()), "people": len(listing)},
            "people": {p: len(files) for p, files in chosen.items()},
            "photos": n_people, "strangers": {"people": len(strangers_chosen), "photos": n_strangers},
            "skipped": rejected + skipped + skipped_strangers,
        }
        atomic_write_json(tmp / "split.json", record)
    return record
