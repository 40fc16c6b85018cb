"""LFW-style pair listings (``pairs.txt``) and the people of their folds.

LFW View 2 (Huang et al., 2007) lists 6,000 pairs as 10 folds of 300 genuine then 300 impostor
pairs; fold ``k`` (1-based) is pairs ``600(k-1) ... 600k-1``. A model evaluated person-disjointly
on fold 1 must never have seen any of fold 1's people (435 in LFW): ``fold_people`` names them,
so training recipes and ``facerec eval`` can leave them out with one option.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from facerec.core.errors import DataError
from .images import ImageError, read_file_bytes

MAX_PAIRS_BYTES = 16 << 20  # LFW's pairs.txt is 100 KB
MAX_PAIRS = 1_000_000  # LFW lists 6,000 and CFP-FP 7,000; a million pairs parse in seconds, in ~100 MB
_PAIR_INDEX = re.compile(r"[0-9]{1,6}", re.ASCII)


def _bad_pair_name(name: str) -> bool:
    return name.startswith(".") or any(c in name for c in "/\\\0")


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long for the file system, say
        return False


def read_pairs(pairs_file: str | Path, root: str | Path) -> list[tuple[Path, Path, bool]]:
    """LFW ``pairs.txt``: ``name i j`` (same person) or ``name1 i name2 j`` (different).

    ``root`` is the image folder (``root/name/name_0001.jpg``) or its parent holding ``images/``.
    Bounded: at most :data:`MAX_PAIRS_BYTES` read, at most :data:`MAX_PAIRS` pairs, and each
    image's path made and checked once however many pairs name it (a listing that repeats one
    pair a million times costs a second, not a minute and a gigabyte).
    """
    root = Path(root)
    if not (root / "images").is_dir() and not root.is_dir():
        raise DataError(f"image root {root} does not exist")
    images = root / "images" if (root / "images").is_dir() else root
    try:
        text = read_file_bytes(pairs_file, MAX_PAIRS_BYTES, "a pairs file").decode("utf-8")
    except ImageError as err:
        raise DataError(f"cannot use pairs file {err}") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{pairs_file} is not UTF-8 text (byte {err.start})") from None
    paths: dict[tuple[str, int], Path] = {}

    def image(number: int, name: str, index: int) -> Path:
        path = paths.get((name, index))
        if path is None:
            if _bad_pair_name(name):
                raise DataError(f"{pairs_file}:{number}: a person's name may not hold path separators or start with '.'")
            path = images / name / f"{name}_{index:04d}.jpg"
            if not _is_file(path):
                raise DataError(f"{pairs_file}:{number}: image {path} is missing")
            paths[(name, index)] = path
        return path

    pairs = []
    for number, line in enumerate(io.StringIO(text), 1):  # one line at a time, not a list of them all
        parts = line.split()
        if len(parts) <= 2:
            continue  # the "folds n" header and blank lines
        if len(parts) > 4 or not all(_PAIR_INDEX.fullmatch(parts[k]) for k in ((1, 2) if len(parts) == 3 else (1, 3))):
            raise DataError(f"{pairs_file}:{number}: expected 'name i j' or 'name1 i name2 j' (i, j whole numbers)")
        if len(pairs) == MAX_PAIRS:
            raise DataError(f"{pairs_file}: more than {MAX_PAIRS:,} pairs; split the listing")
        if len(parts) == 3:
            a, b = image(number, parts[0], int(parts[1])), image(number, parts[0], int(parts[2]))
        else:
            a, b = image(number, parts[0], int(parts[1])), image(number, parts[2], int(parts[3]))
        pairs.append((a, b, len(parts) == 3))
    if not pairs:
        raise DataError(f"{pairs_file} holds no pairs")
    return pairs


def pair_fold(count: int, folds: int = 10) -> list[int]:
    """1-based fold of each pair of a contiguous listing (``folds`` equal blocks, as LFW)."""
    from facerec.metrics import contiguous_folds

    return [int(k) + 1 for k in contiguous_folds(count, folds)]


def pairs_in_folds(pairs: list[tuple[Path, Path, bool]], fold_numbers, folds: int = 10) -> list[tuple[Path, Path, bool]]:
    """The pairs of the 1-based folds ``fold_numbers`` of a contiguous listing, in listing order."""
    wanted = set(int(k) for k in fold_numbers)
    bad = sorted(k for k in wanted if not 1 <= k <= folds)
    if bad:
        raise DataError(f"fold {bad[0]} does not exist: the listing has folds 1-{folds}")
    return [pair for pair, k in zip(pairs, pair_fold(len(pairs), folds)) if k in wanted]


def fold_people(pairs: list[tuple[Path, Path, bool]], fold_numbers, folds: int = 10) -> set[str]:
    """The people (folder names) who appear in any pair of the 1-based folds ``fold_numbers``."""
    return {p.parent.name for a, b, _ in pairs_in_folds(pairs, fold_numbers, folds) for p in (a, b)}


def most_photographed(listing: dict[str, list[str]], count: int, exclude: set[str] = frozenset()) -> list[str]:
    """The ``count`` people with the most images, ties broken by name, leaving ``exclude`` out."""
    ranked = sorted((p for p in listing if p not in exclude), key=lambda p: (-len(listing[p]), p))
    return ranked[:count]
