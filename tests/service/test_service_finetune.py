"""Fine-tuning transfer (`shoprec train --platform new --model transformer --init-from MODEL_ID`): a transformer
of another platform is a start only over a link both platforms consented to; the result records its start."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from shoprec.cli import train as train_cli
from shoprec.data.synthetic import SyntheticConfig, generate
from shoprec.errors import DataError
from shoprec.ingest.pipeline import ingest
from shoprec.models import load_model
from shoprec.models.transformer import Transformer
from shoprec.service import Services, ServingConfig, build_services
from shoprec.service.testing import TEST_ADMIN_KEY
from shoprec.settings import Settings

SMALL = {"embedding_size": 16, "n_blocks": 1, "n_heads": 2, "ffn_size": 32, "max_len": 8, "epochs": 2,
         "progress": False, "num_threads": 1, "text_encoder": "hashing", "device": "cpu"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'shoprec.db'}", model_dir=tmp_path / "models",
                    secret_key="finetune-test-secret-0123")


@pytest.fixture
def services(settings: Settings, tmp_path: Path) -> Iterator[Services]:
    """Platforms shop-a (with a stored transformer), shop-b and shop-c, no links yet."""
    svc = build_services(settings, ServingConfig(admin_key=TEST_ADMIN_KEY, model_poll_s=0.0))
    data = generate(SyntheticConfig(n_users=30, n_items=24, n_platforms=3, overlap=0.0, sessions_per_user=3))
    for name in data.platform_names:
        svc.platforms.create(name)
        ingest(svc.engine, name, data.platform(name).records())
    yield svc
    svc.close()


@pytest.fixture
def source_id(services: Services, tmp_path: Path) -> str:
    params = {**SMALL, "text_cache_dir": str(tmp_path / "text")}
    return services.store.train("shop-a", "transformer", params, evaluate=False).model_id


def test_init_from_refuses_a_model_of_a_platform_without_both_consents(services: Services, source_id: str) -> None:
    with pytest.raises(DataError, match="both platforms must consent"):
        services.store.train("shop-b", "transformer", {"epochs": 1}, evaluate=False, init_from=source_id)
    services.privacy.link("shop-b", "shop-a")  # one side only
    with pytest.raises(DataError, match="both platforms must consent"):
        services.store.train("shop-b", "transformer", {"epochs": 1}, evaluate=False, init_from=source_id)
    services.privacy.link("shop-a", "shop-c")
    services.privacy.link("shop-c", "shop-a")  # a link of shop-a with another platform opens nothing to shop-b
    with pytest.raises(DataError, match="both platforms must consent"):
        services.store.train("shop-b", "transformer", {"epochs": 1}, evaluate=False, init_from=source_id)
    with pytest.raises(DataError, match="fine-tunes model 'transformer'"):
        services.store.train("shop-c", "popular", evaluate=False, init_from=source_id)
    assert services.store.list_models("shop-b") == []


def test_init_from_a_linked_platforms_transformer_fine_tunes_and_records_it(services: Services,
                                                                           source_id: str) -> None:
    services.privacy.link("shop-b", "shop-a")
    services.privacy.link("shop-a", "shop-b")
    result = services.store.train("shop-b", "transformer", {"epochs": 1}, evaluate=False, init_from=source_id)
    assert result.transfer == {"init_from": source_id, "init_platform": "shop-a",  # the attribute tokens of
                                  "fresh_weights": ["item_id.weight", "attributes.weight"]}  # the shops differ
    model = load_model(result.path)
    assert isinstance(model, Transformer)
    assert model.config.embedding_size == SMALL["embedding_size"] and model.config.epochs == 1  # inherited network
    assert model.initialised_from["model"] == f"shop-a/{source_id}"
    assert model.items is not None and all(not i.startswith("A") for i in model.items.to_list())  # shop-b's items
    row = services.store.get_model("shop-b", result.model_id)
    assert row is not None and row["config"]["transfer"]["init_from"] == source_id


def test_cli_train_init_from(services: Services, source_id: str, settings: Settings) -> None:
    runner = CliRunner()
    args = ["-p", "shop-b", "-m", "transformer", "--no-evaluate", "--init-from", source_id, "--config",
            '{"epochs": 1}']
    refused = runner.invoke(train_cli.train_command, args, obj=settings)
    assert refused.exit_code != 0 and isinstance(refused.exception, DataError)
    assert "both platforms must consent" in str(refused.exception)
    services.privacy.link("shop-b", "shop-a")
    services.privacy.link("shop-a", "shop-b")
    done = runner.invoke(train_cli.train_command, args, obj=settings)
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["transfer"]["init_platform"] == "shop-a"
    assert "starting from model" in done.stderr
