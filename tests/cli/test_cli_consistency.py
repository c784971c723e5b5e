"""A CLI that behaves the same everywhere (issue 21): global options in either place, `--json` / `--output`,
`platform list`, `platform create` on an existing platform, `models list|show|activate`, model names and
short options, `demo --db`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from shoprec.cli.main import _register, cli, hoist_global_options
from shoprec.data.synthetic import SyntheticConfig, generate
from shoprec.ingest.pipeline import ingest
from shoprec.models.base import MODEL_NAMES
from shoprec.storage import create_db

EVENTS = "user_id,item_id,event_type,timestamp\nu1,i1,view,1704103200\nu1,i2,view,1704103300\nu2,i1,view,1704103400\n"


def run(*args: str) -> Result:
    _register()
    return CliRunner().invoke(cli, list(args), catch_exceptions=True)


def said(res: Result) -> str:
    """What the user sees: click's messages, or the ShoprecError that main() prints as `error: ...`."""
    return res.output + (str(res.exception) if res.exception is not None else "")


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


@pytest.fixture
def shop(tmp_path: Path, db: str) -> str:
    """A platform with a little synthetic data (enough to train `popular`)."""
    engine = create_db(db)
    try:
        ingest(engine, "shop", generate(SyntheticConfig(n_users=30, n_items=20)).platform().records())
    finally:
        engine.dispose()
    return db


# ------------------------------------------------------------------ global options
def test_hoisting_moves_only_global_options_before_a_double_dash() -> None:
    args = ["stats", "-p", "x", "--db", "sqlite:///a", "-v", "--config-file=c.toml", "--", "--db", "y"]
    assert hoist_global_options(args) == ["--db", "sqlite:///a", "-v", "--config-file=c.toml",
                                          "stats", "-p", "x", "--", "--db", "y"]
    assert hoist_global_options(["--db", "u", "stats"]) == ["--db", "u", "stats"]


def test_global_options_work_before_or_after_the_subcommand(tmp_path: Path, db: str) -> None:
    path = tmp_path / "e.csv"
    path.write_text(EVENTS, encoding="utf-8")
    assert run("import", str(path), "-f", "events-csv", "-p", "shop", "--db", db).exit_code == 0
    after = run("stats", "--json", "--db", db, "-v")
    before = run("--db", db, "stats", "--json")
    assert after.exit_code == 0, after.output
    assert json.loads(after.stdout) == json.loads(before.stdout)
    assert json.loads(after.stdout)["platforms"]["shop"]["events"] == 3
    config = tmp_path / "s.toml"
    config.write_text(f'database_url = "{db}"\n', encoding="utf-8")
    nested = run("platform", "list", "--json", "--config-file", str(config))  # a subcommand of a group
    assert nested.exit_code == 0, nested.output
    assert [p["platform"] for p in json.loads(nested.stdout)] == ["shop"]


# ------------------------------------------------------------------ --json / --output
def test_json_prints_and_output_writes_a_file(tmp_path: Path, shop: str) -> None:
    printed = run("stats", "-p", "shop", "--json", "--db", shop)
    out = tmp_path / "stats.json"
    written = run("stats", "-p", "shop", "--output", str(out), "--db", shop)
    assert written.exit_code == 0, written.output
    assert written.stdout == "" and f"wrote {out}" in written.stderr
    assert json.loads(out.read_text()) == json.loads(printed.stdout)


def test_every_json_option_is_a_flag() -> None:
    """`--json` prints on stdout everywhere: never a required FILE value (evaluate / tune accept the old
    `--json FILE` as an optional value, with a deprecation note)."""
    _register()
    for path, command in _walk(cli):
        for param in command.params:
            if isinstance(param, click.Option) and "--json" in param.opts:
                optional_value = not param.is_flag and param.flag_value == "-"
                assert param.is_flag or optional_value, f"{path}: --json takes a value"


def _walk(group: click.Command, prefix: str = "shoprec") -> list[tuple[str, click.Command]]:
    out = [(prefix, group)]
    if isinstance(group, click.Group):
        for name, sub in group.commands.items():
            out.extend(_walk(sub, f"{prefix} {name}"))
    return out


def test_every_platform_and_model_option_has_its_short_form_and_models_are_listed() -> None:
    _register()
    for path, command in _walk(cli):
        for param in command.params:
            if not isinstance(param, click.Option):
                continue
            if "--platform" in param.opts:
                assert "-p" in param.opts, path
            if "--model" in param.opts:
                assert "-m" in param.opts, path
                assert isinstance(param.type, click.Choice) and not param.type.case_sensitive, path
            assert not set(param.opts) & {"--db", "--config-file", "-v", "--verbose"} or command is cli, path
    help_text = run("train", "--help").stdout
    assert all(name in help_text for name in MODEL_NAMES) and "MODEL_NAMES" not in help_text


