"""Item content aligned with the model's items: attribute bags (ids, brand, category-path tokens), text
vectors (shoprec.preprocess.text, cached per item) and the shop's own named vectors. Row 0 is padding."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from shoprec.data import IdMap, ItemCatalog
from shoprec.models.training import TrainOptions
from shoprec.models.transformer.config import TransformerConfig

T = TypeVar("T")


@dataclass
class ItemContent:
    """Content aligned with the model's items, row 0 = padding: attribute bags and text vectors."""

    attr_flat: np.ndarray  # int64 attribute indices (1-based) of all items, concatenated
    attr_offsets: np.ndarray  # int64 (n_items + 1,) start of each item's bag in attr_flat (row 0 empty)
    n_attributes: int
    text: np.ndarray  # (n_items + 1, text_dim) float32, or (n_items + 1, 0)
    text_encoder: str = ""
    vocabulary: tuple[str, ...] = ()  # the attribute tokens, index 1 first
    named: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (n_items + 1, dim) float32 shop vectors
    # (n_items + 1, text_dim) float32 text vectors of the items' names (cfg.title_view), or (n_items + 1, 0)
    title: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))

    @property
    def has_content(self) -> np.ndarray:
        """(n_items + 1,) bool: the item has at least one attribute or a text vector."""
        has_attr = np.diff(np.append(self.attr_offsets, len(self.attr_flat))) > 0
        has_text = np.abs(self.text).sum(axis=1) > 0 if self.text.shape[1] else np.zeros(len(has_attr), bool)
        return has_attr | has_text | has_named(self.named, len(has_attr))


def build_content(catalog: ItemCatalog | None, items: IdMap, cfg: TransformerConfig,
                  options: TrainOptions | None = None, title_view: bool | None = None) -> ItemContent:
    """Attribute bags and text vectors for `items` (either may be empty); `options` say where text vectors
    are cached and whether to show progress. The names' text vectors come with the text when `title_view`
    (None: when cfg.title_view and the catalog has descriptions; a carried model follows its source)."""
    options = options or TrainOptions()
    n = len(items)
    bags: list[list[str]] = [[] for _ in range(n)]
    text = title = np.zeros((n + 1, 0), dtype=np.float32)
    encoder = ""
    if catalog is not None:
        rows = np.arange(n) if catalog.items == items else catalog.items.lookup(items.to_list())
        if cfg.use_attributes:
            bags = [_attribute_tokens(catalog, int(r)) if r >= 0 else [] for r in rows]
        if cfg.use_text and any(catalog.text(int(r)) for r in rows if r >= 0):
            from shoprec.preprocess.text import catalog_text_vectors, make_encoder

            cache = Path(options.text_cache_dir) if options.text_cache_dir else None
            text_encoder = make_encoder(cfg.text_encoder)  # one encoder (one model load) for both texts
            tv = catalog_text_vectors(catalog, items, encoder=text_encoder, cache_dir=cache,
                                      progress=options.progress)
            vectors = whiten(tv.vectors) if cfg.text_whiten else tv.vectors
            text = np.vstack([np.zeros((1, tv.vectors.shape[1]), np.float32), vectors])
            encoder = tv.encoder
            names_too = cfg.title_view and catalog.has_descriptions() if title_view is None else title_view
            if names_too:
                names = catalog_text_vectors(catalog, items, encoder=text_encoder, cache_dir=cache,
                                             progress=options.progress, part="name").vectors
                title = np.vstack([np.zeros((1, names.shape[1]), np.float32), names])
    vocab: dict[str, int] = {}
    ids = [[vocab.setdefault(t, len(vocab) + 1) for t in bag] for bag in bags]
    lengths = np.array([0] + [len(b) for b in ids], dtype=np.int64)
    flat = np.array([i for b in ids for i in b], dtype=np.int64)
    return ItemContent(attr_flat=flat, attr_offsets=np.cumsum(lengths) - lengths,
                       n_attributes=len(vocab), text=text, text_encoder=encoder, vocabulary=tuple(vocab),
                       named=named_vectors(catalog, items) if cfg.use_vectors else {}, title=title)


