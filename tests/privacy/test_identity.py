"""Identity linking: identities are normalised and stored only as keyed hashes; raw values reach neither the
database nor the logs; without a secret they are refused; links need both platforms' consent."""

from __future__ import annotations

import hashlib
import hmac
import logging
from pathlib import Path

import pytest
from privhelpers import SECRET, client_for, dump_tables, make_services

from shoprec.data.records import Identity, UserRecord
from shoprec.errors import ConfigError, DataError
from shoprec.ingest.pipeline import ingest
from shoprec.privacy import Privacy, normalise_identity
from shoprec.service import Services
from shoprec.storage.privacy import linked_user_pairs

RAW = ["Ann.Example@Shop.TEST", "+49 (170) 555-0199", "LOYAL-998877-XY", "bob.sample@mail.test"]


@pytest.mark.parametrize(("kind", "value", "expected"), [
    ("email", "  Ann@Shop.COM ", "email:ann@shop.com"),
    ("phone", "+49 (170) 123-4567", "phone:+491701234567"),
    ("phone", "0049 170 1234567", "phone:+491701234567"),
    ("loyalty", " card-77 ", "loyalty:card-77"),
])
def test_identities_are_normalised(kind: str, value: str, expected: str) -> None:
    assert normalise_identity(Identity(kind, value)) == expected


@pytest.mark.parametrize(("kind", "value"), [("email", "no-at-sign"), ("phone", "call me"), ("fax", "1"),
                                             ("loyalty", "   ")])
def test_bad_identities_are_refused_naming_the_field(kind: str, value: str) -> None:
    with pytest.raises(DataError, match="identity"):
        normalise_identity(Identity(kind, value))


def test_the_hash_is_hmac_sha256_of_type_and_normalised_value() -> None:
    digest = Privacy(SECRET).identity_hash(Identity("email", " Ann@Shop.com"))
    assert digest == hmac.new(SECRET.encode(), b"email:ann@shop.com", hashlib.sha256).hexdigest()
    assert Privacy("another-secret").identity_hash(Identity("email", "ann@shop.com")) != digest


def _post_users(services: Services, platform: str, prefix: str) -> int:
    key = services.platforms.create(platform)
    body = [{"user_id": f"{prefix}{i}", "identity": {"type": t, "value": v}}
            for i, (t, v) in enumerate(zip(["email", "phone", "loyalty", "email"], RAW, strict=True))]
    with client_for(services, key) as client:
        return client.post("/v1/users", json=body).status_code


def test_raw_identities_never_reach_the_database_or_the_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                                             ) -> None:
    caplog.set_level(logging.DEBUG)
    services = make_services(tmp_path)
    try:
        assert _post_users(services, "shop-a", "a") == 200
        ingest(services.engine, "shop-b", [UserRecord("b0", identity=Identity("email", RAW[0].upper()))],
               privacy=services.privacy.privacy)
        dump = dump_tables(services.engine)
        logged = caplog.text
        for raw in RAW:
            for form in (raw, raw.lower(), raw.strip().lower(), normalise_identity(Identity("email", raw))
                         if "@" in raw else raw):
                assert form not in dump and form not in logged
        assert "+491705550199" not in dump and "+491705550199" not in logged
        assert dump.count("identities:") == 5
        services.privacy.link("shop-a", "shop-b")
        services.privacy.link("shop-b", "shop-a")
        with services.engine.connect() as conn:
            assert linked_user_pairs(conn, "shop-a", "shop-b") == [("a0", "b0")]  # the same e-mail, normalised
    finally:
        services.close()


