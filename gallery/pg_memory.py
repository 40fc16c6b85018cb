"""Memory for the PostgreSQL gallery's HNSW builds.

pgvector builds an HNSW graph in ``maintenance_work_mem``; when the graph outgrows it, the build
goes on in the index pages, several times slower (pgvector's README, "Index Build Time"). The
server's default, 64 MB, holds the graph of ~40k 256-d faces. Measured here on 100k 256-d vectors
(AMD EPYC, 2 cores), the ``VACUUM FULL`` an erasure runs took 105 s at 64 MB and 32 s at 1 GB; at
1M vectors the difference is hours. So before building (a forget's staging gallery swapped in)
or rewriting (an erasure's ``VACUUM FULL``) the indexes of a gallery, facerec raises the setting
for its own session, never lowering it, to 1.5 times the size of the tables being indexed plus
64 MB, up to ``FACEREC_PG_BUILD_MEMORY`` (default 4GB; PostgreSQL's units: kB, MB, GB, TB).
"""

from __future__ import annotations

import os
import re

from .errors import GalleryError

ENV = "FACEREC_PG_BUILD_MEMORY"
DEFAULT_CAP = "4GB"
_SIZE = re.compile(r"^\s*(\d{1,12})\s*(kB|MB|GB|TB)?\s*$")
_UNIT = {None: 1 << 10, "kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}  # bare numbers are kB, as PostgreSQL's


def cap_bytes() -> int:
    """The most memory a build may ask for, from ``FACEREC_PG_BUILD_MEMORY``."""
    raw = os.environ.get(ENV, DEFAULT_CAP)
    match = _SIZE.match(raw)
    if match is None:
        raise GalleryError(f"{ENV} must be a size such as 512MB or 4GB, got {raw!r}")
    return int(match.group(1)) * _UNIT[match.group(2)]


def raise_for_build(conn, tables: list[str], local: bool) -> int | None:
    """Set ``maintenance_work_mem`` for building HNSW indexes over ``tables`` (for the current
    transaction when ``local``, else for the session: ``RESET maintenance_work_mem`` after). Returns
    the bytes set, or None when the current setting is already enough (or above the cap)."""
    cap = cap_bytes()
    size, current = conn.execute(
        "SELECT coalesce(sum(pg_table_size(to_regclass(quote_ident(t)))), 0)::bigint, "
        "pg_size_bytes(current_setting('maintenance_work_mem')) FROM unnest(%s::text[]) AS t", (tables,)).fetchone()
    want = min(int(size * 1.5) + (64 << 20), cap)
    if want <= current:
        return None
    conn.execute("SELECT set_config('maintenance_work_mem', %s, %s)", (f"{want >> 10}kB", local))
    return want
