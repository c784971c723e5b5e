"""The transformer's text affinity (`text_affinity`): the raw sentence-encoder similarity between the query's
newest items and each candidate, added to the network's scores with a weight fixed or chosen on the validation
targets; kept with the model, inherited by a model carried to a shop it never saw, and in the inner-product view
that serving's candidate scan uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shoprec.data import IdMap, Interactions, ItemCatalog
from shoprec.errors import ConfigError
from shoprec.models import load_model
from shoprec.models.base import Query, RankingValidation
from shoprec.models.transformer import Transformer
from shoprec.models.transformer.carry import carried_text_affinity
from shoprec.models.transformer.config import CARRIED_TEXT_AFFINITY, TEXT_AFFINITY_GRID
from shoprec.models.transformer.pretrain import PRETRAIN_DEFAULTS

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo",
         "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango"]
TINY: dict[str, Any] = {"ensemble": 1, "embedding_size": 16, "n_blocks": 1, "n_heads": 2, "ffn_size": 32,
                        "dropout": 0.1, "attention_dropout": 0.0, "batch_size": 64, "learning_rate": 1e-3,
                        "text_encoder": "hashing", "use_attributes": False, "progress": False, "num_threads": 1,
                        "epochs": 1, "max_len": 10, "popularity_correction": 0.0, "transition_affinity": 0.0}


def twin_shop(n_users: int = 150, seed: int = 0, prefix: str = "") -> tuple[Interactions, ItemCatalog,
                                                                                RankingValidation]:
    """20 pairs of twins (items 2k and 2k + 1 share a title nobody else has); each user views a random item, then
    its twin, four times, then one random item (9 events). The validation target of every user is the twin of
    the newest item of its history: what the titles tell and a network trained for one epoch cannot."""
    rng = np.random.default_rng(seed)
    n_items = 2 * len(WORDS)
    users, items, targets, queries, histories = [], [], [], [], []
    for u in range(n_users):
        seq = []
        for _ in range(4):
            a = int(rng.integers(n_items))
            seq += [a, a ^ 1]
        seq.append(int(rng.integers(n_items)))
        users += [u] * (len(seq) - 2)  # training: all but the last two (validation target, test target)
        items += seq[:-2]
        histories.append(np.array(seq[:-2]))
        targets.append(seq[-2])
    ids = IdMap(f"{prefix}i{i}" for i in range(n_items))
    catalog = ItemCatalog(items=ids, title=[f"{WORDS[i // 2]} {WORDS[i // 2]}wear" for i in range(n_items)])
    data = Interactions(user=np.array(users), item=np.array(items), users=IdMap(str(u) for u in range(n_users)),
                        items=ids, timestamp=np.arange(len(users), dtype=np.float64))
    queries = [Query(user=u, history=h) for u, h in enumerate(histories)]
    return data, catalog, RankingValidation(queries, np.array(targets), exclude=histories)


def test_text_affinity_is_chosen_on_validation_where_the_titles_tell_the_next_item(tmp_path: Path) -> None:
    data, catalog, validation = twin_shop()
    params = {**TINY, "text_cache_dir": str(tmp_path)}
    plain = Transformer.from_dict({**params, "text_affinity": 0.0}).fit(data, catalog, validation=validation)
    chosen = Transformer.from_dict({**params, "text_affinity": None}).fit(data, catalog, validation=validation)
    assert plain.text_affinity == 0.0 and plain.text_affinity_search == {}
    search = chosen.text_affinity_search
    assert list(search) == [str(w) for w in TEXT_AFFINITY_GRID]
    assert chosen.text_affinity > 0 and search[str(chosen.text_affinity)] == max(search.values())
    assert search[str(chosen.text_affinity)] > 0.99 > search["0.0"] + 0.1  # the planted answer: every twin first
    assert validation.evaluate(chosen)["NDCG@10"] == pytest.approx(search[str(chosen.text_affinity)], abs=1e-5)
    assert validation.evaluate(plain)["NDCG@10"] == pytest.approx(search["0.0"], abs=1e-5)  # the same network
    # a fixed weight is used as given, no search
    fixed = Transformer.from_dict({**params, "text_affinity": 4.0}).fit(data, catalog, validation=validation)
    assert fixed.text_affinity == 4.0 and fixed.text_affinity_search == {}
    # kept with the model
    loaded = load_model(chosen.save(tmp_path / "m"))
    assert isinstance(loaded, Transformer) and loaded.text_affinity == chosen.text_affinity
    queries = validation.queries[:20]
    np.testing.assert_allclose(loaded.score(queries), chosen.score(queries), rtol=1e-5, atol=1e-5)


def test_scores_equal_the_inner_product_view_with_a_dense_text_affinity(tmp_path: Path) -> None:
    """text_neighbours 0 (and models saved before it): the similarity to every item, through the view's columns."""
    data, catalog, validation = twin_shop()
    model = Transformer.from_dict({**TINY, "text_affinity": 8.0, "popularity_correction": 0.2, "ensemble": 2,
                                   "text_neighbours": 0, "text_cache_dir": str(tmp_path)}).fit(data, catalog)
    queries = validation.queries[:30]
    scores = model.score(queries)
    np.testing.assert_allclose(model.user_vectors(queries) @ model.item_factors.T, scores, rtol=1e-4, atol=1e-4)
    assert model.item_factors.shape[1] == 2 * 16 + 256 + 1  # two members, the hashing text, the correction
    # the gain over the same network without it: 8 * sum_k 0.5 ** k * cos(text of the k-th newest item, text of i)
    q = queries[0]
    without = Transformer.from_dict({**TINY, "popularity_correction": 0.2, "ensemble": 2,
                                     "text_cache_dir": str(tmp_path)}).fit(data, catalog)
    gain = model.score([q])[0] - without.score([q])[0]
    assert model.net is not None
    text = model.net.text_vectors.numpy()[1:]
    unit = text / np.linalg.norm(text, axis=1, keepdims=True)
    newest_first = np.asarray(q.history)[::-1][:8]
    expected = 8.0 * sum(0.5 ** k * unit[h] @ unit.T for k, h in enumerate(newest_first))
    np.testing.assert_allclose(gain, expected, atol=1e-3)
    assert gain[int(q.history[-1]) ^ 1] >= 8.0 - 1e-3  # the newest item's twin: the same title


