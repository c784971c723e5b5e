"""Snapshot: one platform's rows in the database -> Interactions (int32 arrays + IdMaps) + ItemCatalog.

Column-wise: one query per table, converted to numpy arrays without per-event objects beyond the
driver's row tuples. Index order: users and items in the order they were first stored (by key), so
the same database gives the same indices whatever `event_types` selects; events in insertion order.
Users and items without (selected) events are kept (items can still be recommended by content). The items'
named vectors (shoprec.storage.vectors) become ItemCatalog.vectors / vector_mask.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.engine import Connection, Engine

from shoprec.data import IdMap, Interactions, ItemCatalog
from shoprec.errors import DataError
from shoprec.storage.bulk import copy_event_arrays, event_chunks
from shoprec.storage.engine import storage_errors
from shoprec.storage.repo import PlatformRepo, find_platform, list_platforms
from shoprec.storage.vectors import VectorRepo, vector_matrices
from shoprec.types import EVENT_CODES, EventType


def load_interactions(
    engine: Engine,
    platform: str,
    *,
    event_types: Collection[EventType | str] | None = None,
    weights: Mapping[EventType | str, float] | None = None,
) -> tuple[Interactions, ItemCatalog]:
    """Events of `platform` (only `event_types` when given) and its item catalog.

    `weights` maps event type -> weight (every selected type needs one; DataError otherwise);
    without it every event weighs 1.0. Timestamps are whole unix seconds (floored).
    """
    types = None if event_types is None else {_event_type(t, "event_types").value for t in event_types}
    with storage_errors(engine, f"read platform {platform!r}"), engine.connect() as conn:
        key = find_platform(conn, platform)
        if key is None:
            known = ", ".join(list_platforms(conn)) or "none"
            raise DataError(f"unknown platform {platform!r} (known: {known})")
        repo = PlatformRepo(conn, key)
        user_keys, user_ids = repo.user_id_column()
        item_rows = repo.item_rows()
        columns = _merge(_event_columns(conn, key, types))
        item_keys = np.fromiter((r[0] for r in item_rows), dtype=np.int64, count=len(item_rows))
        vectors, vector_mask = vector_matrices(VectorRepo(conn, key).rows(), item_keys)
    catalog = _catalog(item_rows)
    catalog.vectors, catalog.vector_mask = vectors, vector_mask
    users = IdMap.from_list(user_ids)
    return _interactions(columns, users, np.asarray(user_keys, dtype=np.int64), catalog.items, item_keys,
                         weights), catalog


def _event_columns(conn: Connection, platform_id: int, types: set[str] | None) -> list[dict[str, np.ndarray]]:
    """The events as numpy column chunks: PostgreSQL through binary COPY (no Python object per row), the others
    (and a PostgreSQL platform with a stored type this version does not know: the error names it) by rows."""
    if conn.dialect.name == "postgresql":
        codes = {t.value: t.code for t in EventType}
        chunks = list(copy_event_arrays(conn, platform_id, codes, types))
        if all((c["event_type"] >= 0).all() for c in chunks):
            return chunks
    return [_columns(rows) for rows in event_chunks(conn, platform_id, types)]


def _event_type(value: EventType | str, what: str) -> EventType:
    try:
        return value if isinstance(value, EventType) else EventType.parse(value)
    except ValueError as exc:
        raise DataError(f"{what}: {exc}") from None


ROW = np.dtype([("user_key", np.int64), ("item_key", np.int64), ("event_type", object), ("value", object),
                ("timestamp", np.float64)])  # an event row as the snapshot reads it (a value may be NULL: None)


def _columns(rows: list[Any]) -> dict[str, np.ndarray]:
    """One chunk of event rows (user key, item key, type name, value, timestamp) as numpy columns: one
    structured `np.fromiter` pass over the driver's tuples (a third of the CPU of transposing them in Python)."""
    table = np.fromiter(rows, dtype=ROW, count=len(rows))
    index, names = pd.factorize(table["event_type"])
    codes = np.array([_event_type(str(name), "stored event").code for name in names], dtype=np.int8)
    return {
        "user_key": table["user_key"].copy(),
        "item_key": table["item_key"].copy(),
        "event_type": codes[index] if len(rows) else np.zeros(0, np.int8),
        "value": table["value"].astype(np.float64).astype(np.float32),  # None -> nan
        "timestamp": np.floor(table["timestamp"]).astype(np.int64),
    }


def _merge(chunks: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if not chunks:
        return _columns([])
    return {name: np.concatenate([c[name] for c in chunks]) for name in chunks[0]}


def _interactions(cols: dict[str, np.ndarray], users: IdMap, user_keys: np.ndarray, items: IdMap,
                  item_keys: np.ndarray, weights: Mapping[EventType | str, float] | None) -> Interactions:
    user = np.searchsorted(user_keys, cols["user_key"]).astype(np.int32)
    item = np.searchsorted(item_keys, cols["item_key"]).astype(np.int32)
    present = sorted({EventType.from_code(int(c)).value for c in np.unique(cols["event_type"])})
    return Interactions(user=user, item=item, users=users, items=items,
                        weight=_weights(cols["event_type"], present, weights), value=cols["value"],
                        timestamp=cols["timestamp"], event_type=cols["event_type"])


def _weights(event_type: np.ndarray, present: list[str], weights: Mapping[EventType | str, float] | None) -> np.ndarray:
    if weights is None:
        return np.ones(len(event_type), dtype=np.float32)
    table = np.zeros(len(EVENT_CODES), dtype=np.float32)
    given = {_event_type(t, "weights").value: float(w) for t, w in weights.items()}
    for name in present:
        if name not in given:
            raise DataError(f"weights: no weight for event type {name!r} (given for: {', '.join(sorted(given))})")
    for name, w in given.items():
        if not math.isfinite(w):
            raise DataError(f"weights: weight of {name!r} must be a finite number, got {w}")
        table[EventType(name).code] = w
    return table[event_type]


def _catalog(rows: list[Any]) -> ItemCatalog:
    """ItemCatalog from item rows (key, external_id, title, description, category, brand, price,
    currency, available, attributes)."""
    items = IdMap.from_list([str(r[1]) for r in rows])
    price = np.array([np.nan if r[6] is None else r[6] for r in rows], dtype=np.float32)
    attributes = [dict(r[9]) if isinstance(r[9], dict) else {} for r in rows]
    return ItemCatalog(
        items=items,
        title=[r[2] or "" for r in rows],
        description=[r[3] or "" for r in rows],
        category=[r[4] or "" for r in rows],
        brand=[r[5] or "" for r in rows],
        price=price,
        available=np.array([bool(r[8]) for r in rows], dtype=bool),
        attributes=attributes,
        attribute_ids=[_attribute_ids(a) for a in attributes],
    )


def _attribute_ids(attributes: dict[str, Any]) -> np.ndarray:
    """Integer attribute ids stored under attributes["attribute_ids"] (e.g. S3-Rec item2attributes)."""
    ids = attributes.get("attribute_ids")
    if isinstance(ids, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        return np.asarray(ids, dtype=np.int32)
    return np.zeros(0, dtype=np.int32)