# ------------------------------------------------------------------ platforms
def test_platform_create_refuses_an_existing_platform(db: str) -> None:
    first = run("platform", "create", "shop", "--db", db)
    assert first.exit_code == 0 and first.stdout.strip().startswith("sk_")
    again = run("platform", "create", "shop", "--db", db)
    assert again.exit_code != 0 and "platform 'shop' exists" in said(again)
    assert "shoprec platform key create" in said(again)
    quiet = run("platform", "create", "shop", "--if-not-exists", "--json", "--db", db)
    assert quiet.exit_code == 0, quiet.output
    state = json.loads(quiet.stdout)
    assert state["created"] is False and "api_key" not in state and state["keys"]["active"] == 1
    keys = json.loads(run("platform", "key", "list", "-p", "shop", "--json", "--db", db).stdout)
    assert len(keys) == 1  # no second full-scope key was minted
    revoked = run("platform", "key", "revoke", "-p", "shop", keys[0]["key_id"], "--json", "--db", db)
    assert revoked.exit_code == 0, revoked.output
    assert json.loads(revoked.stdout) == {"platform": "shop", "key_id": keys[0]["key_id"], "revoked": True}


def test_platform_list_shows_counts_keys_and_the_active_model(shop: str) -> None:
    assert run("platform", "create", "empty", "--db", shop).exit_code == 0
    trained = run("train", "-p", "shop", "-m", "POPULAR", "--activate", "--no-evaluate", "--db", shop)
    assert trained.exit_code == 0, trained.output
    model_id = json.loads(trained.stdout)["model_id"]
    rows = {r["platform"]: r for r in json.loads(run("platform", "list", "--json", "--db", shop).stdout)}
    assert set(rows) == {"shop", "empty"}
    assert rows["shop"]["events"] > 0 and rows["shop"]["users"] > 0 and rows["shop"]["items"] > 0
    assert rows["shop"]["active_model"] == {"model_id": model_id, "model": "popular"}
    assert rows["shop"]["keys"] == {"active": 0, "revoked": 0} and rows["empty"]["keys"]["active"] == 1
    assert rows["empty"]["active_model"] is None and rows["empty"]["created_at"] > 0
    table = run("platform", "list", "--db", shop)
    assert table.exit_code == 0 and "popular" in table.stdout and "empty" in table.stdout


# ------------------------------------------------------------------ models
def test_models_list_show_and_activate(shop: str, tmp_path: Path) -> None:
    ids = []
    for config in ('{"per_category": false}', '{"per_category": true}'):
        res = run("train", "-p", "shop", "-m", "popular", "--config", config, "--no-evaluate", "--db", shop)
        assert res.exit_code == 0, res.output
        ids.append(json.loads(res.stdout)["model_id"])
    listed = json.loads(run("models", "list", "-p", "shop", "--json", "--db", shop).stdout)
    assert [m["model_id"] for m in listed] == ids and not any(m["active"] for m in listed)
    activated = run("models", "activate", "-p", "shop", ids[0], "--db", shop)
    assert activated.exit_code == 0, activated.output
    shown = json.loads(run("models", "show", "-p", "shop", ids[0], "--db", shop).stdout)
    assert shown["active"] is True and shown["name"] == "popular" and shown["config"]["per_category"] is False
    missing = run("models", "show", "-p", "shop", "nope", "--db", shop)
    assert missing.exit_code != 0 and "no model 'nope'" in said(missing)
    listing = run("models", "list", "-p", "shop", "--db", shop)
    assert ids[0] in listing.stdout and "active" in listing.stdout


def test_models_activate_refuses_a_model_that_cannot_be_loaded(shop: str, tmp_path: Path) -> None:
    good = json.loads(run("train", "-p", "shop", "-m", "popular", "--activate", "--no-evaluate", "--db", shop).stdout)
    bad = json.loads(run("train", "-p", "shop", "-m", "popular", "--no-evaluate", "--db", shop).stdout)
    shutil.rmtree(bad["path"])  # its artifact is gone
    refused = run("models", "activate", "-p", "shop", bad["model_id"], "--db", shop)
    assert refused.exit_code != 0
    listed = {m["model_id"]: m["active"] for m in json.loads(run("models", "list", "-p", "shop", "--json",
                                                                  "--db", shop).stdout)}
    assert listed == {good["model_id"]: True, bad["model_id"]: False}


def test_unknown_model_names_list_the_valid_ones(db: str) -> None:
    res = run("train", "-p", "shop", "-m", "nope", "--db", db)
    assert res.exit_code != 0 and "popular" in said(res) and "itemknn" in said(res)


# ------------------------------------------------------------------ demo
def test_demo_uses_the_global_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a clean working directory (one where `make demo` ran holds shoprec-demo.db)
    target = tmp_path / "mine.db"
    res = run("demo", "--users", "10", "--items", "12", "--platforms", "1", "--json", "--db", f"sqlite:///{target}")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["database"] == f"sqlite:///{target}"
    assert target.is_file() and not Path("shoprec-demo.db").exists()
    both = run("demo", "--db-path", str(tmp_path / "x.db"), "--db", f"sqlite:///{target}")
    assert both.exit_code != 0 and "not both" in said(both)