def test_the_text_neighbours_are_a_sparse_term_beside_the_inner_product_view(tmp_path: Path) -> None:
    """The default: each history item's text_neighbours most similar items, their similarity minus the last one's,
    added beside the members' inner products (history_scores), as the transition term is; saved with the model."""
    data, catalog, validation = twin_shop()
    params = {**TINY, "popularity_correction": 0.2, "text_cache_dir": str(tmp_path), "text_neighbours": 6}
    model = Transformer.from_dict({**params, "text_affinity": 8.0}).fit(data, catalog)
    without = Transformer.from_dict({**params, "text_affinity": 0.0}).fit(data, catalog)  # the same network
    assert model.item_factors.shape[1] == 16 + 1  # no text columns: the member and the correction
    queries = validation.queries[:30]
    scores = model.score(queries)
    part = model.history_scores(queries)
    assert part is not None and without.history_scores(queries) is None
    np.testing.assert_allclose(model.user_vectors(queries) @ model.item_factors.T + part.toarray(), scores,
                               rtol=1e-4, atol=1e-4)
    assert model.net is not None
    text = model.net.text_vectors.numpy()[1:]
    unit = text / np.linalg.norm(text, axis=1, keepdims=True)
    sim = unit @ unit.T
    nearest = np.zeros_like(sim)  # by hand: the 6 most similar, minus the 6th's similarity
    for h in range(len(sim)):
        top = np.argsort(-sim[h], kind="stable")[:6]
        nearest[h, top] = sim[h, top] - sim[h, top].min()
    for q, row in zip(queries[:5], scores[:5], strict=True):
        newest_first = np.asarray(q.history)[::-1][:8]
        expected = 8.0 * sum(0.5 ** k * nearest[h] for k, h in enumerate(newest_first))
        np.testing.assert_allclose(row - without.score([q])[0], expected, atol=1e-3)
        newest = int(q.history[-1])  # its twin (the same title) is among its nearest, with the largest share
        assert nearest[newest, newest ^ 1] == nearest[newest].max() > 0
    loaded = load_model(model.save(tmp_path / "m"))
    assert isinstance(loaded, Transformer) and loaded.text_neighbours is not None
    assert (loaded.text_neighbours != model.text_neighbours).nnz == 0
    np.testing.assert_allclose(loaded.score(queries), scores, rtol=1e-5, atol=1e-5)
    with pytest.raises(ConfigError, match="text_neighbours"):
        Transformer.from_dict({**TINY, "text_neighbours": -1})


