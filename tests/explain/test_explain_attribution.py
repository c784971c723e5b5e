"""Leave-one-out attribution is faithful for every model kind used in serving, and costs one score call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from shoprec.data.synthetic import SyntheticConfig, generate
from shoprec.explain import fallback_reason, history_reason, leave_one_out
from shoprec.explain.attribution import without
from shoprec.models.base import Query, Recommender, create_model
from shoprec.preprocess.weights import apply_event_weights
from shoprec.ranking import top_k

FAST: dict[str, dict[str, Any]] = {
    "itemknn": {},
    "ease": {"regularization": 10.0},
    "als": {"embedding_size": 16, "epochs": 10},
    "transformer": {"ensemble": 1, "epochs": 3, "embedding_size": 16, "ffn_size": 32, "n_blocks": 1, "batch_size": 64,
                    "use_text": False, "device": "cpu", "num_threads": 1, "progress": False, "patience": 0},
}


@pytest.fixture(scope="module")
def data() -> Any:
    raw, catalog = generate(SyntheticConfig(n_users=120, n_items=60, seed=3)).to_interactions()
    return apply_event_weights(raw, drop_zero=True), catalog


@pytest.fixture(scope="module", params=sorted(FAST))
def model(request: pytest.FixtureRequest, data: Any) -> Recommender:
    train, catalog = data
    return create_model(request.param, FAST[request.param]).fit(train, catalog)


def _query(model: Recommender, data: Any, user: int, known: bool) -> Query:
    train = data[0]
    history = train.item[train.user == user][-8:].astype(np.int32)
    return Query(user=user if known else None, history=history)


class CountingModel:
    """Delegates to a model, counting score calls and rows."""

    def __init__(self, model: Recommender) -> None:
        self.model, self.calls, self.rows = model, 0, 0

    def can_score(self, query: Query) -> bool:
        return self.model.can_score(query)

    def score(self, queries: Sequence[Query]) -> np.ndarray:
        self.calls += 1
        self.rows += len(queries)
        return self.model.score(queries)


@pytest.mark.parametrize("known", [True, False], ids=["personal", "session"])
def test_removing_the_top_because_of_item_lowers_the_score_most(model: Recommender, data: Any, known: bool) -> None:
    train = data[0]
    checked = 0
    for user in range(0, 120, 24):
        query = _query(model, data, user, known)
        if len(set(query.history.tolist())) < 3 or not model.can_score(query):
            continue
        full = model.score([query])[0]
        idx, _ = top_k(full[None, :], 5, exclude=[query.history])
        att = leave_one_out(model, query, idx[0])
        # independent check: each leave-one-out query scored on its own, over the whole catalog
        alone = {h: model.score([without(query, h)])[0] if model.can_score(without(query, h)) else 0.0 * full
                 for h in set(query.history.tolist())}
        for t, item in enumerate(idx[0].tolist()):
            top, top_drop = att.ranked(t)[0]
            drops = {h: float(full[item] - s[item]) for h, s in alone.items()}
            assert drops[top] == pytest.approx(max(drops.values()), abs=1e-4)
            assert top_drop == pytest.approx(drops[top], abs=1e-4)
            checked += 1
    assert checked >= 10, f"only {checked} recommendations checked (users {len(np.unique(train.user))})"


def test_one_batched_score_call_with_capped_history(model: Recommender, data: Any) -> None:
    query = _query(model, data, 3, known=True)
    long = Query(user=query.user, history=np.concatenate([np.arange(30, dtype=np.int32), query.history]))
    counting = CountingModel(model)
    leave_one_out(counting, long, np.arange(10), cap=20)  # type: ignore[arg-type]
    assert counting.calls == 1 and counting.rows <= 21


def test_history_reason_names_positive_causes_most_influential_first() -> None:
    reason = history_reason([("a", 0.5), ("b", 0.2), ("c", 0.0), ("d", -0.1)], "itemknn",
                            titles={"a": "Red mug"}, verbs={"a": "purchase"}, level="personal")
    assert reason.type == "history" and reason.source == "itemknn" and reason.level == "personal"
    assert reason.because_of == ("a", "b") and reason.weights == (0.5, 0.2)
    assert reason.text == "Because you bought Red mug"
    assert reason.to_json() == {"type": "history", "source": "itemknn", "level": "personal", "because_of": ["a", "b"],
                                "weights": [0.5, 0.2], "text": "Because you bought Red mug"}


def test_history_reason_without_influence_is_the_popularity_prior() -> None:
    assert history_reason([("a", 0.0)], "popular").type == "fallback_popular"
    assert fallback_reason().source == "popularity"


def test_top_matches_ranked_per_target(model: Recommender, data: Any) -> None:
    query = _query(model, data, 7, known=True)
    att = leave_one_out(model, query, np.arange(12))
    positions, weights = att.top(3)
    for t in range(12):
        expected = att.ranked(t)[:3]
        assert [int(att.candidates[j]) for j in positions[t]] == [h for h, _ in expected]
        assert weights[t] == pytest.approx([w for _, w in expected], abs=1e-6)


def test_the_prepared_batch_gives_the_models_own_full_scores(model: Recommender, data: Any) -> None:
    """Serving takes a list's scores from the same prepared batch as its explanations: they must be the
    model's own scores of the full query (the same ranking as offline evaluation)."""
    from shoprec.explain.attribution import LeaveOneOut

    query = _query(model, data, user=3, known=True)
    shared = LeaveOneOut(model, query).scores()
    np.testing.assert_allclose(shared, model.score([query])[0], rtol=1e-4, atol=1e-4)
