"""Pre-training one transformer across shops and carrying it over to a shop it never saw
(shoprec.models.transformer.pretrain / carry, shoprec.service.pretrain, `shoprec pretrain`,
`shoprec evaluate --init-from DIR [--zero-shot]`).

Three synthetic shops of one world (shoprec.data.synthetic): their own items and users, titles and
descriptions made of the same product words (a description names the item's accessories: the planted text
signal). Pre-trained on shop-a and shop-b, the model must rank shop-c's next items through their text alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from shoprec.cli import evaluate as evaluate_cli
from shoprec.cli import pretrain as pretrain_cli
from shoprec.data import ItemCatalog
from shoprec.data.synthetic import SyntheticConfig, generate
from shoprec.errors import ConfigError, DataError
from shoprec.evaluation import EvalConfig, run_protocol
from shoprec.models import load_model
from shoprec.models.base import Query
from shoprec.models.factory import ModelFactory
from shoprec.models.transformer import Transformer
from shoprec.models.transformer.config import CARRIED_TEXT_AFFINITY, TEXT_AFFINITY_GRID
from shoprec.models.transformer.pretrain import PRETRAIN_FILE, Shop, join_shops, save_pretrained
from shoprec.preprocess.weights import apply_event_weights
from shoprec.service.pretrain import pretrain_shops
from shoprec.service.transfer import check_inherited, pretrained_source
from shoprec.settings import Settings

SMALL: dict[str, Any] = {"embedding_size": 32, "n_blocks": 1, "n_heads": 2, "ffn_size": 64, "max_len": 10,
                         "dropout": 0.1, "attention_dropout": 0.0, "batch_size": 64, "learning_rate": 5e-3,
                         "epochs": 8, "eval_every": 1, "patience": 2, "progress": False, "num_threads": 1,
                         "text_encoder": "hashing"}


@pytest.fixture(scope="module")
def shops() -> dict[str, Shop]:
    data = generate(SyntheticConfig(n_users=200, n_items=100, n_platforms=3, overlap=0.0, sessions_per_user=5,
                                    seed=1))
    out = {}
    for name in data.platform_names:
        events, catalog = data.to_interactions(name)
        out[name] = Shop(name, apply_event_weights(events, drop_zero=True), catalog)
    return out


@pytest.fixture(scope="module")
def pretrained(shops: dict[str, Shop], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """shop-a and shop-b pre-trained into a directory (hashing text vectors cached beside it)."""
    root = tmp_path_factory.mktemp("pretrained")
    params = {**SMALL, "text_cache_dir": str(root / "text")}
    result = pretrain_shops([shops["shop-a"], shops["shop-b"]], params, sources={"data": ["synthetic"]})
    return save_pretrained(result.model, root / "model", result.facts)


def _params(pretrained: Path, **extra: Any) -> dict[str, Any]:
    return {"progress": False, "num_threads": 1, "text_cache_dir": str(pretrained.parent / "text"), **extra}


def test_the_joined_shops_keep_their_ids_apart_and_drop_per_shop_attribute_ids(shops: dict[str, Shop]) -> None:
    joined, catalog = join_shops([shops["shop-a"], shops["shop-b"]])
    a, b = shops["shop-a"].interactions, shops["shop-b"].interactions
    assert len(joined) == len(a) + len(b) and joined.n_items == a.n_items + b.n_items
    assert joined.items.external(0) == f"shop-a:{a.items.external(0)}"
    assert joined.users.external(joined.user[-1]).startswith("shop-b:")
    row = catalog.items.index(f"shop-b:{b.items.external(3)}")
    assert catalog.title[row] == shops["shop-b"].catalog.title[shops["shop-b"].catalog.items.index(b.items.external(3))]
    assert all(len(ids) == 0 for ids in catalog.attribute_ids)


def test_zero_shot_on_a_shop_it_never_saw_beats_popularity(shops: dict[str, Shop], pretrained: Path) -> None:
    """Strict leave-one-out on shop-c: nothing is trained on it, its items are scored through their text."""
    source = pretrained_source(str(pretrained))
    params = check_inherited(source, _params(pretrained))
    target = shops["shop-c"]
    zero = run_protocol(target.interactions, target.catalog,
                        ModelFactory("transformer", params, start=source.start(zero_shot=True)), EvalConfig())
    popular = run_protocol(target.interactions, target.catalog, ModelFactory("popular"), EvalConfig())
    assert zero.metrics["NDCG@10"] > 3 * popular.metrics["NDCG@10"], (zero.metrics, popular.metrics)
    model = zero.model
    assert isinstance(model, Transformer) and model.initialised_from["zero_shot"] is True
    assert model.training_log == [] and model.initialised_from["fresh"] == ["item_id.weight"]
    # the text affinity chosen on the pre-training's validation (pretrain.json says which), at least
    # CARRIED_TEXT_AFFINITY, is the carried model's
    facts = json.loads((pretrained / PRETRAIN_FILE).read_text())
    assert set(facts["text_affinity_search"]) == {str(w) for w in TEXT_AFFINITY_GRID}
    assert facts["text_affinity"] == source.model.text_affinity
    assert model.text_affinity == max(facts["text_affinity"], CARRIED_TEXT_AFFINITY)


def test_a_zero_shot_model_saves_and_loads_with_the_same_scores(shops: dict[str, Shop], pretrained: Path,
                                                                  tmp_path: Path) -> None:
    source = pretrained_source(str(pretrained))
    target = shops["shop-c"]
    model = Transformer.from_dict(check_inherited(source, _params(pretrained))).start_from(source.model, "p")
    model.carry_over(target.catalog.items, target.catalog)
    loaded = load_model(model.save(tmp_path / "m"))
    from shoprec.models.base import Query

    queries = [Query(user=None, history=np.array([1, 5, 7], dtype=np.int32))]
    np.testing.assert_allclose(loaded.score(queries), model.score(queries), rtol=1e-5, atol=1e-5)


def test_fine_tuning_from_the_pretrained_directory_trains_and_loads(shops: dict[str, Shop], pretrained: Path,
                                                                   tmp_path: Path) -> None:
    source = pretrained_source(str(pretrained))
    target = shops["shop-c"]
    params = check_inherited(source, _params(pretrained, epochs=2))
    model = ModelFactory("transformer", params, start=source.start()).fit(target.interactions, target.catalog)
    assert isinstance(model, Transformer) and model.config.item_ids  # the target's own ids are learnt
    record = model.initialised_from
    assert record["model"] == f"pretrained:{pretrained}" and "text.weight" in record["copied"]
    assert "item_id.weight" in record["fresh"] and len([e for e in model.training_log if not e.get("member")]) == 2
    loaded = load_model(model.save(tmp_path / "tuned"))
    assert isinstance(loaded, Transformer) and loaded.initialised_from == record


def _fine_tuned(shops: dict[str, Shop], pretrained: Path, **extra: Any) -> Any:
    """shop-c's strict leave-one-out, fine-tuned from the pre-trained model (validation targets: the users'
    second-to-last events)."""
    source = pretrained_source(str(pretrained))
    target = shops["shop-c"]
    params = check_inherited(source, _params(pretrained, **extra))
    return run_protocol(target.interactions, target.catalog, ModelFactory("transformer", params, start=source.start()),
                        EvalConfig())


def test_fine_tuning_that_validates_below_its_start_keeps_the_start(shops: dict[str, Shop], pretrained: Path) -> None:
    """One epoch at a learning rate that scrambles the copied network: the start, carried over to shop-c as
    --zero-shot makes it, ranks the validation targets better and is what the fit gives."""
    result = _fine_tuned(shops, pretrained, learning_rate=1.0, epochs=1)
    model = result.model
    assert isinstance(model, Transformer)
    record = model.initialised_from["validation"]
    assert record["kept"] == "start" and record["start"]["NDCG@10"] > record["fine-tuned"]["NDCG@10"], record
    assert model.initialised_from["zero_shot"] is True and model.best_epoch == 0
    assert [e["epoch"] for e in model.training_log if not e.get("member")] == [1]  # it did train: the log says so
    zero = _zero_shot_on(shops["shop-c"], pretrained)
    queries = [Query(user=None, history=np.array(h, dtype=np.int32)) for h in ([1, 5, 7], [2], [9, 3])]
    np.testing.assert_allclose(model.score(queries), zero.score(queries), rtol=1e-5, atol=1e-6)


def test_fine_tuning_that_validates_above_its_start_is_kept(shops: dict[str, Shop], pretrained: Path) -> None:
    """Without the text term (text_affinity 0, for both), the start is its network alone, which the ids learnt on
    shop-c beat."""
    model = _fine_tuned(shops, pretrained, text_affinity=0).model
    assert isinstance(model, Transformer)
    record = model.initialised_from["validation"]
    assert record["kept"] == "fine-tuned" and record["fine-tuned"]["NDCG@10"] > record["start"]["NDCG@10"], record
    assert "zero_shot" not in model.initialised_from and "text.weight" in model.initialised_from["copied"]
    assert model.best_epoch > 0 and model.fitted is not None and model.fitted.members[0].net.trained_mask.any()


def test_fine_tuning_a_shop_without_content_keeps_the_fine_tuned_model(shops: dict[str, Shop],
                                                                      pretrained: Path) -> None:
    """No catalog: the start cannot be carried over (no item has text), so nothing is compared and the fit gives
    the fine-tuned model, with the reason in its record."""
    source = pretrained_source(str(pretrained))
    target = shops["shop-c"]
    params = check_inherited(source, _params(pretrained, epochs=2))
    model = run_protocol(target.interactions, None, ModelFactory("transformer", params, start=source.start()),
                         EvalConfig()).model
    assert isinstance(model, Transformer)
    record = model.initialised_from["validation"]
    assert record["kept"] == "fine-tuned" and "no item of the catalog has text" in record["start"], record
    assert "zero_shot" not in model.initialised_from and model.best_epoch > 0


def test_a_fine_tuned_model_without_a_clear_pair_keeps_its_starts_text_weight(
        shops: dict[str, Shop], pretrained: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no pair of weights clearly above none (here: no gain is ever clear enough), "auto" keeps no term for a
    model trained from scratch, and the start's carried text weight for a fine-tuned one."""
    import shoprec.models.transformer.model as transformer_model

    monkeypatch.setattr(transformer_model, "AFFINITY_MIN_Z", 1e9)
    source = pretrained_source(str(pretrained))
    target = shops["shop-c"]
    params = check_inherited(source, _params(pretrained, epochs=2))
    tuned = _fine_tuned(shops, pretrained, epochs=2).model
    scratch = run_protocol(target.interactions, target.catalog, ModelFactory("transformer", params),
                           EvalConfig()).model
    assert isinstance(tuned, Transformer) and isinstance(scratch, Transformer)
    assert tuned.text_affinity_search and scratch.text_affinity_search  # both searched, neither clearly
    assert (scratch.text_affinity, scratch.transition_affinity) == (0.0, 0.0)
    assert tuned.text_affinity == max(source.model.text_affinity, CARRIED_TEXT_AFFINITY)
    assert tuned.transition_affinity == 0.0


