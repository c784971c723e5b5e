"""IdMap: external string ids <-> dense int32 indices (0..n-1), in order of first appearance."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


class IdMap:
    __slots__ = ("_ids", "_index")

    def __init__(self, ids: Iterable[str] = ()) -> None:
        self._ids: list[str] = []
        self._index: dict[str, int] = {}
        for external in ids:
            self.add(external)

    def add(self, external: str) -> int:
        """Index of `external`, adding it at the end when it is new."""
        idx = self._index.get(external)
        if idx is None:
            idx = len(self._ids)
            self._index[external] = idx
            self._ids.append(external)
        return idx

    def add_many(self, externals: Iterable[str]) -> np.ndarray:
        return np.fromiter((self.add(e) for e in externals), dtype=np.int32)

    def get(self, external: str) -> int | None:
        return self._index.get(external)

    def index(self, external: str) -> int:
        try:
            return self._index[external]
        except KeyError:
            raise KeyError(f"unknown id {external!r}") from None

    def lookup(self, externals: Iterable[str]) -> np.ndarray:
        """Indices of known ids, -1 for unknown ones."""
        get = self._index.get
        return np.fromiter((get(e, -1) for e in externals), dtype=np.int32)

    def external(self, idx: int) -> str:
        return self._ids[idx]

    def externals(self, indices: Iterable[int]) -> list[str]:
        ids = self._ids
        return [ids[int(i)] for i in indices]

    def to_list(self) -> list[str]:
        return list(self._ids)

    def copy(self) -> IdMap:
        out = IdMap()
        out._ids = list(self._ids)
        out._index = dict(self._index)
        return out

    @classmethod
    def from_list(cls, ids: Sequence[str]) -> IdMap:
        out = cls()
        out._ids = list(ids)
        out._index = {e: i for i, e in enumerate(out._ids)}
        if len(out._index) != len(out._ids):
            raise ValueError("IdMap.from_list: duplicate ids")
        return out

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, external: object) -> bool:
        return external in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and self._ids == other._ids

    def __repr__(self) -> str:
        return f"IdMap(n={len(self._ids)})"
