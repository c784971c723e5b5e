"""API keys in the service and the CLI: scopes, public ids, listing, revocation, rotation, audit records."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import pytest
from click.testing import CliRunner

from shoprec.cli import serve as serve_cli
from shoprec.errors import DataError
from shoprec.service import Services
from shoprec.service.audit import list_audit
from shoprec.service.errors import NotFound
from shoprec.service.platform import SCOPES, parse_scopes
from shoprec.service.testing import local_services
from shoprec.settings import Settings


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    svc = local_services(tmp_path)
    yield svc
    svc.close()


def test_platform_create_gives_every_scope_and_is_audited(services: Services) -> None:
    key = services.platforms.create("shop")
    principal = services.platforms.authenticate(key)
    assert principal is not None and principal.platform == "shop" and principal.scopes == frozenset(SCOPES)
    assert principal.key_id is not None and principal.key_id.startswith("key_") and principal.actor == principal.key_id
    services.platforms.create("shop")  # an existing platform: one more key, no second platform.create
    actions = [(r.action, r.actor) for r in list_audit(services.engine, "shop")]
    assert actions.count(("platform.create", "admin")) == 1 and actions.count(("key.create", "admin")) == 2


def test_scoped_key_list_and_revoke(services: Services) -> None:
    services.platforms.create("shop")
    new = services.platforms.create_key("shop", "write, READ", name="importer", actor="key_caller")
    assert new.scopes == ("read", "write") and new.key.startswith("sk_") and new.name == "importer"
    principal = services.platforms.authenticate(new.key)
    assert principal is not None and principal.allows("write") and not principal.allows("admin")
    listed = {k.key_id: k for k in services.platforms.list_keys("shop")}
    assert listed[new.key_id].scopes == ["read", "write"] and not listed[new.key_id].revoked
    assert all(not hasattr(k, "key_hash") and not hasattr(k, "key") for k in listed.values())
    services.platforms.revoke_key("shop", new.key_id, actor="key_caller")
    assert services.platforms.authenticate(new.key) is None
    record = list_audit(services.engine, "shop", limit=1)[0]
    assert (record.action, record.actor, record.subject) == ("key.revoke", "key_caller", new.key_id)
    assert new.key not in json.dumps([asdict(r) for r in list_audit(services.engine)])  # the secret is never logged


def test_rotation_keeps_scopes_and_name(services: Services) -> None:
    services.platforms.create("shop")
    old = services.platforms.create_key("shop", ["read"], name="dashboard")
    new = services.platforms.rotate_key("shop", old.key_id)
    assert (new.scopes, new.name) == (("read",), "dashboard") and new.key_id != old.key_id
    assert services.platforms.authenticate(old.key) is None and services.platforms.authenticate(new.key) is not None


def test_key_errors(services: Services) -> None:
    services.platforms.create("shop")
    services.platforms.create("other")
    other = services.platforms.create_key("other", "read")
    with pytest.raises(DataError, match="unknown scope 'root'"):
        services.platforms.create_key("shop", "read,root")
    with pytest.raises(DataError, match="at least one scope"):
        parse_scopes(" , ")
    with pytest.raises(DataError, match="unknown platform"):
        services.platforms.create_key("nope", "read")
    with pytest.raises(DataError, match="key name"):
        services.platforms.create_key("shop", "read", name="x" * 65)
    with pytest.raises(NotFound):
        services.platforms.revoke_key("shop", other.key_id)  # another platform's key
    assert services.platforms.authenticate(other.key) is not None


def test_cli_key_create_list_revoke(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", model_dir=tmp_path / "models")
    runner = CliRunner()
    assert runner.invoke(serve_cli.platform_group, ["create", "shop"], obj=settings).exit_code == 0
    created = runner.invoke(serve_cli.platform_group, ["key", "create", "--platform", "shop", "--scopes", "read",
                                                       "--name", "ro", "--json"], obj=settings)
    assert created.exit_code == 0, created.output
    body = json.loads(created.stdout)
    assert body["scopes"] == ["read"] and body["api_key"].startswith("sk_") and body["key_id"].startswith("key_")
    listed = runner.invoke(serve_cli.platform_group, ["key", "list", "--platform", "shop", "--json"], obj=settings)
    keys = {k["key_id"]: k for k in json.loads(listed.stdout)}
    assert len(keys) == 2 and keys[body["key_id"]]["name"] == "ro" and body["api_key"] not in listed.stdout
    revoked = runner.invoke(serve_cli.platform_group, ["key", "revoke", "--platform", "shop", body["key_id"]],
                            obj=settings)
    assert revoked.exit_code == 0, revoked.output
    table = runner.invoke(serve_cli.platform_group, ["key", "list", "--platform", "shop"], obj=settings).stdout
    assert f"{body['key_id']}  read" in table and "revoked" in table
    first = json.loads(runner.invoke(serve_cli.platform_group, ["key", "create", "-p", "shop", "--json"],
                                     obj=settings).stdout)
    rotated = runner.invoke(serve_cli.platform_group, ["key", "rotate", "-p", "shop", first["key_id"], "--json"],
                            obj=settings)
    assert rotated.exit_code == 0, rotated.output
    assert json.loads(rotated.stdout)["scopes"] == ["read", "write", "admin"]
    bad = runner.invoke(serve_cli.platform_group, ["key", "create", "--platform", "shop", "--scopes", "root"],
                        obj=settings)
    assert bad.exit_code != 0 and "unknown scope" in str(bad.exception)
