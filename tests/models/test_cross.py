"""The `cross` model: bridge users, cross-domain transfer from a history in another domain, the
regularization chosen on validation, and artifacts. (The shared contract runs in test_contract.py.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from shoprec.data import IdMap, Interactions
from shoprec.models import Query, RankingValidation, create_model, load_model
from shoprec.models.cross import Cross, bridge_users, item_domains
from shoprec.privacy.artifacts import erase_users
from shoprec.ranking import top_k

GENRES, PER_GENRE = 3, 6


def two_domains(seed: int = 0, bridge: int = 45, cold: int = 9) -> tuple[Interactions, list[Query], np.ndarray]:
    """Users like one genre in both domains "mall" and "shop"; `cold` users have mall events only.

    Returns (train, one query per cold user holding its mall history, each cold user's genre)."""
    rng = np.random.default_rng(seed)
    items = IdMap(f"{d}:{g}-{k}" for d in ("mall", "shop") for g in range(GENRES) for k in range(PER_GENRE))
    users, rows, genres = IdMap(), [], []
    for u in range(bridge + cold):
        users.add(f"u{u}")
        g = u % GENRES
        genres.append(g)
        mall = [items.index(f"mall:{g}-{k}") for k in rng.choice(PER_GENRE, 3, replace=False)]
        shop = [items.index(f"shop:{g}-{k}") for k in rng.choice(PER_GENRE, 3, replace=False)]
        rows.append(mall + (shop if u < bridge else []))
    user = np.repeat(np.arange(len(rows)), [len(r) for r in rows])
    train = Interactions(user=user, item=np.concatenate(rows), users=users, items=items)
    queries = [Query(user=None, history=np.asarray(rows[u], dtype=np.int32)) for u in range(bridge, bridge + cold)]
    return train, queries, np.asarray(genres[bridge:])


def test_item_domains_are_id_prefixes() -> None:
    codes = item_domains(IdMap(["a:1", "b:1", "a:2", "plain"]), ":")
    assert codes[0] == codes[2] and len({int(codes[0]), int(codes[1]), int(codes[3])}) == 3


def test_bridge_users_span_two_domains_and_the_most_active_are_kept() -> None:
    # users: 0 spans both domains (3 items), 1 one domain, 2 both (2 items), 3 both (4 items)
    x = sp.csr_matrix(np.array([[1, 1, 1, 0], [1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 1, 1]], dtype=np.float32))
    domains = np.array([0, 0, 1, 1])
    assert bridge_users(x, domains, 10).tolist() == [0, 2, 3]
    assert bridge_users(x, domains, 2).tolist() == [0, 3]
    assert bridge_users(x, np.zeros(4, dtype=np.int32), 10).tolist() == [0, 1, 2, 3]  # one domain: everyone


def test_a_mall_history_ranks_shop_items_of_the_same_genre_first() -> None:
    train, queries, genres = two_domains()
    model = create_model("cross").fit(train)
    assert model.training_log[0]["bridge_users"] == 45
    shop = np.array([e.startswith("shop:") for e in train.items.to_list()])
    idx, _ = top_k(model.score(queries), 3, exclude=[np.flatnonzero(~shop)] * len(queries))
    top_genres = np.array([[int(train.items.external(int(i)).split(":")[1].split("-")[0]) for i in row]
                           for row in idx])
    assert (top_genres == genres[:, None]).all()


def test_regularization_is_chosen_on_validation_and_survives_save_load(tmp_path: Path) -> None:
    train, queries, genres = two_domains()
    targets = np.array([train.items.index(f"shop:{g}-0") for g in genres])
    validation = RankingValidation(queries=queries, targets=targets, k=3)
    model = create_model("cross", {"regularization_grid": [0.1, 10.0, 1000.0]}).fit(train, validation=validation)
    assert isinstance(model, Cross)
    tried = [e for e in model.training_log if "regularization" in e]
    assert [e["regularization"] for e in tried] == [0.1, 10.0, 1000.0]
    best = max(tried, key=lambda e: e["NDCG@3"])
    assert model.regularization == best["regularization"]
    loaded = load_model(model.save(tmp_path / "cross"))
    assert isinstance(loaded, Cross) and loaded.regularization == model.regularization
    np.testing.assert_array_equal(loaded.score(queries), model.score(queries))


def test_repeated_histories_in_a_batch_get_the_scores_they_get_alone() -> None:
    train, queries, _ = two_domains()
    model = create_model("cross").fit(train)
    batch = [queries[0], queries[1], queries[0], queries[2], queries[1]]
    alone = np.vstack([model.score([q]) for q in batch])
    np.testing.assert_allclose(model.score(batch), alone, rtol=1e-6, atol=1e-7)


def test_erasing_a_bridge_user_from_the_artifact_empties_their_row(tmp_path: Path) -> None:
    train, queries, _ = two_domains()
    model = create_model("cross").fit(train)
    path = model.save(tmp_path / "cross")
    erased = erase_users(path, ["u0"])
    assert erased is not None
    loaded = load_model(erased)
    assert isinstance(loaded, Cross) and loaded.rows[0].nnz == 0 and loaded.rows[1].nnz == 6  # u0 is bridge row 0
    scores = loaded.score(queries)
    assert np.isfinite(scores).all()
    kept = create_model("cross").fit(train)
    assert isinstance(kept, Cross)
    keep = np.ones(kept.rows.shape[0], dtype=np.float32)
    keep[0] = 0.0  # the same model with u0's row emptied by hand scores the same
    emptied = sp.csr_matrix(sp.diags(keep) @ kept.rows)
    emptied.eliminate_zeros()
    kept._set_rows(emptied)
    np.testing.assert_allclose(scores, kept.score(queries), rtol=1e-5, atol=1e-6)
