"""`shoprec platform create`, `shoprec train` and `shoprec serve --help`: JSON alone on stdout."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from shoprec.cli import serve as serve_cli
from shoprec.cli import train as train_cli
from shoprec.data.synthetic import SyntheticConfig, generate
from shoprec.ingest.pipeline import ingest
from shoprec.service.cache import LocalCache
from shoprec.service.platform import PlatformService, hash_key
from shoprec.settings import Settings
from shoprec.storage import create_db


def test_platform_create_and_train(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", model_dir=tmp_path / "models")
    runner = CliRunner()
    created = runner.invoke(serve_cli.platform_group, ["create", "shop", "--json"], obj=settings)
    assert created.exit_code == 0, created.output
    body = json.loads(created.stdout)
    assert body["platform"] == "shop" and body["api_key"].startswith("sk_")
    engine = create_db(settings.database_url)
    try:
        assert PlatformService(engine, LocalCache()).authenticate(body["api_key"]).platform == "shop"
        ingest(engine, "shop", generate(SyntheticConfig(n_users=40, n_items=30)).platform().records())
    finally:
        engine.dispose()
    assert hash_key(body["api_key"]) != body["api_key"]
    trained = runner.invoke(train_cli.train_command, ["-p", "shop", "-m", "popular", "--activate",
                                                      "--config", '{"per_category": true}'], obj=settings)
    assert trained.exit_code == 0, trained.output
    result = json.loads(trained.stdout)
    assert result["model"] == "popular" and result["active"] is True and 0 <= result["metrics"]["HR@10"] <= 1
    assert (settings.model_dir / "shop" / result["model_id"] / "config.json").is_file()
    assert "fitting popular" in trained.stderr
    bad = runner.invoke(train_cli.train_command, ["-p", "shop", "-m", "popular", "--config", '{"nope": 1}'],
                        obj=settings)
    assert bad.exit_code != 0


def test_serve_help_lists_the_options() -> None:
    out = CliRunner().invoke(serve_cli.serve_command, ["--help"])
    assert out.exit_code == 0 and "--workers" in out.stdout and "--port" in out.stdout
