"""Progress bars (tqdm) on stderr, with rate and ETA; ``enabled=False`` makes them silent."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


def progress_bar(total: int | None, desc: str, *, enabled: bool = True, unit: str = "it"):
    """A tqdm bar writing to stderr, so ``--json`` output on stdout stays clean."""
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, file=sys.stderr,
                dynamic_ncols=True, leave=False, smoothing=0.1)
