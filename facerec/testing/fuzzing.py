"""Mutation fuzzing of every input parser: a seeded byte mutator and one target per parser.

A target builds a few valid seed inputs in a scratch folder, then, per case, writes a mutated
copy of one of them where the parser will look for it and runs the parser. The only acceptable
outcomes are success and the library's user errors (``FaceRecError``, ``GalleryError``) whose
message names the file; anything else is a *crash* (a bug). ``tests/test_fuzz_parsers.py`` runs a
few hundred cases per target in-process; ``tools/fuzz.py`` runs thousands in child processes,
where it can also catch segfaults, hangs and memory peaks.

Mutations follow AFL's classic deterministic set, chosen at random: bit flips, "interesting"
integers (0, -1, 2^31-1, 2^32-1, ...) written over 1, 2, 4 or 8 bytes in either byte order, byte
insertion, deletion, duplication of a block, and truncation.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

_INTERESTING = [0, 1, -1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
                0x7FFFFFFFFFFFFFFF, 605_424_337, 2_000_000_000, 1 << 40]


def mutate(data: bytes, rng: random.Random, max_ops: int = 4) -> bytes:
    """``data`` with 1 to ``max_ops`` random mutations applied."""
    out = bytearray(data)
    for _ in range(rng.randint(1, max_ops)):
        kind = rng.randrange(7)
        if not out:
            out += bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
            continue
        at = rng.randrange(len(out))
        if kind == 0:  # bit flip
            out[at] ^= 1 << rng.randrange(8)
        elif kind == 1:  # an interesting integer over 1, 2, 4 or 8 bytes
            width = rng.choice((1, 2, 4, 8))
            value = rng.choice(_INTERESTING) % (1 << (8 * width))
            out[at:at + width] = value.to_bytes(width, rng.choice(("little", "big")))
        elif kind == 2:  # random byte
            out[at] = rng.randrange(256)
        elif kind == 3:  # insert random bytes
            out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
        elif kind == 4:  # delete a block
            del out[at:at + rng.randint(1, 64)]
        elif kind == 5:  # duplicate a block
            block = out[at:at + rng.randint(1, 256)]
            out[rng.randrange(len(out) + 1):0] = block
        else:  # truncate
            del out[rng.randrange(len(out) + 1):]
    return bytes(out)


@dataclass
class Target:
    """One parser under fuzzing: ``setup(scratch)`` makes seeds, ``run(scratch, data)`` parses."""

    name: str
    setup: Callable[[Path], list[bytes]]
    run: Callable[[Path, bytes], object]
    file: str  # the file name a user error must mention


def _encoded_images() -> list[bytes]:
    import cv2

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (24, 20, 3), dtype=np.uint8)
    return [cv2.imencode(ext, image)[1].tobytes() for ext in (".png", ".jpg", ".bmp", ".ppm", ".tif", ".webp")] + \
        [cv2.imencode(".pgm", image[:, :, 0])[1].tobytes()]


def _image_setup(scratch: Path) -> list[bytes]:
    return _encoded_images()


def _image_run(scratch: Path, data: bytes):
    from facerec.data.images import read_image_file

    path = scratch / "photo.img"
    path.write_bytes(data)
    return read_image_file(path)


def _pairs_setup(scratch: Path) -> list[bytes]:
    for name, count in (("Ann_Lee", 3), ("Bo", 2)):
        (scratch / "lfw" / name).mkdir(parents=True, exist_ok=True)
        for i in range(1, count + 1):
            (scratch / "lfw" / name / f"{name}_{i:04d}.jpg").write_bytes(b"x")
    return [b"2\t2\nAnn_Lee\t1\t2\nAnn_Lee\t2\t3\nAnn_Lee\t1\tBo\t1\nBo\t2\tAnn_Lee\t3\n"]


def _pairs_run(scratch: Path, data: bytes):
    from facerec.data.pairs import read_pairs

    (scratch / "pairs.txt").write_bytes(data)
    return read_pairs(scratch / "pairs.txt", scratch / "lfw")


def _bin_setup(scratch: Path) -> list[bytes]:
    import pickle

    images = _encoded_images()[:2] * 2
    return [pickle.dumps((images, [True, False]), protocol=p) for p in (2, 4)] + \
        [pickle.dumps(([bytearray(b) for b in images], np.array([True, False])), protocol=2)]


def _bin_run(scratch: Path, data: bytes):
    from facerec.data.insightface_formats import decode_images, load_bin

    (scratch / "set.bin").write_bytes(data)
    images, same = load_bin(scratch / "set.bin")
    return decode_images(images[:8], 112, "set.bin"), same


def _rec_setup(scratch: Path) -> list[bytes]:
    from facerec.data.insightface_formats import write_records

    write_records(scratch / "seed.rec", _encoded_images()[:3], [0, 1, 1])
    return [(scratch / "seed.rec").read_bytes()]


def _idx_setup(scratch: Path) -> list[bytes]:
    _rec_setup(scratch)
    return [(scratch / "seed.idx").read_bytes()]


def _read_records(rec: Path, idx: Path):
    from facerec.data.insightface_formats import RecordFile, decode_rgb

    records = RecordFile(rec, idx)
    keys = records.image_keys()[:8]
    return [decode_rgb(records.read(k).payload, name=f"{rec} record {k}") for k in keys], [records.label(k) for k in keys]


def _rec_run(scratch: Path, data: bytes):
    (scratch / "set.rec").write_bytes(data)
    shutil.copyfile(scratch / "seed.idx", scratch / "set.idx")
    return _read_records(scratch / "set.rec", scratch / "set.idx")


def _idx_run(scratch: Path, data: bytes):
    shutil.copyfile(scratch / "seed.rec", scratch / "set.rec")
    (scratch / "set.idx").write_bytes(data)
    return _read_records(scratch / "set.rec", scratch / "set.idx")


def _manifest_setup(scratch: Path) -> list[bytes]:
    from facerec.data.split import Split
    from facerec.models import create_model
    from facerec.workspace.workspace import Workspace

    ws = Workspace(scratch / "seed-ws")
    model = create_model("vit-face-test", num_classes=2)
    split = Split(0, 1, {"a": ["a/1.png"], "b": ["b/1.png"]}, {"a": ["a/2.png"], "b": ["b/2.png"]})
    ws.save(model, model_name="vit-face-test", identities=["a", "b"], split=split, data={"root": "x"}, training={})
    ws.update_manifest(lambda m: m.update(recognition={"threshold": 0.3, "far": 0.001},
                                          erasure={"forgotten": [], "ledger": []}))
    return [ws.manifest_path.read_bytes()]


def _manifest_run(scratch: Path, data: bytes):
    from facerec.workspace.workspace import Workspace

    ws = scratch / "ws"
    if not ws.exists():
        shutil.copytree(scratch / "seed-ws", ws)
    (ws / "workspace.json").write_bytes(data)
    return Workspace(ws).load_model()


def _seed_gallery(scratch: Path) -> Path:
    from gallery import Gallery

    path = scratch / "seed-gallery"
    if not path.exists():
        gallery = Gallery.create(path, 8, "v1")
        rng = np.random.default_rng(0)
        for person in ("ann", "bo"):
            gallery.add(person, rng.normal(size=(2, 8)), image_hashes=["a", "b"], sources=["x", "y"], model_version="v1")
        gallery.save()
        gallery.close()
    return path


def _open_gallery_read_only(scratch: Path, name: str, data: bytes):
    """Replace one file of a copy of the seed gallery by ``data``, open it read-only and query it;
    the files must be byte-identical afterwards (a reader never writes)."""
    from gallery import Gallery

    live = scratch / "gallery"
    shutil.rmtree(live, ignore_errors=True)
    shutil.copytree(scratch / "seed-gallery", live)
    (live / name).write_bytes(data)
    before = {p.name: p.read_bytes() for p in live.iterdir()}
    try:
        gallery = Gallery.open(live, read_only=True)
        try:
            return gallery.people(), gallery.search(np.ones((1, gallery.dim), np.float32), k=2), gallery.export()
        finally:
            gallery.close()
    finally:
        if {p.name: p.read_bytes() for p in live.iterdir()} != before:
            raise AssertionError("a read-only open changed the gallery's files")


TARGETS = {t.name: t for t in (
    Target("image", _image_setup, _image_run, "photo.img"),
    Target("pairs", _pairs_setup, _pairs_run, "pairs.txt"),
    Target("bin", _bin_setup, _bin_run, "set.bin"),
    Target("rec", _rec_setup, _rec_run, "set.rec"),
    Target("idx", _idx_setup, _idx_run, "set."),
    Target("manifest", _manifest_setup, _manifest_run, "workspace.json"),
    Target("gallery-meta", lambda s: [(_seed_gallery(s) / "meta.sqlite").read_bytes()],
           lambda s, d: _open_gallery_read_only(s, "meta.sqlite", d), "gallery"),
    Target("gallery-index", lambda s: [(_seed_gallery(s) / f).read_bytes() for f in ("vectors-2.faiss", "templates-2.faiss")],
           lambda s, d: _open_gallery_read_only(s, "vectors-2.faiss", d), "gallery"),
)}


def run_case(target: Target, scratch: Path, data: bytes) -> str:
    """``"ok"`` or ``"refused"``; raises when the parser failed in any other way."""
    from gallery import GalleryError

    from facerec.core.errors import FaceRecError

    try:
        target.run(scratch, data)
    except (FaceRecError, GalleryError) as err:
        message = str(err)
        if "\n" in message or target.file not in message:
            raise AssertionError(f"a user error must be one line naming the file: {message!r}") from None
        return "refused"
    return "ok"


def cases(target: Target, scratch: Path, count: int, seed: int = 0):
    """``(index, mutated input)`` for ``count`` cases of ``target`` (seeds set up in ``scratch``)."""
    seeds = target.setup(scratch)
    rng = random.Random(f"{target.name}-{seed}")
    for i in range(count):
        yield i, mutate(rng.choice(seeds), rng)


def hostile_names(rng: random.Random, count: int) -> list[str]:
    """Names of every kind: control, bidi, surrogate, separator, very long in bytes, and plain ones."""
    pool = ["a", "Z", " ", ".", "..", "/", "\\", "\0", "\n", "\r", "\t", "\x1b", "\x7f", "\x85", "é", "ß", "李",
            "\u202e", "\u200f", "\u2066", "\u2028", "\udcff", "\ud800", "\ufeff", "\u200d", "👩\u200d💻", "-", "_",
            "'", "\ue000", "\U0010ffff"]
    names = ["é" * 64, "é" * 65, "a" * 128, "a" * 129, ".hidden", "ok name", "O'Brien", "\udcff", "x\u202eevil"]
    while len(names) < count:
        names.append("".join(rng.choice(pool) for _ in range(rng.randint(0, 12))))
    return names[:count]
