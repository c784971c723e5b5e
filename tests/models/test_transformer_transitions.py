"""The transformer's transition affinity (`transition_affinity`): the share of the training events after an item
that were of each other item, summed over the query's newest items and added to the network's scores with a
weight fixed or chosen on the validation targets (with the text affinity's); kept with the model, beside its
inner-product view as a sparse part that explanations and serving's candidate searches add."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shoprec.data import IdMap, Interactions
from shoprec.errors import ConfigError
from shoprec.explain.attribution import LeaveOneOut
from shoprec.models import load_model
from shoprec.models.base import Query, RankingValidation
from shoprec.models.transformer import Transformer, build_sequences
from shoprec.models.transformer.config import TEXT_AFFINITY_GRID, TRANSITION_AFFINITY_GRID
from shoprec.models.transformer.transitions import history_weights, transition_matrix

TINY: dict[str, Any] = {"ensemble": 1, "embedding_size": 16, "n_blocks": 1, "n_heads": 2, "ffn_size": 32,
                        "dropout": 0.1, "attention_dropout": 0.0, "batch_size": 64, "learning_rate": 1e-3,
                        "use_text": False, "use_attributes": False, "progress": False, "num_threads": 1,
                        "epochs": 1, "max_len": 10, "popularity_correction": 0.0, "transition_affinity": 0.0}


def successor_shop(n_users: int = 150, n_items: int = 40, seed: int = 0) -> tuple[Interactions, RankingValidation]:
    """Every item has one successor (a random permutation); each user views a random item, then its successor,
    four times, then one random item. The validation target of every user is the successor of the newest item
    of its history: what the counts of successions tell and a network trained for one epoch cannot."""
    rng = np.random.default_rng(seed)
    successor = rng.permutation(n_items)
    successor[successor == np.arange(n_items)] = (successor[successor == np.arange(n_items)] + 1) % n_items
    users, items, targets, histories = [], [], [], []
    for u in range(n_users):
        seq = []
        for _ in range(4):
            a = int(rng.integers(n_items))
            seq += [a, int(successor[a])]
        seq.append(int(rng.integers(n_items)))
        users += [u] * (len(seq) - 2)  # training: all but the last two (validation target, test target)
        items += seq[:-2]
        histories.append(np.array(seq[:-2]))
        targets.append(seq[-2])
    data = Interactions(user=np.array(users), item=np.array(items), users=IdMap(str(u) for u in range(n_users)),
                        items=IdMap(f"i{i}" for i in range(n_items)),
                        timestamp=np.arange(len(users), dtype=np.float64))
    queries = [Query(user=u, history=h) for u, h in enumerate(histories)]
    return data, RankingValidation(queries, np.array(targets), exclude=histories)


def test_the_matrix_is_the_share_of_what_followed_each_item_within_a_history() -> None:
    # user 0: 0 1 2 1 ; user 1: 2 2 0 ; the step from user 0's last event to user 1's first is not a succession
    data = Interactions(user=np.array([0, 0, 0, 0, 1, 1, 1]), item=np.array([0, 1, 2, 1, 2, 2, 0]),
                        users=IdMap(["a", "b"]), items=IdMap(["x", "y", "z"]),
                        timestamp=np.arange(7, dtype=np.float64))
    p = transition_matrix(build_sequences(data), 3).toarray()
    expected = np.array([[0, 1, 0],    # 0 -> 1
                         [0, 0, 1],    # 1 -> 2 (user 0's last 1 is followed by nothing of its own)
                         [.5, .5, 0]])  # 2 -> 1 and 2 -> 0; 2 -> 2 (a repeat) is left out
    np.testing.assert_allclose(p, expected)


def test_history_weights_halve_with_each_older_item_over_the_newest_eight() -> None:
    items = np.array([[1, 2, 3, 0, 0], [4, 4, 4, 4, 4], [0] * 5, [5] * 5], dtype=np.int64)  # 1-based, padded
    lengths = np.array([3, 5, 0, 5])
    w = history_weights(items, lengths, 5).toarray()
    np.testing.assert_allclose(w[0], [0.25, 0.5, 1.0, 0, 0])  # item index = 1-based id - 1, the newest weighs 1
    np.testing.assert_allclose(w[1], [0, 0, 0, 1 + .5 + .25 + .125 + .0625, 0])  # a repeated item sums its weights
    np.testing.assert_allclose(w[2], 0)  # an empty history
    wide = history_weights(np.arange(1, 13)[None, :], np.array([12]), 12).toarray()[0]
    assert np.count_nonzero(wide) == 8 and wide[-1] == 1.0 and wide[4] == 0.5 ** 7


def test_transition_affinity_is_chosen_on_validation_where_successions_tell_the_next_item() -> None:
    data, validation = successor_shop()
    plain = Transformer.from_dict(TINY).fit(data, validation=validation)
    chosen = Transformer.from_dict({**TINY, "transition_affinity": None}).fit(data, validation=validation)
    assert plain.transition_affinity == 0.0 and plain.transitions is None
    assert set(chosen.transition_affinity_search) == {str(w) for w in TRANSITION_AFFINITY_GRID}
    search = chosen.transition_affinity_search
    assert chosen.transition_affinity > 0
    assert search[str(chosen.transition_affinity)] == max(search.values()) > search["0.0"] + 0.3
    assert validation.evaluate(chosen)["NDCG@10"] > 0.8 > validation.evaluate(plain)["NDCG@10"] + 0.3
    assert chosen.chosen_params()["transition_affinity"] == chosen.transition_affinity
    # the exact term: weight * sum_k 0.5 ** k P[k-th newest item]
    q = validation.queries[0]
    p = chosen.transitions.toarray()
    newest_first = np.asarray(q.history)[::-1][:8]
    expected = chosen.transition_affinity * sum(0.5 ** k * p[h] for k, h in enumerate(newest_first))
    np.testing.assert_allclose(chosen.history_scores([q]).toarray()[0], expected, atol=1e-6)


def test_scores_are_the_inner_products_plus_the_sparse_part() -> None:
    data, validation = successor_shop()
    model = Transformer.from_dict({**TINY, "transition_affinity": 4.0}).fit(data)
    assert model.transition_affinity == 4.0  # a number given is used, validation or not
    queries = [*validation.queries[:20], Query(history=np.array([3]))]
    part = model.history_scores(queries)
    assert part is not None and part.nnz and part.data.min() > 0  # >= 0, on the items that followed only
    view = model.user_vectors(queries) @ model.item_factors.T + part.toarray()
    np.testing.assert_allclose(model.score(queries), view, rtol=1e-4, atol=1e-4)
    # explanations: the leave-one-out batch adds it to the full query and to every query without an item
    loo = LeaveOneOut(model, queries[0])
    np.testing.assert_allclose(loo.scores(), model.score([queries[0]])[0], rtol=1e-4, atol=1e-4)
    targets = np.arange(data.n_items)
    attribution = loo.attribution(targets)
    full = model.score(loo.batch)
    np.testing.assert_allclose(attribution.base, full[0], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(attribution.drops[loo.scorable][0], full[0] - full[1], rtol=1e-3, atol=1e-3)
    assert Transformer.from_dict(TINY).fit(data).history_scores(queries) is None


def test_save_and_load_keep_the_transitions(tmp_path: Path) -> None:
    data, validation = successor_shop()
    model = Transformer.from_dict({**TINY, "transition_affinity": None}).fit(data, validation=validation)
    loaded = load_model(model.save(tmp_path / "m"))
    assert isinstance(loaded, Transformer) and loaded.transition_affinity == model.transition_affinity
    assert loaded.transition_affinity_search == model.transition_affinity_search
    q = validation.queries[:10]
    np.testing.assert_allclose(loaded.score(q), model.score(q), rtol=1e-5, atol=1e-5)
    plain = Transformer.from_dict(TINY).fit(data)
    assert "transitions.indptr" not in plain._state()  # no term, nothing kept
    old = load_model(plain.save(tmp_path / "plain"))
    assert isinstance(old, Transformer) and old.transition_affinity == 0.0 and old.history_scores(q) is None


def test_text_and_transition_affinities_are_chosen_together(tmp_path: Path) -> None:
    from test_transformer_affinity import TINY as TEXT_TINY
    from test_transformer_affinity import twin_shop

    data, catalog, validation = twin_shop()
    params = {**TEXT_TINY, "text_cache_dir": str(tmp_path), "text_affinity": None, "transition_affinity": None}
    model = Transformer.from_dict(params).fit(data, catalog, validation=validation)
    # twins share a title and follow each other: either part tells the answer, the pair is searched as one
    assert set(model.text_affinity_search) == {str(w) for w in TEXT_AFFINITY_GRID}
    assert set(model.transition_affinity_search) == {str(w) for w in TRANSITION_AFFINITY_GRID}
    best = max(model.text_affinity_search.values())
    assert model.text_affinity_search[str(model.text_affinity)] == best > 0.8
    assert model.transition_affinity_search[str(model.transition_affinity)] == best  # the slices cross there
    assert max(model.transition_affinity_search.values()) == best
    assert model.text_affinity > 0 or model.transition_affinity > 0


def test_a_carried_model_has_no_transitions_and_a_negative_weight_is_refused(tmp_path: Path) -> None:
    from test_transformer_affinity import TINY as TEXT_TINY
    from test_transformer_affinity import twin_shop

    data, catalog, _ = twin_shop()
    params = {**TEXT_TINY, "text_cache_dir": str(tmp_path), "item_ids": False}
    source = Transformer.from_dict({**params, "transition_affinity": 4.0}).fit(data, catalog)
    assert source.transition_affinity == 4.0
    other, other_catalog, other_validation = twin_shop(seed=1, prefix="other-")
    carried = Transformer.from_dict(params).start_from(source, "s", zero_shot=True).fit(other, other_catalog)
    assert carried.transition_affinity == 0.0 and carried.transitions is None
    no_text = Transformer.from_dict({**params, "text_affinity": 0}).start_from(source, "s", zero_shot=True)
    assert no_text.fit(other, other_catalog).history_scores(other_validation.queries[:2]) is None  # no sparse term
    with pytest.raises(ConfigError, match=r"'transition_affinity'.*>= 0, \"auto\" or null"):
        Transformer.from_dict({**TINY, "transition_affinity": -1.0})


def test_a_sparse_part_beside_the_products_keeps_the_candidates_exact() -> None:
    """A transformer with a transition term scores inner products + a sparse part >= 0 (models.vectors): the scan's
    bounds carry the part, so its candidates still hold the exact top n, with the exact full scores."""
    from shoprec.explain.attribution import LeaveOneOut
    from shoprec.service.scan import Int8Scan
    from shoprec.service.scanned import ScannedLevel
    from shoprec.service.served import ServedModel

    data, validation = successor_shop(n_items=300, n_users=200)
    model = Transformer.from_dict({**TINY, "transition_affinity": 16.0}).fit(data)
    served = ServedModel("m", "transformer", model, scan=Int8Scan.build(model.item_factors, "on"))
    to_catalog = np.arange(data.n_items)
    rng = np.random.default_rng(0)
    lifted = 0
    for query in validation.queries[:30]:
        loo = LeaveOneOut(model, query)
        blocked = rng.random(data.n_items) < 0.3
        level = ScannedLevel.search(served, loo, to_catalog, blocked, 10)
        assert level is not None
        full = model.score([query])[0]
        np.testing.assert_allclose(level.scores, full[level.candidates], rtol=1e-5, atol=1e-5)
        allowed = np.flatnonzero(~blocked)
        nth = np.sort(full[allowed])[::-1][9]
        assert set(allowed[full[allowed] >= nth].tolist()) <= set(level.candidates.tolist())
        part = model.history_scores([query])
        lifted += int(np.isin(part.indices, level.candidates).any())
    assert lifted  # the part lifted items into the candidates (the test's shop makes it dominate)


def test_finishing_a_fit_again_with_other_choices_is_the_fit_with_them() -> None:
    """benchmarks/affinity_choices.py's premise: the weights left null are chosen after training (training
    validates with 0 for them), so finishing a fit of 0s again with nulls gives the fit with nulls."""
    import dataclasses

    data, validation = successor_shop()
    nulls = {"transition_affinity": None, "popularity_correction": None}
    direct = Transformer.from_dict({**TINY, **nulls}).fit(data, validation=validation)
    again = Transformer.from_dict({**TINY, "transition_affinity": 0.0}).fit(data, validation=validation)
    assert again.transition_affinity == 0.0 and again.fitted is not None
    again.config = dataclasses.replace(again.config, **nulls)
    again.finish(list(again.fitted.members), data, validation)
    assert again.transition_affinity == direct.transition_affinity > 0
    assert again.transition_affinity_search == direct.transition_affinity_search
    assert again.popularity_search == direct.popularity_search
    q = validation.queries[:10]
    np.testing.assert_allclose(again.score(q), direct.score(q), rtol=1e-5, atol=1e-5)


def test_a_pair_is_taken_only_when_its_gain_is_clear_on_the_validation_targets() -> None:
    """The best pair of weights must beat the grid's first (0, 0) by AFFINITY_MIN_Z standard errors of the
    per-query NDCG difference (the paired z), else (0, 0) stays: a gain of a few queries is noise."""
    from shoprec.models.training import Dist
    from shoprec.ranking import ndcg_from_ranks, target_ranks

    data, validation = successor_shop()
    model = Transformer.from_dict({**TINY, "transition_affinity": None}).fit(data, validation=validation)
    assert model.fitted is not None and model.affinity_z is not None and model.affinity_z > 2.0
    probe = model._ensemble(list(model.fitted.members), correction=0.0, affinity=1.0, transition=1.0)
    grid = (0.0, 4.0)
    clear = probe.choose_affinities(validation, Dist(), (0.0,), grid, min_z=0.0)
    held = probe.choose_affinities(validation, Dist(), (0.0,), grid, min_z=float("inf"))
    assert clear[1] == 4.0 and held[1] == 0.0  # the same search, the same z; the bar decides
    assert held[3] == clear[3] and held[4] == clear[4]
    # the z: the mean per-query gain over its standard error, by hand
    network, _, transition = probe.score_parts(validation.queries)
    assert transition is not None
    gains = []
    for weight in grid:
        ranks = target_ranks(network + weight * transition, validation.targets, exclude=validation.exclude)
        gains.append(ndcg_from_ranks(ranks, validation.k).numpy())
    diff = gains[1] - gains[0]
    assert clear[4] == pytest.approx(diff.mean() / (diff.std() / np.sqrt(len(diff))), rel=1e-6)
    # targets that the successions do not tell: whatever is taken, it is (0, 0) or a clear gain
    rng = np.random.default_rng(1)
    noise = RankingValidation(validation.queries, rng.integers(0, data.n_items, len(validation.targets)),
                              exclude=validation.exclude)
    _, step, _, _, z = probe.choose_affinities(noise, Dist(), (0.0,), TRANSITION_AFFINITY_GRID, min_z=2.0)
    assert step == 0.0 or (z is not None and z >= 2.0)
