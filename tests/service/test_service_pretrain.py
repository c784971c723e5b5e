"""Pre-training across platforms and a brand-new platform served by it (`shoprec pretrain --platform`,
`shoprec train --init-from DIR --zero-shot`, the job kind "pretrain"): every platform whose data taught the
model must be linked by both sides' consent; a platform with items and no events then gets personalised
session lists with history reasons instead of popularity alone."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from shoprec.cli import pretrain as pretrain_cli
from shoprec.cli import train as train_cli
from shoprec.data.records import ItemRecord
from shoprec.data.synthetic import SyntheticConfig, generate
from shoprec.errors import ConfigError, DataError
from shoprec.ingest.pipeline import ingest
from shoprec.service import Services, ServingConfig, build_services
from shoprec.service.testing import TEST_ADMIN_KEY
from shoprec.settings import Settings
from shoprec.worker.testing import run_queued

SMALL: dict[str, Any] = {"embedding_size": 16, "n_blocks": 1, "n_heads": 2, "ffn_size": 32, "max_len": 8,
                         "epochs": 3, "eval_every": 1, "progress": False, "num_threads": 1, "text_encoder": "hashing",
                         "device": "cpu"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'shoprec.db'}", model_dir=tmp_path / "models",
                    secret_key="pretrain-test-secret-0123")


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    """shop-a and shop-b with events; shop-c with its catalog only (a brand-new platform); no links yet."""
    svc = build_services(settings, ServingConfig(admin_key=TEST_ADMIN_KEY, model_poll_s=0.0))
    data = generate(SyntheticConfig(n_users=60, n_items=40, n_platforms=3, overlap=0.0, sessions_per_user=4))
    for name in data.platform_names:
        svc.platforms.create(name)
        records = data.platform(name).records()
        ingest(svc.engine, name, records if name != "shop-c" else (r for r in records if isinstance(r, ItemRecord)))
    yield svc
    svc.close()


def _link(services: Services, a: str, b: str) -> None:
    services.privacy.link(a, b)
    services.privacy.link(b, a)


def _config(tmp_path: Path) -> str:
    path = tmp_path / "params.json"
    path.write_text(json.dumps({**SMALL, "text_cache_dir": str(tmp_path / "text")}))
    return str(path)


def test_a_new_platform_gets_personalised_session_lists_from_the_pretrained_model(
        services: Services, settings: Settings, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "pre"
    args = ["--platform", "shop-a", "--platform", "shop-b", "--out", str(out), "--config", _config(tmp_path)]
    refused = runner.invoke(pretrain_cli.pretrain, args, obj=settings)
    assert isinstance(refused.exception, DataError) and "both consented" in str(refused.exception)
    _link(services, "shop-a", "shop-b")
    done = runner.invoke(pretrain_cli.pretrain, [*args, "--json"], obj=settings)
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["platforms"] == ["shop-a", "shop-b"]

    train = ["-p", "shop-c", "-m", "transformer", "--init-from", str(out), "--zero-shot", "--activate",
             "--config", json.dumps({"text_cache_dir": str(tmp_path / "text"), "progress": False})]
    unlinked = runner.invoke(train_cli.train_command, train, obj=settings)
    assert isinstance(unlinked.exception, DataError) and "shop-a, shop-b" in str(unlinked.exception)
    _link(services, "shop-c", "shop-a")
    _link(services, "shop-c", "shop-b")
    before = services.recommend.session("shop-c", ["C00003", "C00010"], k=5)
    assert {i.reason.level for i in before.items} <= {"popular", "popular_category"}
    stored = runner.invoke(train_cli.train_command, train, obj=settings)
    assert stored.exit_code == 0, stored.output
    result = json.loads(stored.stdout)
    assert result["transfer"]["zero_shot"] is True and result["metrics"] == {}

    services.models.refresh("shop-c")
    history = ["C00003", "C00010"]
    answer = services.recommend.session("shop-c", history, k=5)
    assert [i.reason.level for i in answer.items] == ["session"] * 5
    assert all(i.reason.type == "history" and i.reason.source == "transformer" for i in answer.items)
    assert all(set(i.reason.because_of or ()) <= set(history) and i.reason.because_of and i.reason.text
               for i in answer.items)  # which history item each one comes from, in words
    assert not set(history) & {i.item_id for i in answer.items}
    other = services.recommend.session("shop-c", ["C00020", "C00031"], k=5)
    assert [i.item_id for i in other.items] != [i.item_id for i in answer.items]  # personal, not one list

    from fastapi.testclient import TestClient

    from shoprec.api import create_app

    app = create_app(services.settings, services.config, services=services)
    with TestClient(app, headers={"X-API-Key": services.platforms.create_key("shop-c").key}) as client:
        body = client.post("/v1/sessions/recommendations", json={"history": [{"item_id": h} for h in history],
                                                                 "k": 5}).json()
    assert [i["item_id"] for i in body["items"]] == [i.item_id for i in answer.items]
    assert all(i["reason"]["level"] == "session" and i["reason"]["because_of"] for i in body["items"])


def _pretrained_on_shop_a(services: Services, tmp_path: Path) -> Path:
    out = tmp_path / "pre-a"
    done = CliRunner().invoke(pretrain_cli.pretrain, ["--platform", "shop-a", "--out", str(out), "--config",
                                                      _config(tmp_path)], obj=services.settings)
    assert done.exit_code == 0, done.output
    _link(services, "shop-b", "shop-a")
    return out


def test_a_fine_tuning_that_validates_below_its_start_stores_the_start(services: Services, tmp_path: Path) -> None:
    """The evaluated fit keeps the start (a learning rate that scrambles the copied network): the stored model is
    the start carried over to shop-b, as the evaluation measured it, and the record says so."""
    out = _pretrained_on_shop_a(services, tmp_path)
    params = {"text_cache_dir": str(tmp_path / "text"), "progress": False, "learning_rate": 1.0, "epochs": 1}
    trained = services.store.train("shop-b", "transformer", params, init_from=str(out))
    assert trained.transfer is not None and trained.transfer["zero_shot"] is True
    compared = trained.transfer["kept_start"]
    assert compared["kept"] == "start" and compared["start"]["NDCG@10"] > compared["fine-tuned"]["NDCG@10"]
    model = services.store.load("shop-b", trained.model_id)
    assert model.initialised_from["zero_shot"] is True and model.best_epoch == 0  # type: ignore[attr-defined]


def test_a_zero_shot_model_stores_the_text_weight_given(services: Services, tmp_path: Path) -> None:
    """The evaluated zero-shot fit uses a text_affinity given in the config; so does the stored model."""
    out = _pretrained_on_shop_a(services, tmp_path)
    params = {"text_cache_dir": str(tmp_path / "text"), "progress": False, "text_affinity": 3}
    trained = services.store.train("shop-b", "transformer", params, init_from=str(out), zero_shot=True)
    model = services.store.load("shop-b", trained.model_id)
    assert model.text_affinity == 3  # type: ignore[attr-defined]
    default = services.store.train("shop-b", "transformer", {**params, "text_affinity": "auto"}, init_from=str(out),
                                   zero_shot=True)
    assert services.store.load("shop-b", default.model_id).text_affinity >= 64  # type: ignore[attr-defined]


def test_zero_shot_needs_a_start(services: Services, settings: Settings) -> None:
    refused = CliRunner().invoke(train_cli.train_command, ["-p", "shop-c", "-m", "transformer", "--zero-shot"],
                                 obj=settings)
    assert isinstance(refused.exception, ConfigError) and "needs --init-from" in str(refused.exception)
    with pytest.raises(ConfigError, match="needs --init-from"):
        services.store.train("shop-c", "transformer", SMALL, zero_shot=True)


def test_the_pretrain_job_registers_a_model_other_linked_platforms_start_from(services: Services,
                                                                             tmp_path: Path) -> None:
    params = {"platforms": ["shop-b"], "params": {**SMALL, "text_cache_dir": str(tmp_path / "text")}}
    with pytest.raises(ConfigError, match="unknown pretrain job field 'out'"):
        services.jobs.submit("shop-a", "pretrain", {**params, "out": "/tmp/x"})
    _link(services, "shop-a", "shop-b")
    job = services.jobs.submit("shop-a", "pretrain", params, actor="test")
    assert run_queued(services) == 1
    done = services.jobs.get("shop-a", job.job_id)
    assert done.status == "succeeded", done.error
    model_id = done.result["model_id"]
    assert done.result["pretrain"]["platforms"] == ["shop-a", "shop-b"]
    _link(services, "shop-c", "shop-a")
    with pytest.raises(DataError, match=r"pre-trained on platform.*shop-b"):
        services.store.train("shop-c", "transformer", {"text_cache_dir": str(tmp_path / "text")},
                             init_from=model_id, zero_shot=True)
    _link(services, "shop-c", "shop-b")
    carried = services.store.train("shop-c", "transformer", {"text_cache_dir": str(tmp_path / "text")},
                                   init_from=model_id, zero_shot=True)
    assert carried.transfer is not None and carried.transfer["init_platform"] == "shop-a"
