"""The model a platform serves is the model it evaluated: what the evaluation's fit chose itself (the context "auto"
resolved to, the popularity correction and text affinity searched on its validation targets) is what the final
fit on all events uses, and the stored config says so."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shoprec.data.synthetic import SyntheticConfig, generate
from shoprec.ingest.pipeline import ingest
from shoprec.models import load_model
from shoprec.models.transformer import Transformer
from shoprec.service import Services, ServingConfig, build_services
from shoprec.service.promotion import params_of
from shoprec.service.testing import TEST_ADMIN_KEY
from shoprec.settings import Settings

SMALL: dict[str, Any] = {"embedding_size": 16, "n_blocks": 1, "n_heads": 2, "ffn_size": 32, "epochs": 2,
                         "progress": False, "num_threads": 1, "text_encoder": "hashing", "device": "cpu",
                         "ensemble": 1}


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'shoprec.db'}", model_dir=tmp_path / "models",
                        secret_key="chosen-test-secret-0123456")
    svc = build_services(settings, ServingConfig(admin_key=TEST_ADMIN_KEY, model_poll_s=0.0))
    data = generate(SyntheticConfig(n_users=40, n_items=30, n_platforms=1, sessions_per_user=3))
    name = data.platform_names[0]
    svc.platforms.create("shop")
    ingest(svc.engine, "shop", data.platform(name).records())
    yield svc
    svc.close()


def test_the_final_fit_uses_what_the_evaluated_fit_chose(services: Services, tmp_path: Path) -> None:
    params = {**SMALL, "text_cache_dir": str(tmp_path / "text"), "max_len": "auto"}  # the default: chosen
    trained = services.store.train("shop", "transformer", params, evaluate=True)
    row = services.store.get_model("shop", trained.model_id)
    assert row is not None
    chosen = row["config"]["chosen_on_evaluation"]
    assert set(chosen) == {"max_len", "popularity_correction", "text_affinity", "transition_affinity"}
    assert chosen["max_len"] == 50  # short synthetic histories: "auto" gives the minimum
    model = load_model(Path(trained.path))
    assert isinstance(model, Transformer)
    assert model.max_len == chosen["max_len"]
    assert model.popularity_correction == chosen["popularity_correction"]
    assert model.text_affinity == chosen["text_affinity"]  # a refit without validation would have 0
    assert model.config.text_affinity == chosen["text_affinity"]  # the config of the model stored
    # a retrain (no evaluation) trains with the stored config, the chosen values included, not the record of them
    retrain_params, _ = params_of(row["config"])
    assert "chosen_on_evaluation" not in retrain_params
    assert retrain_params["text_affinity"] == chosen["text_affinity"]


def test_a_model_that_searched_nothing_reports_nothing_chosen(services: Services, tmp_path: Path) -> None:
    params = {**SMALL, "text_cache_dir": str(tmp_path / "text"), "max_len": 8, "popularity_correction": 0.0,
              "text_affinity": 0.0, "transition_affinity": 0.0}
    trained = services.store.train("shop", "transformer", params, evaluate=True)
    row = services.store.get_model("shop", trained.model_id)
    assert row is not None and "chosen_on_evaluation" not in row["config"]
    assert services.store.train("shop", "itemknn", {}, evaluate=True).model_id  # a model that chooses nothing