def _zero_shot_on(target: Shop, pretrained: Path) -> Transformer:
    """The pre-trained model carried over to `target`'s training part of the leave-one-out (as run_protocol
    splits it), without validation: the default text weight."""
    from shoprec.data.splits import leave_one_out

    source = pretrained_source(str(pretrained))
    train = leave_one_out(target.interactions).train
    model = ModelFactory("transformer", check_inherited(source, _params(pretrained)),
                         start=source.start(zero_shot=True)).fit(train, target.catalog)
    assert isinstance(model, Transformer)
    return model


def test_mismatched_configurations_and_directories_are_refused_clearly(pretrained: Path, tmp_path: Path) -> None:
    source = pretrained_source(str(pretrained))
    with pytest.raises(ConfigError, match=r"embedding_size = 64 \(the start model's: 32\)"):
        check_inherited(source, {"embedding_size": 64})
    # max_len "auto" (the default) is the start model's length, not a mismatch; another number is one
    assert check_inherited(source, {"max_len": "auto"})["max_len"] == source.params["max_len"] == 10
    with pytest.raises(ConfigError, match=r"max_len = 20 \(the start model's: 10\)"):
        check_inherited(source, {"max_len": 20})
    with pytest.raises(DataError, match="no such directory"):
        pretrained_source(str(tmp_path / "nothing"))
    (tmp_path / "plain").mkdir()
    with pytest.raises(DataError, match=f"not a pre-trained model directory \\(no {PRETRAIN_FILE}"):
        pretrained_source(str(tmp_path / "plain"))
    edited = tmp_path / "edited"
    edited.mkdir()
    for f in pretrained.iterdir():
        (edited / f.name).write_bytes(f.read_bytes())
    facts = json.loads((edited / PRETRAIN_FILE).read_text())
    facts["network"]["n_blocks"] = 3
    (edited / PRETRAIN_FILE).write_text(json.dumps(facts))
    with pytest.raises(DataError, match=r"does not match.*n_blocks = 1 in the model, 3 in pretrain.json"):
        pretrained_source(str(edited))


