"""The PostgreSQL gallery's settings sized to the gallery: HNSW's search width and the memory of
its index builds.

**Search width.** HNSW's candidate list per search (``hnsw.ef_search``) grows with the gallery.
pgvector's default, 40, found the right person for 94.6 % of queries on 100k face-like 256-d
vectors; 100 for 99.8 % (FAISS IVF: 99.1 %) at half the rate. At 1M vectors 100 found only 65 %,
400 97.7 %, 800 all (HNSW's recall falls as the graph grows): docs/BENCHMARKS.md, "The gallery in
PostgreSQL". So ef_search is ``HNSW_EF`` up to 100k vectors and ``HNSW_EF * (n / 100k) ** 0.8``
above (631 at 1M), at most ``HNSW_MAX_EF``; ``FACEREC_PG_EF_SEARCH`` sets it outright.

**Build memory.** pgvector builds an HNSW graph in ``maintenance_work_mem``; when the graph
outgrows it, the build goes on in the index pages, several times slower (pgvector's README, "Index Build Time"). The
server's default, 64 MB, holds the graph of ~40k 256-d faces. Measured here on 100k 256-d vectors
(AMD EPYC, 2 cores), the ``VACUUM FULL`` an erasure runs took 105 s at 64 MB and 32 s at 1 GB; at
1M vectors the difference is hours. So before building (a forget's staging gallery swapped in)
or rewriting (an erasure's ``VACUUM FULL``) the indexes of a gallery, facerec raises the setting
for its own session, never lowering it, to 1.5 times the size of the tables being indexed plus
64 MB, up to ``FACEREC_PG_BUILD_MEMORY`` (default 4GB; PostgreSQL's units: kB, MB, GB, TB).
"""

from __future__ import annotations

import math
import os
import re

from .errors import GalleryError

HNSW_EF = 100
HNSW_MAX_EF = 1000  # pgvector's hnsw.ef_search limit: wider windows scan exactly
EF_ENV = "FACEREC_PG_EF_SEARCH"
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


def ef_search_for(rows: int) -> int:
    """The ``hnsw.ef_search`` facerec uses for a gallery of ``rows`` vectors."""
    raw = os.environ.get(EF_ENV)
    if raw is not None:
        if not raw.strip().isdigit() or not 1 <= int(raw) <= HNSW_MAX_EF:
            raise GalleryError(f"{EF_ENV} must be a whole number from 1 to {HNSW_MAX_EF}, got {raw!r}")
        return int(raw)
    return int(min(HNSW_MAX_EF, max(HNSW_EF, math.ceil(HNSW_EF * (max(rows, 1) / 100_000) ** 0.8))))
