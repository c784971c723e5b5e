"""Named item vectors in the ingest pipeline: each name's dimension is fixed per platform, then stored.

`fixed_dims` runs on the validated record stream (REST and bulk import alike): an item whose vector has
another dimension than the platform's vectors of that name (stored, or fixed by an earlier record of the
same import) becomes a Rejected naming the field `vectors.<name>`; the database is read only when an item
with vectors appears. `store_vectors` writes a batch's vectors in the batch's transaction (the repository
checks the dimensions again there, against a concurrent writer).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from shoprec.data.records import Domain, ItemRecord, Record, Rejected, Source
from shoprec.storage import PlatformRepo, find_platform, storage_errors
from shoprec.storage.vectors import VectorRepo, VectorRow

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

BAD_DIM = "bad_vector_dim"


def stored_dims(engine: Engine, platform: str) -> dict[str, int]:
    """name -> dimension of `platform`'s vector names ({} for a platform not created yet)."""
    with storage_errors(engine, f"read the vector names of platform {platform!r}"), engine.connect() as conn:
        key = find_platform(conn, platform)
        return {} if key is None else VectorRepo(conn, key).dims()


def fixed_dims(records: Iterable[Record], engine: Engine, platform: str) -> Iterator[Record]:
    """`records` with each item whose vectors have a dimension other than its platform's refused (a Rejected
    naming `vectors.<name>`); a Domain record switches to platform f"{platform}-{name}" as ingest does."""
    known: dict[str, dict[str, int]] = {}
    current = platform
    for rec in records:
        if isinstance(rec, Domain):
            current = f"{platform}-{rec.name}"
        elif isinstance(rec, ItemRecord) and rec.vectors:
            dims = known.get(current)
            if dims is None:
                dims = known[current] = stored_dims(engine, current)
            bad = check_dims(rec, dims, rec.source or Source("?", 0))
            if bad is not None:
                yield bad
                continue
        yield rec


def check_dims(rec: ItemRecord, dims: dict[str, int], src: Source) -> Rejected | None:
    """A Rejected when a vector of `rec` has another dimension than `dims` says; else None, and the names `rec`
    introduces are added to `dims` (the first vector of a name fixes its dimension)."""
    assert rec.vectors is not None
    for name, vec in rec.vectors.items():
        if vec is not None and name in dims and len(vec) != dims[name]:
            return Rejected(src, BAD_DIM, f"vectors.{name}",
                            f"has {len(vec)} values; this platform's {name!r} vectors have {dims[name]} "
                            "(the dimension is fixed by the first one stored)")
    for name, vec in rec.vectors.items():
        if vec is not None:
            dims.setdefault(name, len(vec))
    return None


def store_vectors(conn: Connection, repo: PlatformRepo, items: list[ItemRecord], now: float) -> int:
    """Write the named vectors of `items` (already upserted through `repo`) in the open transaction."""
    with_vectors = [r for r in items if r.vectors]
    if not with_vectors:
        return 0
    keys = repo.ensure_items([r.item_id for r in with_vectors], now)
    rows: list[VectorRow] = []
    labels: list[str] = []
    for rec in with_vectors:
        assert rec.vectors is not None
        for name, vec in rec.vectors.items():
            rows.append((keys[rec.item_id], name, vec))
            labels.append(f"item {rec.item_id!r}" + (f" ({rec.source})" if rec.source else ""))
    return VectorRepo(conn, repo.platform_id).put(rows, now, labels)