def test_identities_without_a_secret_are_refused(tmp_path: Path) -> None:
    services = make_services(tmp_path, secret_key="insecure-dev-secret")  # the development default: unset
    try:
        key = services.platforms.create("shop")
        with client_for(services, key) as client:
            answer = client.post("/v1/users", json=[{"user_id": "u1", "identity": {"type": "email",
                                                                                   "value": "x@y.test"}}])
            assert answer.status_code == 422 and "SHOPREC_SECRET_KEY" in answer.json()["message"]
            assert client.post("/v1/users", json=[{"user_id": "u1"}]).status_code == 200  # users without: fine
        assert "u1" in dump_tables(services.engine) and "x@y.test" not in dump_tables(services.engine)
        with pytest.raises(ConfigError, match="SHOPREC_SECRET_KEY"):
            ingest(services.engine, "shop", [UserRecord("u2", identity=Identity("email", "x@y.test"))])
    finally:
        services.close()


def test_a_bad_identity_is_a_422_naming_record_and_field(services: Services) -> None:
    key = services.platforms.create("shop")
    with client_for(services, key) as client:
        answer = client.post("/v1/users", json=[{"user_id": "ok"},
                                                {"user_id": "u", "identity": {"type": "email", "value": "nope"}}])
        assert answer.status_code == 422, answer.text
        assert answer.json()["errors"][0]["index"] == 1
        assert answer.json()["errors"][0]["field"].startswith("identity")  # identity.email.value: the schema
        wrong_type = client.post("/v1/users", json=[{"user_id": "u", "identity": {"type": "fax", "value": "1"}}])
        assert wrong_type.status_code == 422
    assert "identities:" not in dump_tables(services.engine) and "'ok'" not in dump_tables(services.engine)


def test_nothing_crosses_without_both_consents(services: Services) -> None:
    for name, prefix in (("shop-a", "a"), ("shop-b", "b")):
        assert _post_users(services, name, prefix) == 200
    with services.engine.connect() as conn:
        assert linked_user_pairs(conn, "shop-a", "shop-b") == []
    assert services.privacy.link("shop-a", "shop-b").linked is False  # one side only
    with services.engine.connect() as conn:
        assert linked_user_pairs(conn, "shop-a", "shop-b") == []
    assert services.privacy.link("shop-b", "shop-a").linked is True
    with services.engine.connect() as conn:
        pairs = linked_user_pairs(conn, "shop-a", "shop-b")
        assert pairs == [("a0", "b0"), ("a1", "b1"), ("a2", "b2"), ("a3", "b3")]
        assert linked_user_pairs(conn, "shop-b", "shop-a") == [(b, a) for a, b in pairs]
    services.privacy.unlink("shop-b", "shop-a")  # either side's withdrawal ends the link
    with services.engine.connect() as conn:
        assert linked_user_pairs(conn, "shop-a", "shop-b") == []
    with pytest.raises(DataError, match="itself"):
        services.privacy.link("shop-a", "shop-a")
    with pytest.raises(DataError, match="unknown platform"):
        services.privacy.link("shop-a", "nope")


def test_users_jsonl_import_hashes_identities(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture) -> None:
    import json

    from click.testing import CliRunner

    from shoprec.cli.main import _register, cli

    caplog.set_level(logging.DEBUG)
    url = f"sqlite:///{tmp_path / 'import.db'}"
    monkeypatch.setenv("SHOPREC_SECRET_KEY", SECRET)
    lines = [{"user_id": "u1", "identity": {"type": "email", "value": RAW[0]}, "country": "DE"},
             {"user_id": "u2", "identity": {"type": "phone", "value": RAW[1]}},
             {"user_id": "u3", "identity": {"type": "email", "value": "not-an-email"}},
             {"user_id": "u4"}]
    path = tmp_path / "users.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    _register()
    result = CliRunner().invoke(cli, ["--db", url, "import", str(path), "--format", "users-jsonl", "--platform",
                                      "shop", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["accepted"] == 3 and report["rejected"] == {"bad_identity": 1}
    services = make_services(tmp_path, url=url)
    try:
        dump = dump_tables(services.engine)
        assert dump.count("identities:") == 2 and "'DE'" in dump
        for raw in (*RAW[:2], RAW[0].lower(), "+491705550199", "not-an-email"):
            assert raw not in dump and raw not in caplog.text and raw not in result.output
    finally:
        services.close()
