"""One transformer pre-trained on several shops, and the model directory a new shop starts from.

Shops share no item ids and no users; what they share is item text (one text encoder: one vector space)
and attribute tokens that mean the same thing in every shop (brands, category paths). So the shops' events
are joined with their users and items kept apart ("<shop>:<id>") and the model is trained with
`item_ids=False`: an item is its content alone, the representation a shop it never saw can be given
(shoprec.models.transformer.carry). Per-shop attribute ids (S3-Rec's item2attributes: integers that mean
nothing in another shop) are left out of the joined catalog.

A pre-trained directory is a transformer artifact (config.json, weights, idmaps, meta) plus pretrain.json:
{"kind": KIND, "network": the network parameters, "shops": [{name, users, items, events}], "platforms":
[the platforms it was trained from, if any], "text_encoder", "text_dim", ...}. `load_pretrained` checks it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shoprec.data import IdMap, Interactions, ItemCatalog
from shoprec.errors import DataError
from shoprec.models.transformer.config import NETWORK_PARAMS
from shoprec.models.transformer.model import Transformer

PRETRAIN_FILE = "pretrain.json"
KIND = "shoprec-pretrained-transformer"
# the pre-training defaults that differ from the transformer's: no item ids (they are per shop); one member; the
# text affinity chosen on the validation targets (a model carried to a new shop keeps it: it is what scores a shop
# the model never saw best, docs/benchmarks.md) without a transition term (a carried model has none: a text weight
# chosen beside it would be too small there)
PRETRAIN_DEFAULTS: dict[str, Any] = {"item_ids": False, "ensemble": 1, "text_affinity": None,
                                     "transition_affinity": 0.0}


@dataclass(frozen=True)
class Shop:
    """One shop's events and catalog, named (the name prefixes its ids in the joined data)."""

    name: str
    interactions: Interactions
    catalog: ItemCatalog | None


def shop_names(labels: Sequence[str]) -> list[str]:
    """Distinct shop names from labels (a path's stem, a platform name): "x", "x-2", ..."""
    out: list[str] = []
    for label in labels:
        base = Path(label.rstrip("/")).stem or "shop"
        name, k = base, 2
        while name in out:
            name, k = f"{base}-{k}", k + 1
        out.append(name)
    return out


def join_shops(shops: Sequence[Shop]) -> tuple[Interactions, ItemCatalog]:
    """All shops' events in one Interactions (users and items "<shop>:<id>") and their items' content in one
    catalog (without the per-shop attribute ids)."""
    if len(shops) < 1:
        raise DataError("pre-training needs at least one shop")
    if len({s.name for s in shops}) != len(shops):
        raise DataError(f"pre-training: shop names must differ, got {[s.name for s in shops]}")
    users, items = IdMap(), IdMap()
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("user", "item", "weight", "value", "timestamp", "event_type")}
    title: list[str] = []
    description: list[str] = []
    category: list[str] = []
    brand: list[str] = []
    price, available = [], []
    for shop in shops:
        data = shop.interactions
        first = len(items)
        items.add_many(f"{shop.name}:{i}" for i in data.items.to_list())
        user_ids = users.add_many(f"{shop.name}:{u}" for u in data.users.to_list())
        parts["user"].append(user_ids[data.user])
        parts["item"].append(data.item.astype(np.int64) + first)
        for col in ("weight", "value", "timestamp", "event_type"):
            parts[col].append(getattr(data, col))
        catalog = shop.catalog if shop.catalog is not None else ItemCatalog.empty(data.items)
        rows = catalog.items.lookup(data.items.to_list())
        for out, column in ((title, catalog.title), (description, catalog.description),
                            (category, catalog.category), (brand, catalog.brand)):
            out.extend(column[r] if r >= 0 else "" for r in rows)
        price.append(np.where(rows >= 0, catalog.price[np.maximum(rows, 0)], np.nan).astype(np.float32))
        available.append(np.where(rows >= 0, catalog.available[np.maximum(rows, 0)], True))
    joined = Interactions(users=users, items=items, **{k: np.concatenate(v) for k, v in parts.items()})
    return joined, ItemCatalog(items=items, title=title, description=description, category=category, brand=brand,
                               price=np.concatenate(price), available=np.concatenate(available).astype(bool))


def shop_facts(shops: Sequence[Shop]) -> list[dict[str, Any]]:
    """Name, users, items, events and items with text of each shop (for pretrain.json and reports)."""
    out = []
    for s in shops:
        texts = s.catalog.has_text() if s.catalog is not None else np.zeros(0, dtype=bool)
        out.append({"name": s.name, "users": s.interactions.n_users, "items": s.interactions.n_items,
                    "events": len(s.interactions), "items_with_text": int(texts.sum())})
    return out


def save_pretrained(model: Transformer, path: str | Path, facts: dict[str, Any]) -> Path:
    """Write the model and its pretrain.json (`facts` plus the kind, network parameters and text encoder)."""
    path = Path(path)
    model.save(path)
    net = model.net
    assert net is not None
    doc = {"kind": KIND, **facts, "network": network_params(model),
           "text_affinity": model.text_affinity, "text_affinity_search": model.text_affinity_search,
           "text_dim": net.text.in_features if net.text is not None else 0,
           "attribute_tokens": len(net.attribute_vocabulary)}
    (path / PRETRAIN_FILE).write_text(json.dumps(doc, indent=1, default=str), encoding="utf-8")
    return path


def load_pretrained(path: str | Path) -> tuple[Transformer, dict[str, Any]]:
    """The pre-trained model of a `shoprec pretrain` directory and its pretrain.json; a DataError naming what
    is wrong when the directory is not one, or when its model does not match what pretrain.json says."""
    from shoprec.models.base import load_model

    path = Path(path)
    if not path.is_dir():
        raise DataError(f"--init-from {path}: no such directory (a directory written by shoprec pretrain)")
    meta_file = path / PRETRAIN_FILE
    if not meta_file.is_file():
        raise DataError(f"--init-from {path}: not a pre-trained model directory (no {PRETRAIN_FILE}; "
                        "shoprec pretrain writes one)")
    try:
        facts = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"--init-from {path}: {PRETRAIN_FILE} is unreadable: {exc}") from None
    if not isinstance(facts, dict) or facts.get("kind") != KIND:
        raise DataError(f"--init-from {path}: {PRETRAIN_FILE} is not of kind {KIND!r}")
    model = load_model(path)
    if not isinstance(model, Transformer):
        raise DataError(f"--init-from {path}: the model is a {model.name!r}, a pre-trained model is a 'transformer'")
    network = facts.get("network") or {}
    mine = network_params(model)
    wrong = [f"{p} = {mine[p]!r} in the model, {network.get(p)!r} in {PRETRAIN_FILE}"
             for p in NETWORK_PARAMS if network.get(p) != mine[p]]
    if wrong:
        raise DataError(f"--init-from {path}: the model's configuration does not match the one it was "
                        f"pre-trained with: {'; '.join(wrong)}")
    return model, facts


def network_params(model: Transformer) -> dict[str, Any]:
    """The network parameters a model carried over from or fine-tuned from `model` inherits."""
    return {p: getattr(model.network_config, p) for p in NETWORK_PARAMS}
