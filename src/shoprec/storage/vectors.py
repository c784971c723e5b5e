"""The shop's own named item vectors behind a tenant-scoped repository (tables item_vector_spaces, item_vectors).

A platform's vector name ("image", "llm"...) has ONE dimension, fixed by the first vector stored under it
(a row of item_vector_spaces); another platform may use the same name with another dimension. A vector is
stored as little-endian float32 bytes, one row per (item, name). Like PlatformRepo, a VectorRepo is built
with (connection, platform key) and every statement is filtered by that platform.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, cast

import numpy as np
import sqlalchemy as sa

from shoprec.errors import DataError
from shoprec.storage import tables as T
from shoprec.storage.repo import ScopedRepo, _chunks, _insert_ignore, _upsert

VectorRow = tuple[int, str, np.ndarray | None]  # (item key, name, float32 vector; None: remove it)
FLOAT32 = np.dtype("<f4")


def to_bytes(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=FLOAT32).tobytes()


def from_bytes(data: bytes, dim: int) -> np.ndarray:
    vector = np.frombuffer(data, dtype=FLOAT32)
    if len(vector) != dim:
        raise DataError(f"a stored item vector has {len(vector)} values, its row says {dim}")
    return vector.astype(np.float32)


class VectorRepo(ScopedRepo):
    """The named item vectors of ONE platform, over a connection (one transaction)."""

    def dims(self) -> dict[str, int]:
        """name -> fixed dimension of every vector name of this platform."""
        s = T.item_vector_spaces
        return {str(n): int(d) for n, d in self.conn.execute(self._scope(s, s.c.name, s.c.dim).order_by(s.c.name))}

    def fix_dims(self, wanted: Mapping[str, int], now: float) -> dict[str, int]:
        """Register the names of `wanted` that have no dimension yet (safe against a concurrent writer: the
        first one stored wins); returns every name's stored dimension."""
        known = self.dims()
        fresh = [{"platform_id": self.platform_id, "name": n, "dim": int(d), "created_at": now}
                 for n, d in wanted.items() if n not in known]
        if fresh:
            self.conn.execute(_insert_ignore(self.conn, T.item_vector_spaces, ["platform_id", "name"]), fresh)
            known = self.dims()
        return known

    def put(self, rows: Sequence[VectorRow], now: float, labels: Sequence[str] | None = None) -> int:
        """Store (or, for None, remove) each (item, name) vector; the last row of an (item, name) wins. A vector
        whose dimension differs from its name's is a DataError naming the item (`labels[i]` of rows[i]) and the
        field vectors.<name>; nothing is written then. The items' updated_at is set to `now` (the catalog
        changed). Returns how many rows were written or removed."""
        last: dict[tuple[int, str], int] = {}
        for pos, (key, name, _) in enumerate(rows):
            last[(key, name)] = pos
        chosen = [rows[p] for p in sorted(last.values())]
        wanted: dict[str, int] = {}
        for _, name, vec in chosen:
            if vec is not None:
                wanted.setdefault(name, len(vec))
        dims = self.fix_dims(wanted, now) if wanted else {}
        for pos in sorted(last.values()):
            key, name, vec = rows[pos]
            if vec is not None and len(vec) != dims[name]:
                what = labels[pos] if labels is not None else f"item key {key}"
                raise DataError(f"{what}: vectors.{name} has {len(vec)} values; this platform's {name!r} vectors "
                                f"have {dims[name]} (the dimension is fixed by the first one stored)")
        v = T.item_vectors
        stored = [{"platform_id": self.platform_id, "item_id": key, "name": name, "dim": len(vec),
                   "vector": to_bytes(vec), "updated_at": now} for key, name, vec in chosen if vec is not None]
        if stored:
            self.conn.execute(_upsert(self.conn, v, ["platform_id", "item_id", "name"],
                                      ["dim", "vector", "updated_at"]), stored)
        removed = 0
        for name in {name for _, name, vec in chosen if vec is None}:
            keys = sorted({key for key, n, vec in chosen if n == name and vec is None})
            for part in _chunks(keys):
                removed += self._rowcount(self._delete(v).where(v.c.name == name, v.c.item_id.in_(part)))
        self._touch(sorted({key for key, _, _ in chosen}), now)
        return len(stored) + removed

    def _touch(self, keys: Sequence[int], now: float) -> None:
        """items.updated_at = now: the catalog version (its newest update) changes, so caches reload it."""
        i = T.items
        for part in _chunks(list(keys)):
            self.conn.execute(self._update(i).where(i.c.id.in_(part)).values(updated_at=now))

    def _rowcount(self, stmt: sa.Delete) -> int:
        return int(cast("sa.CursorResult[Any]", self.conn.execute(stmt)).rowcount)

    def _item_keys(self, external_id: str) -> sa.Select[Any]:
        i = T.items
        return self._scope(i, i.c.id).where(i.c.external_id == external_id)

    def of_item(self, external_id: str) -> dict[str, list[float]]:
        """name -> vector (as floats) of one item (its export)."""
        v = T.item_vectors
        query = (self._scope(v, v.c.name, v.c.dim, v.c.vector).where(v.c.item_id.in_(self._item_keys(external_id)))
                 .order_by(v.c.name))
        return {str(n): from_bytes(bytes(b), int(d)).tolist() for n, d, b in self.conn.execute(query)}

    def delete_item(self, external_id: str) -> int:
        """Delete every vector of one item; how many rows."""
        v = T.item_vectors
        return self._rowcount(self._delete(v).where(v.c.item_id.in_(self._item_keys(external_id))))

    def delete_items(self, item_keys: Iterable[int]) -> int:
        """Delete every vector of these items (by key); how many rows."""
        v = T.item_vectors
        return sum(self._rowcount(self._delete(v).where(v.c.item_id.in_(part)))
                   for part in _chunks(sorted(set(item_keys))))

    def rows(self, chunk: int = 10_000) -> Iterator[tuple[int, str, int, bytes]]:
        """(item key, name, dim, float32 bytes) of every vector of the platform (streamed)."""
        v = T.item_vectors
        query = self._scope(v, v.c.item_id, v.c.name, v.c.dim, v.c.vector).order_by(v.c.id)
        result = self.conn.execute(query, execution_options={"yield_per": chunk})
        for key, name, dim, data in result:
            yield int(key), str(name), int(dim), bytes(data)


def vector_matrices(rows: Iterable[tuple[int, str, int, bytes]], item_keys: np.ndarray
                    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Snapshot columns: name -> (n_items, dim) float32 matrix aligned with `item_keys` (sorted keys; zeros for
    items without that vector) and name -> (n_items,) bool presence mask."""
    vectors: dict[str, np.ndarray] = {}
    masks: dict[str, np.ndarray] = {}
    n = len(item_keys)
    for key, name, dim, data in rows:
        if name not in vectors:
            vectors[name] = np.zeros((n, dim), dtype=np.float32)
            masks[name] = np.zeros(n, dtype=bool)
        pos = int(np.searchsorted(item_keys, key))
        if pos < n and item_keys[pos] == key and vectors[name].shape[1] == dim:
            vectors[name][pos] = from_bytes(data, dim)
            masks[name][pos] = True
    return vectors, masks
