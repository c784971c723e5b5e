"""Fine-tuning transfer of the transformer (`Transformer.start_from`, `transfer_weights`): a model trained on a
large platform gives a small platform's model its start; items differ per platform, their text is shared."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch

from shoprec.data import IdMap, Interactions, ItemCatalog
from shoprec.errors import ConfigError
from shoprec.models import load_model
from shoprec.models.transformer import SeqNet, Transformer, build_content, transfer_weights


def _benchmark() -> ModuleType:
    """benchmarks/transfer_finetune.py as a module: its synthetic shops, config and comparison."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "transfer_finetune.py"
    spec = importlib.util.spec_from_file_location("transfer_finetune", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("transfer_finetune", module)
    spec.loader.exec_module(module)
    return module


BENCH = _benchmark()
TINY: dict[str, Any] = BENCH.TINY


@pytest.fixture(scope="module")
def platforms() -> dict[str, tuple[Interactions, ItemCatalog]]:
    """shop-a (400 users) and shop-b: their own items, titles from the same product words; first visits."""
    shops: dict[str, tuple[Interactions, ItemCatalog]] = BENCH.shops(400, 120, "first")
    return shops


def test_fine_tuned_from_a_large_platform_beats_training_on_the_small_one_alone(
        platforms: dict[str, tuple[Interactions, ItemCatalog]], tmp_path: Path) -> None:
    """Strict leave-one-out test NDCG@10 on 60 users of shop-b, the mean over 3 seeds (users and models)."""
    runs = [BENCH.compare(platforms, 60, seed, {"text_cache_dir": str(tmp_path)}) for seed in range(3)]
    scratch = np.mean([r["scratch"]["NDCG@10"] for r in runs])
    tuned = np.mean([r["fine-tuned"]["NDCG@10"] for r in runs])
    assert tuned > scratch + 0.03, runs


def _net(n_items: int, titles: list[str], tmp: Path, tokens: list[str] | None = None, **params: Any) -> SeqNet:
    model = Transformer.from_dict({**TINY, "use_attributes": True, "text_cache_dir": str(tmp), **params})
    cfg, options = model.config, model.options
    items = IdMap(f"i{i}" for i in range(n_items))
    brands = tokens or [""] * n_items
    catalog = ItemCatalog(items=items, title=titles, brand=brands)
    return SeqNet(cfg, n_items, build_content(catalog, items, cfg, options), trained=np.ones(n_items + 1, dtype=bool))


def test_transfer_weights_copies_the_network_but_not_the_item_ids(tmp_path: Path) -> None:
    torch.manual_seed(0)
    src = _net(5, ["red mug", "blue mug", "coffee", "tea", "filter"], tmp_path, ["x", "y", "x", "y", "x"])
    torch.manual_seed(1)
    dst = _net(3, ["green mug", "tea", "coffee maker"], tmp_path, ["z", "x", "z"])
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    copied = transfer_weights(src, dst)
    assert "item_id.weight" not in copied and "attributes.weight" not in copied  # vocabularies differ
    for name in ("text.weight", "position.weight", "event.weight", "gap.weight", "ln_out.weight",
                 "blocks.0.qkv.weight", "blocks.0.ffn.3.bias"):
        assert name in copied
        assert torch.equal(dict(dst.named_parameters())[name], dict(src.named_parameters())[name])
    after = dst.state_dict()
    for name in ("item_id.weight", "attributes.weight", "text_vectors", "trained_mask", "attr_flat"):
        assert torch.equal(after[name], before[name]), name  # fresh or the platform's own content
    same_vocab = _net(3, ["a", "b", "c"], tmp_path, ["x", "y", "x"])
    assert "attributes.weight" in transfer_weights(src, same_vocab)


def test_the_model_records_where_it_started_from_and_keeps_it_on_load(
        platforms: dict[str, tuple[Interactions, ItemCatalog]], tmp_path: Path) -> None:
    a, catalog_a = platforms["shop-a"]
    b, catalog_b = platforms["shop-b"]
    source = Transformer.from_dict({**TINY, "epochs": 1, "text_cache_dir": str(tmp_path)}).fit(a, catalog_a)
    model = Transformer.from_dict({**TINY, "epochs": 1, "text_cache_dir": str(tmp_path)})
    model.start_from(source, "shop-a/m1").fit(b, catalog_b)
    record = model.initialised_from
    assert record["model"] == "shop-a/m1" and "text.weight" in record["copied"]
    assert record["fresh"] == ["item_id.weight"]
    loaded = load_model(model.save(tmp_path / "m"))
    assert isinstance(loaded, Transformer) and loaded.initialised_from == record
    wider = Transformer.from_dict({**TINY, "embedding_size": 64, "epochs": 1, "text_cache_dir": str(tmp_path)})
    with pytest.raises(ConfigError, match=r"embedding_size.*start model"):
        wider.start_from(source, "shop-a/m1").fit(b, catalog_b)
    with pytest.raises(ConfigError, match="fitted transformer"):
        model.start_from(Transformer(), "unfitted")


@pytest.mark.parametrize("ratio", [0.0, 0.1, 1.0])
def test_copied_lr_ratio_scales_the_learning_rate_of_the_copied_weights(
        platforms: dict[str, tuple[Interactions, ItemCatalog]], tmp_path: Path, ratio: float) -> None:
    """0 freezes what came from the start model while the shop's own item ids train; 0.1 moves it less than 1
    does; 1 (the default) trains everything alike."""
    a, catalog_a = platforms["shop-a"]
    b, catalog_b = platforms["shop-b"]
    params = {**TINY, "epochs": 2, "text_cache_dir": str(tmp_path)}
    source = Transformer.from_dict({**params, "epochs": 1}).fit(a, catalog_a)
    assert source.net is not None
    start = {name: p.detach().clone() for name, p in source.net.named_parameters()}
    tuned = Transformer.from_dict({**params, "copied_lr_ratio": ratio}).start_from(source, "a").fit(b, catalog_b)
    assert tuned.net is not None
    copied = tuned.initialised_from["copied"]
    assert "blocks.0.qkv.weight" in copied and "text.weight" in copied
    mine = dict(tuned.net.named_parameters())
    moved = {name: float((mine[name].detach() - start[name]).abs().max()) for name in copied}
    if ratio == 0.0:
        assert max(moved.values()) == 0.0, moved
    else:
        assert min(moved.values()) > 0.0, moved
    assert float(mine["item_id.weight"].detach().abs().max()) > 0.04  # trained past the init (+-0.04)
    if ratio == 0.1:  # less than the whole rate moves them: compare with ratio 1, same seed
        whole = Transformer.from_dict(params).start_from(source, "a").fit(b, catalog_b)
        assert whole.net is not None
        full = dict(whole.net.named_parameters())
        assert sum(moved.values()) < sum(float((full[n].detach() - start[n]).abs().max()) for n in copied)


def test_copied_lr_ratio_is_checked_by_name() -> None:
    with pytest.raises(ConfigError, match="copied_lr_ratio"):
        Transformer.from_dict({**TINY, "copied_lr_ratio": -0.5})
