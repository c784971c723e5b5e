"""The cdr-cold protocol on a small two-domain CDRIB directory written by the tests, with a planted answer:
a user who likes genre g in domain "mall" likes genre g in domain "shop", while shop's popularity favours
genre 0, so only a model that reads the mall history can find the cold users' shop items."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from evalhelpers import Recorder

from shoprec.cli import evaluate as cli_mod
from shoprec.datasets import load
from shoprec.datasets.dataset import Dataset
from shoprec.errors import ConfigError, DataError
from shoprec.evaluation.cdr import parse_target
from shoprec.evaluation.protocols import EvalConfig, run_protocol
from shoprec.models import create_model

GENRES, PER_GENRE, SHARED, VALID, TEST = 4, 10, 80, range(60, 70), range(70, 80)


def _items(rng: np.random.Generator, genre: int, n: int) -> list[int]:
    return (genre * PER_GENRE + rng.choice(PER_GENRE, size=n, replace=False)).tolist()


def write_pair(root: Path, seed: int = 0) -> Path:
    """shop_mall (target shop) and mall_shop folders; users 0..79 are shared, 60..79 cold in shop."""
    rng = np.random.default_rng(seed)
    files: dict[str, list[str]] = {f"{d}/{s}": [] for d in ("shop_mall", "mall_shop")
                                   for s in ("train", "valid", "test")}
    for u in range(SHARED):
        g = u % GENRES
        files["mall_shop/train"] += [f"{u}\t{i}" for i in _items(rng, g, 4)]
        part = "valid" if u in VALID else "test" if u in TEST else "train"
        files[f"shop_mall/{part}"] += [f"{u}\t{i}" for i in _items(rng, g, 3)]
    for u in range(SHARED, SHARED + 100):  # shop-only users, all of genre 0: popularity points there
        files["shop_mall/train"] += [f"{u}\t{i}" for i in _items(rng, 0, 3)]
    for u in range(SHARED, SHARED + 40):  # mall-only users
        files["mall_shop/train"] += [f"{u}\t{i}" for i in _items(rng, u % GENRES, 3)]
    for key, lines in files.items():
        path = root / f"{key}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def pair_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pair(tmp_path_factory.mktemp("cdr"))


@pytest.fixture(scope="module")
def pair(pair_dir: Path) -> Dataset:
    return load("cdrib", pair_dir)


def evaluate(pair: Dataset, make, **settings):
    cfg = EvalConfig(protocol="cdr-cold", target="shop_mall", ks=(10,), **settings)
    return run_protocol(pair.interactions, pair.catalog, make, cfg, domains=pair.domains)


def is_shop(pair: Dataset) -> np.ndarray:
    return np.array([e.startswith("shop:") for e in pair.interactions.items.to_list()])


# ------------------------------------------------------------------------------------ protocol
def test_cross_model_finds_the_planted_genre_where_popularity_cannot(pair: Dataset) -> None:
    popular = evaluate(pair, lambda: create_model("popular"))
    cross = evaluate(pair, lambda: create_model("cross"))
    als = evaluate(pair, lambda: create_model("als", {"embedding_size": 8, "regularization": 1.0, "alpha": 10.0}))
    assert popular.n_users_evaluated == cross.n_users_evaluated == len(TEST)
    assert popular.metrics["NDCG@10"] < 0.2  # only the genre-0 quarter of the cold users can be hit
    assert cross.metrics["NDCG@10"] > 0.5 > 2 * popular.metrics["NDCG@10"]
    assert cross.metrics["Recall@10"] > 0.9  # 3 test items among 9 unseen same-genre shop items
    assert als.metrics["NDCG@10"] > popular.metrics["NDCG@10"]


def test_only_target_items_are_ranked_from_the_source_history(pair: Dataset) -> None:
    """A model that puts every mall item first still only recommends shop items: the lowest-index ones."""
    shop = is_shop(pair)
    model = Recorder(score_fn=lambda q, n: np.where(shop, -np.arange(n), 1e6).astype(np.float32))
    result = evaluate(pair, lambda: model)
    top10 = np.flatnonzero(shop)[:10]
    test = pair.domains["shop"].test
    ndcg, recall, hits, pairs = [], [], 0, 0
    for u in np.unique(test.user):  # the metrics, recomputed by hand
        rel = set(test.item[test.user == u].tolist())
        gains = [1.0 / np.log2(r + 2) for r, i in enumerate(top10) if i in rel]
        ideal = sum(1.0 / np.log2(r + 2) for r in range(min(len(rel), 10)))
        ndcg.append(sum(gains) / ideal)
        recall.append(len(gains) / len(rel))
        hits, pairs = hits + len(gains), pairs + len(rel)
    assert result.metrics["NDCG@10"] == pytest.approx(np.mean(ndcg))
    assert result.metrics["Recall@10"] == pytest.approx(np.mean(recall))
    assert result.metrics["HR@10_pairs"] == pytest.approx(hits / pairs)
    assert result.unit_keys == [str(u) for u in TEST]
    histories = np.concatenate([q.history for q in model.seen_queries])
    assert len(histories) and not shop[histories].any()  # queries hold mall items only


def test_joint_training_holds_both_train_files_and_no_held_out_event(pair: Dataset) -> None:
    model = Recorder()
    evaluate(pair, lambda: model)
    assert model.seen_train is not None
    shop, mall = pair.domains["shop"], pair.domains["mall"]
    assert len(model.seen_train) == len(shop.train) + len(mall.train)
    cold = {pair.interactions.users.index(str(u)) for u in [*VALID, *TEST]}
    trained_shop = model.seen_train.user[is_shop(pair)[model.seen_train.item]]
    assert not cold & set(trained_shop.tolist())
    assert model.seen_validation is not None  # one query per validation pair, never a test pair
    assert len(model.seen_validation.targets) == len(shop.valid)


def test_target_only_models_fall_back_to_popularity_and_say_so(pair: Dataset) -> None:
    model = Recorder()
    result = evaluate(pair, lambda: model, training="target-only")
    popular = evaluate(pair, lambda: create_model("popular"), training="target-only")
    assert model.seen_train is not None and len(model.seen_train) == len(pair.domains["shop"].train)
    assert result.metrics["NDCG@10"] == pytest.approx(popular.metrics["NDCG@10"])
    assert any("got the popularity of shop (fallback)" in n for n in result.notes)
    assert any("target-only training" in n for n in result.notes)


def test_split_valid_evaluates_the_validation_users_without_passing_validation(pair: Dataset) -> None:
    model = Recorder()
    result = evaluate(pair, lambda: model, split="valid")
    assert result.unit_keys == [str(u) for u in VALID]
    assert model.seen_validation is None


def test_bad_target_or_data_without_domains_is_a_clear_error(pair: Dataset) -> None:
    with pytest.raises(ConfigError, match="valid: mall_shop, shop_mall"):
        run_protocol(pair.interactions, None, Recorder, EvalConfig(protocol="cdr-cold", target="shop_toys"),
                     domains=pair.domains)
    with pytest.raises(ConfigError, match="needs --target"):
        run_protocol(pair.interactions, None, Recorder, EvalConfig(protocol="cdr-cold"), domains=pair.domains)
    with pytest.raises(DataError, match="needs a dataset with domains"):
        run_protocol(pair.interactions, None, Recorder, EvalConfig(protocol="cdr-cold", target="shop_mall"))
    with pytest.raises(ConfigError, match="training"):
        EvalConfig(protocol="cdr-cold", target="shop_mall", training="both")


# ------------------------------------------------------------------------------------ command line
def test_evaluate_command_writes_the_per_user_and_pair_metrics(pair_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cross.json"
    res = CliRunner().invoke(cli_mod.evaluate, [
        "--data", f"cdrib:{pair_dir}", "--protocol", "cdr-cold", "--target", "shop_mall", "--model", "cross",
        "--json", str(out)])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["protocol"] == "cdr-cold" and doc["settings"]["target"] == "shop_mall"
    assert {"NDCG@10", "Recall@10", "HR@10_pairs", "NDCG@20"} <= set(doc["metrics"])
    assert doc["per_user"]["keys"] == [str(u) for u in TEST]
    assert doc["metrics"]["NDCG@10"] > 0.5


def test_evaluate_command_rejects_an_unknown_target(pair_dir: Path) -> None:
    res = CliRunner().invoke(cli_mod.evaluate, [
        "--data", f"cdrib:{pair_dir}", "--protocol", "cdr-cold", "--target", "mall_toys", "--model", "popular"])
    assert res.exit_code != 0
    assert isinstance(res.exception, ConfigError) and "mall_toys" in str(res.exception)


def test_targets_name_the_pair_or_its_folder() -> None:
    two = {"cell": None, "electronics": None}
    assert parse_target("cell_electronics", two) == ("cell", "electronics")
    assert parse_target("cell_phone_electronics", two) == ("cell", "electronics")  # CDRIB folder name
    assert parse_target("electronics", two) == ("electronics", "cell")
    assert parse_target("electronics_cell_phone", two) == ("electronics", "cell")
    with pytest.raises(ConfigError, match="valid: cell_electronics, electronics_cell"):
        parse_target("phone_cell", two)


# ------------------------------------------------------------------------------------ real data
@pytest.fixture(scope="module")
def game_video(shared_data: Path) -> Dataset:
    path = shared_data / "cdrib-game-video"
    if not path.is_dir():
        pytest.skip(f"{path} not found; skipping the CDRIB real-data test")
    return load("cdrib", path)


@pytest.mark.realdata
@pytest.mark.parametrize(("target", "ndcg"), [("game_video", 0.0082), ("video_game", 0.0275)])
def test_real_pair_reproduces_the_reference_popularity(game_video: Dataset, target: str, ndcg: float) -> None:
    cfg = EvalConfig(protocol="cdr-cold", target=target, ks=(10,), training="target-only")
    result = run_protocol(game_video.interactions, None, lambda: create_model("popular"), cfg,
                          domains=game_video.domains)
    assert result.metrics["NDCG@10"] == pytest.approx(ndcg, abs=5e-5)  # issue 7's figures


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.parametrize("target", ["game_video", "video_game"])
def test_real_pair_cross_beats_joint_als_and_twice_popularity(game_video: Dataset, target: str) -> None:
    def ndcg(name: str, params: dict, training: str = "joint") -> float:
        cfg = EvalConfig(protocol="cdr-cold", target=target, ks=(10,), training=training)
        result = run_protocol(game_video.interactions, None, lambda: create_model(name, params), cfg,
                              domains=game_video.domains)
        return result.metrics["NDCG@10"]

    als = ndcg("als", {"embedding_size": 128, "regularization": 1.0, "alpha": 10.0, "epochs": 15, "history_decay": 1.0})
    cross, popular = ndcg("cross", {}), ndcg("popular", {}, "target-only")
    assert cross > 1.4 * als and cross > 2 * popular, (cross, als, popular)


def test_tuning_refuses_cdr_cold_before_any_trial(pair: Dataset) -> None:
    from shoprec.tuning import TuneConfig
    from shoprec.tuning.run import TuneData
    from shoprec.tuning.run import tune as run_tune
    from shoprec.tuning.space import parse_space

    data = TuneData(name="pair", interactions=pair.interactions, catalog=None)
    with pytest.raises(ConfigError, match="--split valid"):
        run_tune(data, "cross", parse_space("cross", {"regularization": [1.0, 10.0]}), TuneConfig(search="grid"),
                 eval_cfg=EvalConfig(protocol="cdr-cold", target="shop_mall"))