def test_the_sparse_terms_at_some_columns_are_those_columns_of_the_whole_rows(tmp_path: Path) -> None:
    """history_scores(queries, columns), what an explanation's leave-one-out rows read: the text neighbours' and the
    transitions' terms at those items only, equal to the whole rows' columns (a column asked twice included), and
    the leave-one-out drops equal to scoring each history without the item."""
    from shoprec.explain.attribution import LeaveOneOut

    data, catalog, validation = twin_shop()
    params = {**TINY, "text_cache_dir": str(tmp_path), "text_neighbours": 6, "text_affinity": 8.0,
              "transition_affinity": 4.0}
    model = Transformer.from_dict(params).fit(data, catalog)
    queries = validation.queries[:20]
    whole = model.history_scores(queries)
    assert whole is not None
    columns = np.array([int(queries[0].history[-1]) ^ 1, 3, 0, 3, len(model.item_factors) - 1])
    part = model.history_scores(queries, columns)
    assert part is not None and part.shape == (len(queries), len(columns))
    np.testing.assert_allclose(part.toarray(), whole[:, columns].toarray(), rtol=1e-6, atol=1e-6)
    assert part[0, 0] > 0  # the newest item's twin: its text neighbour and its successor
    loo = LeaveOneOut(model, queries[0])
    targets = np.arange(len(model.item_factors))
    drops = loo.attribution(targets).drops
    full = model.score(loo.batch)
    np.testing.assert_allclose(loo.scores(), full[0], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(drops[loo.scorable], full[0][None, :] - full[1:], rtol=1e-4, atol=1e-4)


def test_auto_keeps_a_weight_only_with_a_clear_gain_and_null_takes_the_best(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """"auto" (the default) asks the best pair for AFFINITY_MIN_Z standard errors over (0, 0); null (pre-training's
    default: a carried model keeps the weight) takes the best pair as it is, and its gain need not be clear."""
    from shoprec.models.transformer.config import AFFINITY_MIN_Z
    from shoprec.models.transformer.serving import Ensemble

    asked: list[float] = []
    choose = Ensemble.choose_affinities

    def recorded(self: Ensemble, *args: Any, **kwargs: Any) -> Any:
        asked.append(args[-1])
        return choose(self, *args, **kwargs)

    monkeypatch.setattr(Ensemble, "choose_affinities", recorded)
    data, catalog, validation = twin_shop()
    params = {**TINY, "text_cache_dir": str(tmp_path), "transition_affinity": 0.0}
    for weight, min_z in (("auto", AFFINITY_MIN_Z), (None, 0.0)):
        model = Transformer.from_dict({**params, "text_affinity": weight}).fit(data, catalog, validation=validation)
        assert asked[-1] == min_z
        search = model.text_affinity_search
        assert model.text_affinity_search[str(model.text_affinity)] == max(search.values())  # a clear gain here


def test_a_model_without_text_has_no_affinity_to_choose(tmp_path: Path) -> None:
    data, _, validation = twin_shop()
    model = Transformer.from_dict({**TINY, "text_affinity": None}).fit(data, None, validation=validation)
    assert model.text_affinity == 0.0 and model.text_affinity_search == {}
    fixed = Transformer.from_dict({**TINY, "text_affinity": 4.0}).fit(data, None)
    assert fixed.text_affinity == 0.0  # what it uses (and saves): nothing, without text vectors


def test_pre_training_chooses_it_and_a_carried_model_keeps_it_at_least_at_the_floor(tmp_path: Path) -> None:
    assert PRETRAIN_DEFAULTS["text_affinity"] is None
    data, catalog, validation = twin_shop()
    params = {**TINY, "item_ids": False, "text_cache_dir": str(tmp_path)}
    source = Transformer.from_dict({**params, "text_affinity": None}).fit(data, catalog, validation=validation)
    assert source.text_affinity > 0
    # another shop of twins, its own items (names): nothing trained on it
    other, other_catalog, other_validation = twin_shop(seed=1, prefix="other-")
    carried = Transformer.from_dict(params).start_from(source, "source", zero_shot=True).fit(other, other_catalog)
    # "auto" (the default): the source's weight, at least the floor
    assert carried.text_affinity == max(source.text_affinity, CARRIED_TEXT_AFFINITY)
    off = Transformer.from_dict({**params, "text_affinity": 0}).start_from(source, "source", zero_shot=True)
    assert off.fit(other, other_catalog).text_affinity == 0.0  # a number given is used, 0 too
    assert other_validation.evaluate(carried)["NDCG@10"] > 0.5  # the twins found through the text alone
    loaded = load_model(carried.save(tmp_path / "carried"))
    assert isinstance(loaded, Transformer) and loaded.text_affinity == carried.text_affinity


def test_the_carried_weight_has_a_floor_that_a_larger_source_weight_keeps() -> None:
    assert carried_text_affinity(0.0) == carried_text_affinity(2.0) == CARRIED_TEXT_AFFINITY
    assert carried_text_affinity(2 * CARRIED_TEXT_AFFINITY) == 2 * CARRIED_TEXT_AFFINITY


def test_a_carried_model_calibrates_it_on_the_new_shops_validation_when_asked(tmp_path: Path) -> None:
    """text_affinity null on a zero-shot model: the weight is chosen on the validation targets given to fit (the
    new shop's); the network is the source's, untouched."""
    data, catalog, _ = twin_shop()
    params = {**TINY, "item_ids": False, "text_cache_dir": str(tmp_path)}
    source = Transformer.from_dict(params).fit(data, catalog)  # no affinity of its own (no validation)
    assert source.text_affinity == 0.0
    other, other_catalog, other_validation = twin_shop(seed=1, prefix="other-")
    kept = Transformer.from_dict(params).start_from(source, "s", zero_shot=True).fit(
        other, other_catalog, validation=other_validation)
    calibrated = Transformer.from_dict({**params, "text_affinity": None}).start_from(source, "s", zero_shot=True).fit(
        other, other_catalog, validation=other_validation)
    assert kept.text_affinity == CARRIED_TEXT_AFFINITY and kept.text_affinity_search == {}  # "auto": the floor
    given = Transformer.from_dict({**params, "text_affinity": 2.0}).start_from(source, "s", zero_shot=True).fit(
        other, other_catalog, validation=other_validation)
    assert given.text_affinity == 2.0 and given.text_affinity_search == {}  # a positive number is used as given
    assert calibrated.text_affinity > 0 and set(calibrated.text_affinity_search) == {str(w) for w in TEXT_AFFINITY_GRID}
    assert calibrated.training_log == []
    search = calibrated.text_affinity_search
    assert search[str(calibrated.text_affinity)] == max(search.values()) > search["0.0"]
    assert other_validation.evaluate(calibrated)["NDCG@10"] == pytest.approx(max(search.values()), abs=1e-5)
    assert other_validation.evaluate(kept)["NDCG@10"] == pytest.approx(search[str(CARRIED_TEXT_AFFINITY)], abs=1e-5)
    assert calibrated.net is not None and kept.net is not None
    theirs = dict(kept.net.named_parameters())
    for name, mine in calibrated.net.named_parameters():  # the source's weights (item ids: unused, never trained)
        if name in calibrated.initialised_from["copied"]:
            np.testing.assert_array_equal(mine.detach().numpy(), theirs[name].detach().numpy(), err_msg=name)


def test_text_affinity_is_checked_by_name() -> None:
    with pytest.raises(ConfigError, match="text_affinity"):
        Transformer.from_dict({**TINY, "text_affinity": -1.0})


def test_a_model_saved_before_the_text_affinity_loads_without_one(tmp_path: Path) -> None:
    import json

    data, catalog, validation = twin_shop()
    model = Transformer.from_dict({**TINY, "text_affinity": 4.0, "text_cache_dir": str(tmp_path)}).fit(data, catalog)
    path = model.save(tmp_path / "m")
    meta_file = path / "meta.json"
    meta = json.loads(meta_file.read_text())
    for key in ("text_affinity", "text_affinity_search"):
        meta["model_meta"].pop(key)
    meta_file.write_text(json.dumps(meta))
    loaded = load_model(path)
    assert isinstance(loaded, Transformer) and loaded.text_affinity == 0.0
    np.testing.assert_allclose(loaded.user_vectors(validation.queries[:5]) @ loaded.item_factors.T,
                               loaded.score(validation.queries[:5]), rtol=1e-4, atol=1e-4)


def test_a_catalog_over_the_exact_neighbour_search_keeps_the_dense_text_term(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import shoprec.models.transformer.transitions as transitions

    monkeypatch.setattr(transitions, "NEIGHBOURS_MAX_ITEMS", 10)  # the twin shop's 40 items are "too many"
    data, catalog, validation = twin_shop()
    model = Transformer.from_dict({**TINY, "text_affinity": 8.0, "text_cache_dir": str(tmp_path)}).fit(data, catalog)
    assert model.text_neighbours is None and model.history_scores(validation.queries[:3]) is None
    assert model.item_factors.shape[1] == 16 + 256  # the member and the hashing text's columns
    queries = validation.queries[:10]
    np.testing.assert_allclose(model.user_vectors(queries) @ model.item_factors.T, model.score(queries),
                               rtol=1e-4, atol=1e-4)