def test_zero_shot_refuses_another_network_and_a_catalog_it_cannot_read(shops: dict[str, Shop],
                                                                        pretrained: Path) -> None:
    source = pretrained_source(str(pretrained))
    target = shops["shop-c"]
    deeper = Transformer.from_dict({**check_inherited(source, _params(pretrained)), "n_blocks": 2})
    with pytest.raises(ConfigError, match=r"network parameters must be those of the start model.*n_blocks = 2"):
        deeper.start_from(source.model, "p").carry_over(target.catalog.items, target.catalog)
    bare = ItemCatalog(items=target.catalog.items)  # no text, no attributes
    model = Transformer.from_dict(check_inherited(source, _params(pretrained))).start_from(source.model, "p")
    with pytest.raises(DataError, match="no item of the catalog has text"):
        model.carry_over(bare.items, bare)


# ------------------------------------------------------------------------------------------------ the CLI
@pytest.fixture
def loaded_shops(shops: dict[str, Shop], monkeypatch: pytest.MonkeyPatch) -> None:
    """`--data synthetic:shop-x` reads shop-x (the file loader is the datasets' own, tested elsewhere)."""
    def load(fmt: str, path: str) -> SimpleNamespace:
        shop = shops[path]
        return SimpleNamespace(interactions=shop.interactions, catalog=shop.catalog)

    monkeypatch.setattr("shoprec.evaluation.offline.load_dataset", load)
    monkeypatch.setattr(evaluate_cli, "load_dataset", load)


