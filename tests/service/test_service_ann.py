"""Approximate candidates for large catalogs: recall against exact scoring, and filters that still hold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shoprec.models.vectors import vector_scorer
from shoprec.service import Filters
from shoprec.service.ann import AnnConfig, AnnIndex, exact_top, recall_at
from shoprec.service.testing import local_services, synthetic_platform

pytest.importorskip("faiss")


def _clustered(rng: np.random.Generator, n: int, d: int, clusters: int) -> np.ndarray:
    centers = rng.normal(size=(clusters, d))
    return (centers[rng.integers(0, clusters, n)] + 0.7 * rng.normal(size=(n, d))).astype(np.float32)


def test_ann_recall_against_exact_scoring() -> None:
    rng = np.random.default_rng(0)
    items = _clustered(rng, 20_000, 16, 200)
    queries = _clustered(rng, 100, 16, 200)
    index = AnnIndex(items, AnnConfig(nprobe=64))
    approx, _ = index.search(queries, 20)
    exact = exact_top(queries, items, 20)
    brute = np.argsort(-(queries @ items.T), axis=1, kind="stable")[:, :20]
    assert recall_at(exact, brute) == 1.0
    assert recall_at(approx, exact) >= 0.95
    index.index.nprobe = 1  # one cell of ~565: a worse candidate set, the recall drops
    assert recall_at(index.search(queries, 20)[0], exact) < recall_at(approx, exact)


@pytest.mark.parametrize(("model", "params"), [
    ("als", {"embedding_size": 8, "epochs": 3}),
    ("transformer", {"epochs": 1, "embedding_size": 16, "ffn_size": 32, "progress": False,
                     "popularity_correction": 0.2}),
    ("transformer", {"epochs": 1, "embedding_size": 16, "ffn_size": 32, "progress": False,
                     "transition_affinity": 4.0}),  # a sparse part beside the products: its items join
])
def test_large_catalog_uses_ann_candidates_and_filters_hold(tmp_path: Path, model: str, params: dict) -> None:
    svc = local_services(tmp_path, ann_threshold=10, ann_candidates=30, page_depth=5, list_depth=10, max_k=5)
    try:
        shop = synthetic_platform(svc, "shop", model=model, params=params)
        served = svc.models.get("shop")
        assert served is not None and served.ann is not None and vector_scorer(served.model) is not None
        user = shop.user_ids[0]
        answer = svc.recommend.recommend("shop", user, k=5)
        assert answer.items[0].reason.candidates == "ann"
        category = shop.data.items[0].category
        narrow = svc.recommend.recommend("shop", user, k=5, filters=Filters(category=category))
        cats = {i.item_id: i.category for i in shop.data.items}
        assert all(cats[i.item_id] == category for i in narrow.items)
        personal = [i for i in narrow.items if i.reason.level == "personal"]
        # too few ANN candidates in the category: the category's items are scored exactly instead
        assert personal and all(i.reason.candidates == "filtered" for i in personal)
    finally:
        svc.close()