def named_vectors(catalog: ItemCatalog | None, items: IdMap) -> dict[str, np.ndarray]:
    """The catalog's named vectors aligned with `items`, row 0 = padding, each row L2-normalised (shops' vectors
    come at any scale: CLIP's are unit length, others are not) and zero where an item has none."""
    if catalog is None or not catalog.vectors:
        return {}
    rows = np.arange(len(items)) if catalog.items == items else catalog.items.lookup(items.to_list())
    out = {}
    for name in sorted(catalog.vectors):
        matrix, mask = catalog.vectors[name], catalog.vector_mask.get(name)
        table = np.zeros((len(items) + 1, matrix.shape[1]), dtype=np.float32)
        known = rows >= 0
        table[1:][known] = matrix[rows[known]]
        if mask is not None:
            table[1:][known] *= mask[rows[known]][:, None]
        norms = np.linalg.norm(table, axis=1, keepdims=True)
        out[name] = np.divide(table, norms, out=np.zeros_like(table), where=norms > 0)
    return {name: table for name, table in out.items() if np.abs(table).sum() > 0}


def has_named(named: dict[str, np.ndarray], n_rows: int) -> np.ndarray:
    """(n_rows,) bool: the item has at least one named vector."""
    out = np.zeros(n_rows, dtype=bool)
    for table in named.values():
        out |= np.abs(table).sum(axis=1) > 0
    return out


def named_from_state(arrays: Mapping[str, T]) -> dict[str, T]:
    """The named vector tables of a saved network's state ("named_vectors.<name>.vectors")."""
    prefix, suffix = "named_vectors.", ".vectors"
    return {key[len(prefix):-len(suffix)]: value for key, value in arrays.items()
            if key.startswith(prefix) and key.endswith(suffix)}


def _attribute_tokens(catalog: ItemCatalog, row: int) -> list[str]:
    """Attribute ids, the brand, and every prefix of the category path ("A > B" -> A, A > B); a category
    field holding a set ("Action|Comedy", as MovieLens genres) gives each member's paths."""
    tokens = [f"a:{int(a)}" for a in catalog.attribute_ids[row]] if row < len(catalog.attribute_ids) else []
    if catalog.brand[row]:
        tokens.append(f"b:{catalog.brand[row].strip().lower()}")
    for member in catalog.category[row].split("|"):
        parts = [p.strip().lower() for p in member.split(">") if p.strip()]
        tokens += ["c:" + " > ".join(parts[: i + 1]) for i in range(len(parts))]
    return list(dict.fromkeys(tokens))


def whiten(vectors: np.ndarray, shrink: float = 0.1) -> np.ndarray:
    """ZCA whitening of the rows that have text (zero rows stay zero), scaled to unit mean norm.

    Sentence vectors of one catalog share a large common direction and a few dominant ones (anisotropy), so a
    linear projection of the raw vectors learns the directions that tell items apart slowly; whitening
    (BERT-whitening, Su et al. 2021; UniSRec's parametric whitening, Hou et al. KDD 2022) gives every direction
    unit variance. ZCA keeps the encoder's coordinates (the rotation is undone), and `shrink` * the mean
    eigenvalue is added to every eigenvalue so directions of pure noise are not blown up."""
    rows = np.abs(vectors).sum(axis=1) > 0
    out = np.zeros_like(vectors, dtype=np.float32)
    if rows.sum() < 2:
        return vectors.astype(np.float32)
    x = vectors[rows].astype(np.float64)
    centred = x - x.mean(axis=0)
    values, basis = np.linalg.eigh(centred.T @ centred / (len(x) - 1))
    values = np.clip(values, 0.0, None)
    transform = (basis / np.sqrt(values + shrink * values.mean() + 1e-12)) @ basis.T
    white = centred @ transform
    out[rows] = white / max(float(np.linalg.norm(white, axis=1).mean()), 1e-12)
    return out
