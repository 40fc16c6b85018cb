"""LFW-style pair listings (``pairs.txt``) and the people of their folds.

LFW View 2 (Huang et al., 2007) lists 6,000 pairs as 10 folds of 300 genuine then 300 impostor
pairs; fold ``k`` (1-based) is pairs ``600(k-1) ... 600k-1``. A model evaluated person-disjointly
on fold 1 must never have seen any of fold 1's people (435 in LFW): ``fold_people`` names them,
so training recipes and ``facerec eval`` can leave them out with one option.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import DataError
from .images import ImageError, read_file_bytes

MAX_PAIRS_BYTES = 16 << 20  # LFW's pairs.txt is 100 KB
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
    """
    root = Path(root)
    if not (root / "images").is_dir() and not root.is_dir():
        raise DataError(f"image root {root} does not exist")
    images = root / "images" if (root / "images").is_dir() else root
    try:
        lines = read_file_bytes(pairs_file, MAX_PAIRS_BYTES, "a pairs file").decode("utf-8").split("\n")
    except ImageError as err:
        raise DataError(f"cannot use pairs file {err}") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{pairs_file} is not UTF-8 text (byte {err.start})") from None
    pairs = []
    for number, line in enumerate(lines, 1):
        parts = line.split()
        if len(parts) <= 2:
            continue  # the "folds n" header and blank lines
        if len(parts) > 4 or not all(_PAIR_INDEX.fullmatch(parts[k]) for k in ((1, 2) if len(parts) == 3 else (1, 3))):
            raise DataError(f"{pairs_file}:{number}: expected 'name i j' or 'name1 i name2 j' (i, j whole numbers)")
        if len(parts) == 3:
            a, b, same = (parts[0], int(parts[1])), (parts[0], int(parts[2])), True
        else:
            a, b, same = (parts[0], int(parts[1])), (parts[2], int(parts[3])), False
        if any(_bad_pair_name(n) for n in (a[0], b[0])):
            raise DataError(f"{pairs_file}:{number}: a person's name may not hold path separators or start with '.'")
        pa, pb = (images / n / f"{n}_{i:04d}.jpg" for n, i in (a, b))
        for p in (pa, pb):
            if not _is_file(p):
                raise DataError(f"{pairs_file}:{number}: image {p} is missing")
        pairs.append((pa, pb, same))
    if not pairs:
        raise DataError(f"{pairs_file} holds no pairs")
    return pairs


def pair_fold(count: int, folds: int = 10) -> list[int]:
    """1-based fold of each pair of a contiguous listing (``folds`` equal blocks, as LFW)."""
    from ..verification import contiguous_folds

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
