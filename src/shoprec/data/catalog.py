"""ItemCatalog: per-item content aligned with an item IdMap (text, category, brand, price, attributes)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shoprec.data.idmap import IdMap


@dataclass(eq=False)
class ItemCatalog:
    """Item features, index-aligned with `items`. Missing text is "", missing price NaN.

    `category` is a path joined with " > " (e.g. "Beauty > Skin Care"); `attribute_ids` holds
    integer attribute ids per item (e.g. S3-Rec's item2attributes) for models that embed them.
    `vectors` holds the shop's own named item vectors (name -> (n_items, dim) float32, zero rows where an item
    has none) and `vector_mask` which items have one (name -> (n_items,) bool).
    """

    items: IdMap
    title: list[str] = field(default_factory=list)
    description: list[str] = field(default_factory=list)
    category: list[str] = field(default_factory=list)
    brand: list[str] = field(default_factory=list)
    price: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    available: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    attributes: list[dict[str, Any]] = field(default_factory=list)
    attribute_ids: list[np.ndarray] = field(default_factory=list)
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    vector_mask: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.align()

    def align(self) -> None:
        """Pad every column to len(items) (items added after the catalog was built get empty content)."""
        n = len(self.items)
        for name in ("title", "description", "category", "brand"):
            col = getattr(self, name)
            if len(col) < n:
                col.extend([""] * (n - len(col)))
        for name, empty in (("attributes", dict), ("attribute_ids", lambda: np.zeros(0, dtype=np.int32))):
            col = getattr(self, name)
            while len(col) < n:
                col.append(empty())
        if len(self.price) < n:
            self.price = np.concatenate([np.asarray(self.price, dtype=np.float32),
                                         np.full(n - len(self.price), np.nan, dtype=np.float32)])
        if len(self.available) < n:
            self.available = np.concatenate([np.asarray(self.available, dtype=bool),
                                             np.ones(n - len(self.available), dtype=bool)])
        self._align_vectors(n)

    def _align_vectors(self, n: int) -> None:
        """Named vectors padded with zero rows (and False in the mask) to n items."""
        for name, matrix in list(self.vectors.items()):
            mask = self.vector_mask.get(name)
            if mask is None or len(mask) != len(matrix):
                mask = np.abs(matrix).sum(axis=1) > 0
            if len(matrix) < n:
                matrix = np.vstack([matrix, np.zeros((n - len(matrix), matrix.shape[1]), dtype=np.float32)])
                mask = np.concatenate([mask, np.zeros(n - len(mask), dtype=bool)])
            self.vectors[name] = np.asarray(matrix, dtype=np.float32)
            self.vector_mask[name] = np.asarray(mask, dtype=bool)

    @classmethod
    def empty(cls, items: IdMap) -> ItemCatalog:
        return cls(items=items)

    def __len__(self) -> int:
        return len(self.items)

    def text(self, idx: int) -> str:
        """One string describing the item, for text embeddings and explanations."""
        return " | ".join(p for p in (self.name_text(idx), self.description[idx]) if p)

    def texts(self) -> list[str]:
        return [self.text(i) for i in range(len(self.items))]

    def name_text(self, idx: int) -> str:
        """What names the item: `text` without the description (title | brand | category)."""
        parts = [self.title[idx], self.brand[idx], self.category[idx]]
        return " | ".join(p for p in parts if p)

    def has_descriptions(self) -> bool:
        return any(self.description)

    def has_text(self) -> np.ndarray:
        return np.array([bool(self.text(i)) for i in range(len(self.items))], dtype=bool)

    def price_of(self, idx: int) -> float | None:
        p = float(self.price[idx])
        return None if math.isnan(p) else p
