"""The transformer's sampled softmax at catalog scale (issue 22): a step computes the vectors of the rows it uses
only, the id embedding gets a sparse gradient updated lazily (RowSparseAdamW), negatives and log Q cost
O(negatives); training windows and batches are built on the snapshot's arrays. Each is checked against the
form it replaces (the loss over the whole item table, dense AdamW, the dense log Q, per-user loops)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_transformer import FAST, cluster_data, cyclic_data, killed_and_resumed, last_item_queries

from shoprec.data import IdMap, Interactions, ItemCatalog
from shoprec.models import load_model
from shoprec.models.softmax import log_uniform_sampler, sampled_softmax_loss
from shoprec.models.transformer import (
    SeqNet,
    Transformer,
    TransformerConfig,
    build_content,
    build_sequences,
    make_batch,
    training_windows,
)
from shoprec.models.transformer.data import negative_sampler, sample_negatives
from shoprec.models.transformer.optim import RowSparseAdamW


# ----------------------------------------------------------------------- training data on the arrays
def _windows_by_loop(offsets: np.ndarray, max_len: int) -> np.ndarray:
    out = []
    for u in range(len(offsets) - 1):
        lo, stop = int(offsets[u]), int(offsets[u + 1])
        while stop - lo >= 2:
            start = max(lo, stop - max_len - 1)
            out.append((start, stop))
            stop = start + 1
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def _batch_by_loop(items: np.ndarray, windows: np.ndarray, future: int) -> dict[str, np.ndarray]:
    lengths = windows[:, 1] - windows[:, 0] - 1
    b, n_max = len(windows), int(lengths.max())
    inputs, targets = np.zeros((b, n_max), np.int64), np.zeros((b, n_max), np.int64)
    nxt = np.zeros((b, n_max, future), np.int64)
    for r, (start, stop) in enumerate(windows):
        n = stop - start - 1
        inputs[r, :n], targets[r, :n] = items[start:stop - 1], items[start + 1:stop]
        for k in range(min(future, n)):
            nxt[r, :n - k, k] = items[start + 1 + k:stop]
    return {"items": inputs, "targets": targets, "future": nxt}


@pytest.mark.parametrize("max_len", [1, 3, 50])
def test_windows_and_batches_on_the_arrays_equal_the_per_user_loops(max_len: int) -> None:
    rng = np.random.default_rng(max_len)
    n = 3000
    user = np.sort(rng.integers(0, 400, n))  # many users with 0, 1 or 2 events, some with dozens
    data = Interactions(user=user, item=rng.integers(0, 90, n), users=IdMap(str(u) for u in range(400)),
                        items=IdMap(str(i) for i in range(90)), timestamp=rng.integers(0, 10**6, n))
    seqs = build_sequences(data)
    windows = training_windows(seqs, max_len)
    np.testing.assert_array_equal(windows, _windows_by_loop(seqs.offsets, max_len))
    pick = windows[rng.permutation(len(windows))[:64]]
    batch, reference = make_batch(seqs, pick, with_seen=False, future=3), _batch_by_loop(seqs.items, pick, 3)
    for name in ("items", "targets", "future"):
        np.testing.assert_array_equal(batch[name], reference[name])
        assert batch[name].dtype == np.int64


# ----------------------------------------------------------------------- negatives and log Q
def test_negatives_follow_the_log_uniform_law_and_log_q_is_the_dense_formula() -> None:
    counts = np.r_[0, np.random.default_rng(0).integers(0, 40, 50)]  # row 0 = padding; some items never seen
    sampler = negative_sampler(counts, torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)
    negatives, log_q = sample_negatives(sampler, 200_000, 700, gen)
    assert negatives.min() >= 1 and negatives.max() <= 50
    order, p_rank = log_uniform_sampler(counts[1:].astype(np.float64))
    seen = np.bincount(negatives.numpy(), minlength=51)[order + 1] / len(negatives)  # frequency by rank
    np.testing.assert_allclose(seen, p_rank, atol=3e-3)
    # the dense log Q the full-table form used: n_targets * unigram + n_negatives * P(rank), row 0 -> log 1
    q = 700 * counts / counts.sum()
    q[order + 1] += 200_000 * p_rank
    q[0] = 1.0
    every = torch.arange(51)
    np.testing.assert_allclose(log_q(every).numpy(), np.log(np.maximum(q, 1e-12)), rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------- the loss from the rows it uses
def _net(content_attention: bool, tmp_path: Path) -> tuple[SeqNet, Interactions]:
    data, catalog, _ = cluster_data(n_users=40)
    rng = np.random.default_rng(1)  # 0 to 3 attribute tokens per item: bags of every size
    bags = [rng.choice(20, int(rng.integers(0, 4)), replace=False).astype(np.int32) for _ in range(data.n_items)]
    catalog = ItemCatalog(items=catalog.items, title=catalog.title, attribute_ids=bags,
                          vectors={"image": rng.normal(size=(data.n_items, 6)).astype(np.float32)})
    cfg = TransformerConfig(embedding_size=16, n_heads=2, ffn_size=32, max_len=8, dropout=0.0, attention_dropout=0.0,
                            loss="sampled", content_attention=content_attention, exclude_seen_in_loss=True,
                            attribute_loss=0.3, text_encoder="hashing")
    from shoprec.models.training import TrainOptions

    content = build_content(catalog, data.items, cfg, TrainOptions(text_cache_dir=str(tmp_path)))
    assert content.n_attributes and content.text.shape[1] and content.named  # every kind of content
    trained = np.r_[False, np.bincount(data.item, minlength=data.n_items) > 0]
    torch.manual_seed(0)
    net = SeqNet(cfg, data.n_items, content, trained)
    with torch.no_grad():  # content projections of some size, so that a wrong row would show
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return net, data


@pytest.mark.parametrize("content_attention", [False, True])
def test_sampled_loss_from_gathered_rows_equals_the_loss_over_the_whole_item_table(content_attention: bool,
                                                                                  tmp_path: Path) -> None:
    net, data = _net(content_attention, tmp_path)
    seqs = build_sequences(data)
    windows = training_windows(seqs, 8)[:12]
    batch = {k: torch.from_numpy(v) for k, v in make_batch(seqs, windows, with_seen=True).items()}
    gen = torch.Generator().manual_seed(3)
    sampler = negative_sampler(np.bincount(seqs.items, minlength=data.n_items + 1), torch.device("cpu"))
    n_targets = int((batch["targets"] > 0).sum())
    negatives, log_q = sample_negatives(sampler, 20, n_targets, gen)
    keep = (torch.rand(data.n_items + 1, 1, generator=gen) >= 0.3).float()
    net.train()

    # reference: every item's vector (item_table), then the sampled softmax over it (the form before issue 22)
    content = net.content_table()
    table = net.item_table(keep, content)
    h = net.encode(table, batch["items"], batch["events"], batch["gaps"], batch["lengths"], content_table=content)
    real = batch["targets"] > 0
    reference = sampled_softmax_loss(h[real], table, batch["targets"][real], negatives,
                                     log_q(torch.arange(data.n_items + 1)), batch["seen"][real])
    reference = reference + 0.3 * net.attribute_loss(h[real], batch["targets"][real])
    expected = torch.autograd.grad(reference, list(net.parameters()), allow_unused=True)

    net.sparse_ids = True
    loss = net(batch, keep, negatives, log_q)
    got = torch.autograd.grad(loss, list(net.parameters()), allow_unused=True)
    assert float(loss.detach()) == pytest.approx(float(reference.detach()), rel=1e-5)
    for (name, _), a, b in zip(net.named_parameters(), got, expected, strict=True):
        if b is None:
            assert a is None, name
            continue
        assert a is not None, name
        if name == "item_id.weight":
            assert a.is_sparse and a.coalesce().indices().shape[1] < data.n_items  # only the rows used
            a = a.to_dense()
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=name)


# ----------------------------------------------------------------------- lazy AdamW on the rows touched
def test_row_sparse_adamw_updates_the_touched_rows_as_adamw_and_leaves_the_others() -> None:
    torch.manual_seed(0)
    table, dense = torch.randn(30, 4), torch.randn(5, 3)
    rows = torch.tensor([2, 7, 7, 19])  # 7 twice: its gradient rows add up
    params = [torch.nn.Parameter(table.clone()), torch.nn.Parameter(dense.clone())]
    same = [torch.nn.Parameter(table.clone()), torch.nn.Parameter(dense.clone())]
    lazy = RowSparseAdamW(params, lr=0.01, betas=(0.9, 0.98), weight_decay=0.1, fused=True)
    reference = torch.optim.AdamW(same, lr=0.01, betas=(0.9, 0.98), weight_decay=0.1)
    for step in range(3):
        grad_rows = torch.randn(len(rows), 4, generator=torch.Generator().manual_seed(step))
        params[0].grad = torch.sparse_coo_tensor(rows[None], grad_rows, (30, 4), check_invariants=True)
        same[0].grad = params[0].grad.to_dense()
        params[1].grad = same[1].grad = torch.full((5, 3), 0.5 * step - 0.3)
        lazy.step()
        reference.step()
    touched = torch.unique(rows)
    untouched = torch.tensor([r for r in range(30) if r not in touched.tolist()])
    torch.testing.assert_close(params[0].data[touched], same[0].data[touched])
    torch.testing.assert_close(params[1].data, same[1].data)  # dense parameters: AdamW itself
    assert torch.equal(params[0].data[untouched], table[untouched])  # no decay, no momentum off the batch
    # its state has AdamW's names (checkpoints save and resume it) and reloads into a fresh optimizer
    assert set(lazy.state[params[0]]) == {"step", "exp_avg", "exp_avg_sq"}
    again = RowSparseAdamW([torch.nn.Parameter(p.data.clone()) for p in params], lr=0.01, betas=(0.9, 0.98),
                           weight_decay=0.1, fused=True)
    again.load_state_dict(lazy.state_dict())
    torch.testing.assert_close(again.state[again.param_groups[0]["params"][0]]["exp_avg"],
                               lazy.state[params[0]]["exp_avg"])


# ----------------------------------------------------------------------- fit: learns, saves, resumes
def test_sampled_fit_learns_the_planted_next_item_by_id_and_saves(tmp_path: Path) -> None:
    data = cyclic_data(n_items=60)  # ids only: the planted answer is learnt through the sparse id updates
    model = Transformer.from_dict({**FAST, "loss": "sampled", "n_negatives": 16}).fit(data)
    assert model.net is not None and model.net.sparse_ids
    # the ids were trained (lazily, by rows): they start inside +-0.04 (truncated normal) and left it
    assert float(model.net.item_id.weight[1:].detach().abs().max()) > 0.04
    queries = last_item_queries(data)
    top = model.score(queries).argmax(axis=1)
    assert (top == np.array([(q.history[-1] + 1) % data.n_items for q in queries])).mean() > 0.9
    loaded = load_model(model.save(tmp_path / "m"))
    np.testing.assert_allclose(loaded.score(queries[:10]), model.score(queries[:10]), rtol=1e-5, atol=1e-5)


def test_a_killed_sampled_fit_resumes_to_the_same_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    params = {**FAST, "loss": "sampled", "n_negatives": 16, "epochs": 5, "eval_every": 1, "patience": 10}
    reference, resumed, validation = killed_and_resumed(params, 3, tmp_path, monkeypatch)
    q = validation.queries[:20]
    np.testing.assert_allclose(resumed.score(q), reference.score(q), rtol=1e-5, atol=1e-5)