def test_cli_pretrain_then_evaluate_zero_shot_and_refusals(loaded_shops: None, tmp_path: Path) -> None:
    runner = CliRunner()
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}")
    config = json.dumps({**SMALL, "epochs": 2, "text_cache_dir": str(tmp_path / "text")})
    out = tmp_path / "pre"
    done = runner.invoke(pretrain_cli.pretrain, ["--data", "synthetic:shop-a", "--data", "synthetic:shop-b",
                                                 "--out", str(out), "--config", config, "--json"], obj=settings)
    assert done.exit_code == 0, done.output
    facts = json.loads(done.stdout)
    assert [s["name"] for s in facts["shops"]] == ["shop-a", "shop-b"] and (out / PRETRAIN_FILE).is_file()
    again = runner.invoke(pretrain_cli.pretrain, ["--data", "synthetic:shop-a", "--out", str(out)], obj=settings)
    assert isinstance(again.exception, DataError) and "not empty" in str(again.exception)
    base = ["--data", "synthetic:shop-c", "--protocol", "loo", "--model", "transformer"]
    options = json.dumps({"progress": False, "num_threads": 1, "text_cache_dir": str(tmp_path / "text")})
    zero = runner.invoke(evaluate_cli.evaluate, [*base, "--init-from", str(out), "--zero-shot", "--config", options,
                                                 "--json"])
    assert zero.exit_code == 0, zero.output
    doc = json.loads(zero.stdout)
    assert doc["init_from"]["zero_shot"] is True and doc["metrics"]["NDCG@10"] > 0
    refused = runner.invoke(evaluate_cli.evaluate, [*base, "--zero-shot"])
    assert isinstance(refused.exception, ConfigError) and "needs --init-from" in str(refused.exception)
    mismatch = runner.invoke(evaluate_cli.evaluate, [*base, "--init-from", str(out), "--config",
                                                     '{"n_heads": 4}'])
    assert isinstance(mismatch.exception, ConfigError) and "n_heads = 4" in str(mismatch.exception)
