"""The transformer fuses the shop's own named item vectors: on a shop where only the image vectors tell the
item clusters apart (every title is the same), cold items of a cluster are ranked for that cluster's users
through their vectors, and not without them (use_vectors=False). The shop goes through the real path: ingest
into a database, snapshot, fit; the saved model keeps its vector spaces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from shoprec.data.synthetic_vectors import VectorShop, cold_ndcg, vector_shop
from shoprec.ingest.pipeline import ingest
from shoprec.models import load_model
from shoprec.models.base import Query
from shoprec.models.transformer import Transformer, TransformerConfig, build_content
from shoprec.models.transformer.config import NETWORK_PARAMS
from shoprec.storage import load_interactions

PARAMS = {"ensemble": 1, "patience": 4, "embedding_size": 32, "n_blocks": 1, "n_heads": 2, "ffn_size": 64,
          "batch_size": 32, "dropout": 0.1, "attention_dropout": 0.0, "device": "cpu", "num_threads": 1,
          "progress": False, "epochs": 20, "id_dropout": 0.3, "use_attributes": False, "text_encoder": "hashing"}


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[VectorShop, object, object]:
    """The synthetic shop, imported into a SQLite database and read back by the snapshot."""
    from shoprec.storage import create_db

    planted = vector_shop()
    engine: sa.Engine = create_db(f"sqlite:///{tmp_path_factory.mktemp('db') / 'shoprec.db'}")
    report = ingest(engine, "shop", planted.records())
    assert not report.rejected
    data, catalog = load_interactions(engine, "shop")
    engine.dispose()
    assert catalog.items.to_list() == planted.catalog.items.to_list()  # cold items are in the catalog
    np.testing.assert_array_equal(catalog.vectors["image"], planted.catalog.vectors["image"])
    return planted, data, catalog


def _queries(data) -> list[Query]:  # type: ignore[no-untyped-def]
    return [Query(user=u, history=s) for u, s in enumerate(data.to_sequences())]


def test_cold_items_are_ranked_through_the_image_vectors(shop, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    planted, data, catalog = shop
    params = {**PARAMS, "text_cache_dir": str(tmp_path)}
    with_vectors = Transformer.from_dict(params).fit(data, catalog)
    without = Transformer.from_dict({**params, "use_vectors": False}).fit(data, catalog)
    queries = _queries(data)
    users = np.array([q.user for q in queries])
    assert (planted.user_cluster[users] == np.arange(len(users)) % 4).all()
    ndcg_with = cold_ndcg(with_vectors.score(queries), planted)
    ndcg_without = cold_ndcg(without.score(queries), planted)
    assert ndcg_with > 0.9  # the cold items of the user's cluster come first
    assert ndcg_without < 0.45  # the text is the same for every item: chance (0.25) without the vectors
    scores = with_vectors.score(queries)[:, planted.hidden]
    same = planted.cluster_of[planted.hidden][None, :] == planted.user_cluster[users][:, None]
    assert (np.where(same, scores, np.inf).min(axis=1) > np.where(same, -np.inf, scores).max(axis=1)).mean() > 0.9

    with_vectors.save(tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    np.testing.assert_allclose(loaded.score(queries[:20]), with_vectors.score(queries[:20]), rtol=1e-4, atol=1e-5)
    assert isinstance(loaded, Transformer) and loaded.net is not None
    assert {n: s.proj.in_features for n, s in loaded.net.named_vectors.items()} == {"image": 16}


def test_content_normalises_named_vectors_and_leaves_missing_rows_zero(shop) -> None:  # type: ignore[no-untyped-def]
    _, _, catalog = shop
    catalog.vector_mask["image"][3] = False  # item 3 has no image vector
    try:
        content = build_content(catalog, catalog.items, TransformerConfig(use_text=False, use_attributes=False))
    finally:
        catalog.vector_mask["image"][3] = True
    table = content.named["image"]
    assert table.shape == (len(catalog) + 1, 16) and not table[0].any() and not table[4].any()
    norms = np.linalg.norm(np.delete(table, [0, 4], axis=0), axis=1)
    np.testing.assert_allclose(norms, 1.0, rtol=1e-5)
    assert content.has_content[1:].sum() == len(catalog) - 1
    off = build_content(catalog, catalog.items, TransformerConfig(use_text=False, use_vectors=False))
    assert off.named == {} and "use_vectors" in NETWORK_PARAMS
