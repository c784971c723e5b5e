"""The one settings tree: file, environment and overrides in that order; errors name the key and the source;
docs/configuration.md lists every setting."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from shoprec.errors import ConfigError
from shoprec.settings import SECTIONS, Settings, env_names, load_settings, settings_to_toml

CLI = [sys.executable, "-c", "from shoprec.cli.main import main; main()"]
DOCS = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_file_then_environment_then_overrides(tmp_path: Path) -> None:
    conf = tmp_path / "s.toml"
    conf.write_text('database_url = "sqlite:///file.db"\nredis_url = "redis://file"\n'
                    '[serving]\nmax_k = 30\nrate_limit = "5/s"\n[jobs]\nmax_queued = 7\n[limits]\nepochs = 9\n')
    s = load_settings(conf, env={"SHOPREC_REDIS_URL": "redis://env", "SHOPREC_RATE_LIMIT": "6/s",
                                 "SHOPREC_JOBS_LEASE_S": "12.5"}, database_url="sqlite:///cli.db")
    assert s.database_url == "sqlite:///cli.db"  # override over file
    assert s.redis_url == "redis://env"  # environment over file
    assert s.serving.max_k == 30 and s.serving.rate_limit == "6/s"
    assert s.jobs.max_queued == 7 and s.jobs.lease_s == 12.5
    assert s.limits["epochs"] == 9 and s.limits["embedding_size"] == Settings().limits["embedding_size"]


def test_config_file_from_the_environment_variable(tmp_path: Path) -> None:
    conf = tmp_path / "s.toml"
    conf.write_text("[retraining]\nafter_events = 100\n")
    assert load_settings(env={"SHOPREC_CONFIG": str(conf)}).retraining.after_events == 100


@pytest.mark.parametrize(("text", "message"), [
    ("[serving]\nmax_kk = 3\n", r"unknown setting 'serving\.max_kk' \(valid in \[serving\]: admin_key"),
    ("nope = 1\n", r"unknown setting 'nope'"),
    ("[serving]\nmax_k = 'x'\n", r"setting serving\.max_k \(config file .*s\.toml\): Input should be a valid integer"),
    ("[logging]\nformat = 'xml'\n", r"setting logging\.format .*'text' or 'json'"),
    ("database_url = \n", r"not valid TOML"),
    ("serving = 3\n", r"\[serving\] must be a table"),
    ("[jobs]\nmax_attempts = 0\n", r"jobs\.max_attempts must be >= 1"),
])
def test_a_bad_file_is_refused_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    conf = tmp_path / "s.toml"
    conf.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(conf, env={})


def test_bad_environment_values_name_the_variable() -> None:
    with pytest.raises(ConfigError, match="SHOPREC_JOBS_MAX_QUEUED"):
        load_settings(env={"SHOPREC_JOBS_MAX_QUEUED": "many"})
    with pytest.raises(ConfigError, match=r"max_k \(1000\) must be <= list_depth .*SHOPREC_MAX_K"):
        load_settings(env={"SHOPREC_MAX_K": "1000"})
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(env={"SHOPREC_CONFIG": "/nonexistent/shoprec.toml"})


def test_show_round_trips_and_masks_secrets(tmp_path: Path) -> None:
    s = load_settings(env={"SHOPREC_ADMIN_KEY": "a-secret-admin-key", "SHOPREC_SECRET_KEY": "another-secret",
                           "SHOPREC_REPURCHASABLE": "food,drink", "SHOPREC_LOGGING_FORMAT": "json"})
    masked = settings_to_toml(s)
    assert "a-secret-admin-key" not in masked and "another-secret" not in masked
    conf = tmp_path / "shown.toml"
    conf.write_text(settings_to_toml(s, mask=False))
    assert load_settings(conf, env={}) == s


def test_config_show_command(tmp_path: Path) -> None:
    conf = tmp_path / "s.toml"
    conf.write_text('[serving]\nadmin_key = "hidden-admin-key"\nmax_k = 40\n')
    out = subprocess.run([*CLI, "--config-file", str(conf), "--db",
                          f"sqlite:///{tmp_path / 'x.db'}", "config", "show", "--json"],
                         capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"}).stdout
    shown = json.loads(out)
    assert shown["serving"]["max_k"] == 40 and shown["serving"]["admin_key"] == "***"
    assert shown["database_url"].endswith("x.db")
    bad = subprocess.run([*CLI, "--config-file", str(tmp_path / "none.toml"),
                          "config", "show"], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert bad.returncode == 2 and "no such file" in bad.stderr and "Traceback" not in bad.stderr


def test_docs_list_every_setting_and_its_variables() -> None:
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([a-z_.]+)` \|[^|]*\|([^|]*)\|", DOCS.read_text(),
                                                        re.M)}
    paths = {f.name for f in dataclasses.fields(Settings) if f.name not in SECTIONS}
    paths |= {f"{sec}.{f.name}" for sec, cls in SECTIONS.items() for f in dataclasses.fields(cls)}
    assert set(rows) == paths
    for env, path in env_names().items():
        assert f"`{env}`" in rows[".".join(path)], (env, path)
