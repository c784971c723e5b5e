"""gru4rec: next-item prediction from the recent history."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from shoprec.data import Interactions
from shoprec.errors import CannotScoreError, ConfigError, DataError
from shoprec.models import Query, RankingValidation, create_model, load_model
from shoprec.models.gru4rec import _windows

FAST = {"epochs": 15, "embedding_size": 32, "batch_size": 32, "learning_rate": 0.01, "dropout": 0.0,
        "device": "cpu", "num_threads": 1, "patience": 0}
N_ITEMS = 12


def cycles(n_users: int = 120, length: int = 6, seed: int = 0) -> Interactions:
    """Each user walks the cycle 0 -> 1 -> ... -> 11 -> 0 from a random start: the next item is known."""
    rng = np.random.default_rng(seed)
    users, items, times = [], [], []
    for u in range(n_users):
        start = int(rng.integers(N_ITEMS))
        for t in range(length):
            users.append(f"u{u}")
            items.append(f"i{(start + t) % N_ITEMS}")
            times.append(t)
    return Interactions.from_ids(users, items, timestamp=times)


@pytest.fixture(scope="module")
def train() -> Interactions:
    return cycles()


def item(train: Interactions, k: int) -> int:
    return train.items.index(f"i{k % N_ITEMS}")


@pytest.mark.parametrize("params", [{}, {"loss": "bpr-max", "negatives": 8}, {"tied": False, "num_layers": 2}])
def test_learns_the_next_item_of_an_anonymous_history(train, params) -> None:
    model = create_model("gru4rec", {**FAST, **params}).fit(train)
    for start in (0, 5, 9):
        history = np.array([item(train, start), item(train, start + 1), item(train, start + 2)])
        scores = model.score([Query(user=None, history=history)])[0]
        assert int(np.argmax(scores)) == item(train, start + 3), (params, start)


def test_known_user_without_history_uses_training_tail(train) -> None:
    model = create_model("gru4rec", {**FAST, "epochs": 2, "max_history": 4}).fit(train)
    tail = train.to_sequences()[7][-4:]
    np.testing.assert_allclose(model.score([Query(user=7)]), model.score([Query(history=tail)]), rtol=1e-5)


def test_only_the_last_max_history_known_items_count(train) -> None:
    model = create_model("gru4rec", {**FAST, "epochs": 2, "max_history": 3}).fit(train)
    long = np.array([item(train, k) for k in range(8)] + [-1, 10**6])  # unknown items are ignored
    short = long[5:8]
    np.testing.assert_allclose(model.score([Query(history=long)]), model.score([Query(history=short)]), rtol=1e-5)


def test_cannot_score_without_known_items(train) -> None:
    model = create_model("gru4rec", {**FAST, "epochs": 1}).fit(train)
    assert not model.can_score(Query(user=None, history=np.array([10**6])))
    with pytest.raises(CannotScoreError):
        model.score([Query(user=None)])


def test_windows_cover_each_transition_once() -> None:
    seq = np.arange(11)
    windows = _windows([seq, np.array([5])], length=4)
    targets = sorted(int(t) for w in windows for t in w[1:])
    assert targets == list(range(1, 11))
    assert all(2 <= len(w) <= 4 for w in windows)


def test_early_stopping_on_ranking_validation(train) -> None:
    seqs = train.to_sequences()
    queries = [Query(user=u, history=s[:-1]) for u, s in enumerate(seqs[:40])]
    val = RankingValidation(queries, np.array([s[-1] for s in seqs[:40]]), k=3)
    model = create_model("gru4rec", {**FAST, "epochs": 6, "patience": 2, "learning_rate": 0.003})
    model.fit(train, validation=val)
    logged = [e["NDCG@3"] for e in model.training_log]
    assert val.evaluate(model)["NDCG@3"] == pytest.approx(max(logged), abs=1e-6)
    assert model.best_epoch == 1 + int(np.argmax(logged))


def test_same_seed_same_scores_and_save_load(train, tmp_path: Path) -> None:
    a = create_model("gru4rec", {**FAST, "epochs": 2, "dropout": 0.2, "seed": 5}).fit(train)
    b = create_model("gru4rec", {**FAST, "epochs": 2, "dropout": 0.2, "seed": 5}).fit(train)
    queries = [Query(user=3), Query(history=np.array([1, 2]))]
    np.testing.assert_array_equal(a.score(queries), b.score(queries))
    loaded = load_model(a.save(tmp_path / "gru"))
    np.testing.assert_array_equal(loaded.score(queries), a.score(queries))


def test_needs_a_sequence_of_two_events() -> None:
    train = Interactions.from_ids(["a", "b", "c"], ["x", "y", "z"])
    with pytest.raises(DataError, match="two or more"):
        create_model("gru4rec", FAST).fit(train)


@pytest.mark.parametrize(("params", "name"), [({"embedding_size": 0}, "embedding_size"),
                                              ({"loss": "top1"}, "loss"), ({"max_history": 0}, "max_history")])
def test_bad_config_names_the_parameter(params, name) -> None:
    with pytest.raises(ConfigError, match=name):
        create_model("gru4rec", params)


@pytest.mark.slow
def test_beauty_dense_subset_beats_popularity(shared_data: Path) -> None:
    """Beauty restricted to its 1,000 most frequent items (users with >= 5 such events; leave-one-out
    validation target, seen items excluded): 10 epochs of gru4rec rank far above popularity."""
    lines = [line.split() for line in (shared_data / "amazon-beauty" / "Beauty.txt").read_text().splitlines()]
    top = {item for item, _ in Counter(i for line in lines for i in line[1:]).most_common(1000)}
    users, items, times = [], [], []
    for user, *seq in lines:
        seq = [i for i in seq if i in top]
        if len(seq) >= 5:
            users += [user] * len(seq)
            items += seq
            times += list(range(len(seq)))
    data = Interactions.from_ids(users, items, timestamp=times)
    seqs = data.to_sequences()
    keep = np.ones(len(data), dtype=bool)
    order, bounds = data.sequence_rows()
    for u in range(data.n_users):
        keep[order[bounds[u]:bounds[u + 1]][-2:]] = False  # test and validation targets
    train = data.subset(keep)
    val = RankingValidation([Query(user=u, history=s[:-2]) for u, s in enumerate(seqs)],
                            np.array([s[-2] for s in seqs]), exclude=[s[:-2] for s in seqs], k=10)
    popular = val.evaluate(create_model("popular").fit(train))["NDCG@10"]
    model = create_model("gru4rec", {"epochs": 10, "device": "cpu", "patience": 0}).fit(train, validation=val)
    assert val.evaluate(model)["NDCG@10"] > 5 * popular
