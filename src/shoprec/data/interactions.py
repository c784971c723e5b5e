"""Interactions: frozen parallel arrays of (user, item, weight, value, timestamp, event type) plus id maps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from shoprec.data.idmap import IdMap
from shoprec.errors import DataError
from shoprec.types import EventType


@dataclass(frozen=True, eq=False)
class Interactions:
    """One row per event. Rows are kept in the order given; `to_sequences` orders by time, stably.

    - user, item: int32 indices into `users` / `items`
    - weight: float32 importance of the event for implicit models (e.g. view < cart < purchase)
    - value: float32 explicit value (a rating, a quantity), NaN when absent
    - timestamp: int64 unix seconds (synthetic increasing values when the source has none)
    - event_type: int8 codes of `shoprec.types.EventType`
    """

    user: np.ndarray
    item: np.ndarray
    users: IdMap
    items: IdMap
    weight: np.ndarray = field(default=None)  # type: ignore[arg-type]
    value: np.ndarray = field(default=None)  # type: ignore[arg-type]
    timestamp: np.ndarray = field(default=None)  # type: ignore[arg-type]
    event_type: np.ndarray = field(default=None)  # type: ignore[arg-type]

    def __post_init__(self) -> None:
        n = len(self.user)
        set_ = object.__setattr__
        set_(self, "user", np.ascontiguousarray(self.user, dtype=np.int32))
        set_(self, "item", np.ascontiguousarray(self.item, dtype=np.int32))
        defaults = {
            "weight": (np.float32, 1.0),
            "value": (np.float32, np.nan),
            "timestamp": (np.int64, 0),
            "event_type": (np.int8, EventType.PURCHASE.code),
        }
        for name, (dtype, fill) in defaults.items():
            arr = getattr(self, name)
            arr = np.full(n, fill, dtype=dtype) if arr is None else np.ascontiguousarray(arr, dtype=dtype)
            set_(self, name, arr)
        self.validate()

    # ----------------------------------------------------------------- checks
    def validate(self) -> None:
        n = len(self.user)
        for name in ("item", "weight", "value", "timestamp", "event_type"):
            if len(getattr(self, name)) != n:
                raise DataError(f"Interactions: column {name!r} has {len(getattr(self, name))} rows, user has {n}")
        if n:
            if self.user.min() < 0 or self.user.max() >= len(self.users):
                raise DataError("Interactions: user index outside the user IdMap")
            if self.item.min() < 0 or self.item.max() >= len(self.items):
                raise DataError("Interactions: item index outside the item IdMap")

    # ------------------------------------------------------------ constructors
    @classmethod
    def from_ids(
        cls,
        user_ids: Sequence[str],
        item_ids: Sequence[str],
        *,
        weight: Sequence[float] | np.ndarray | None = None,
        value: Sequence[float] | np.ndarray | None = None,
        timestamp: Sequence[int] | np.ndarray | None = None,
        event_type: Sequence[int] | np.ndarray | None = None,
        users: IdMap | None = None,
        items: IdMap | None = None,
    ) -> Interactions:
        """Build from external ids; new ids are appended to (copies of) the given maps."""
        users = users.copy() if users is not None else IdMap()
        items = items.copy() if items is not None else IdMap()
        u = users.add_many(str(x) for x in user_ids)
        i = items.add_many(str(x) for x in item_ids)
        opt = {k: (None if v is None else np.asarray(v)) for k, v in
               {"weight": weight, "value": value, "timestamp": timestamp, "event_type": event_type}.items()}
        return cls(user=u, item=i, users=users, items=items, **opt)  # type: ignore[arg-type]

    # ----------------------------------------------------------------- views
    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def __len__(self) -> int:
        return len(self.user)

    def __repr__(self) -> str:
        return f"Interactions(events={len(self)}, users={self.n_users}, items={self.n_items})"

    def subset(self, mask_or_index: np.ndarray) -> Interactions:
        """Rows selected by a boolean mask or an index array; id maps are kept (indices stay valid)."""
        sel = mask_or_index
        return Interactions(
            user=self.user[sel], item=self.item[sel], users=self.users, items=self.items,
            weight=self.weight[sel], value=self.value[sel], timestamp=self.timestamp[sel],
            event_type=self.event_type[sel],
        )

    def concat(self, other: Interactions) -> Interactions:
        if other.users is not self.users and other.users != self.users:
            raise DataError("Interactions.concat: different user id maps")
        if other.items is not self.items and other.items != self.items:
            raise DataError("Interactions.concat: different item id maps")
        return Interactions(
            user=np.concatenate([self.user, other.user]), item=np.concatenate([self.item, other.item]),
            users=self.users, items=self.items,
            weight=np.concatenate([self.weight, other.weight]), value=np.concatenate([self.value, other.value]),
            timestamp=np.concatenate([self.timestamp, other.timestamp]),
            event_type=np.concatenate([self.event_type, other.event_type]),
        )

    def time_order(self) -> np.ndarray:
        """Row order by (user, timestamp, original position): stable, so same-time events keep file order."""
        return np.lexsort((np.arange(len(self)), self.timestamp, self.user))

    def to_csr(self, *, weighted: bool = True, binary: bool = False) -> sp.csr_matrix:
        """users x items matrix; duplicates are summed (binary=True clips to 1)."""
        data = self.weight if weighted else np.ones(len(self), dtype=np.float32)
        m = sp.csr_matrix((data.astype(np.float32), (self.user, self.item)),
                          shape=(self.n_users, self.n_items), dtype=np.float32)
        m.sum_duplicates()
        if binary:
            m.data[:] = 1.0
        return m

    def to_sequences(self) -> list[np.ndarray]:
        """Per user (index order), the item indices in time order; users without events get an empty array."""
        order = self.time_order()
        users = self.user[order]
        items = self.item[order]
        bounds = np.searchsorted(users, np.arange(self.n_users + 1))
        return [items[bounds[u]:bounds[u + 1]] for u in range(self.n_users)]

    def sequence_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """(row order by user then time, start offsets per user of length n_users+1)."""
        order = self.time_order()
        bounds = np.searchsorted(self.user[order], np.arange(self.n_users + 1))
        return order, bounds
