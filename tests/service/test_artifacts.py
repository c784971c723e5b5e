"""Artifacts any replica can load (issue 20): directory, database and fsspec stores, the verified local cache,
activation that loads first, readiness while an active model cannot load, and migration 0007."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from shoprec.api import create_app
from shoprec.errors import ConfigError
from shoprec.service import Services, ServingConfig, build_services
from shoprec.service.artifacts import ArtifactRef, open_artifact_store
from shoprec.service.errors import ArtifactError
from shoprec.service.testing import TEST_ADMIN_KEY, ReadyPlatform, synthetic_platform
from shoprec.settings import Settings
from shoprec.storage import create_db, current_revision, head_revision, migrate
from shoprec.storage import tables as T
from shoprec.storage.artifacts import artifact_sha256, pack
from shoprec.storage.testing import ServerUnavailable, scratch_database

REPO = Path(__file__).resolve().parents[2]
SERVERS = [pytest.param("sqlite", id="sqlite"),
           pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
           pytest.param("mysql", id="mysql", marks=pytest.mark.mysql)]


@pytest.fixture(params=SERVERS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    try:
        with scratch_database(request.param, tmp_path) as url:
            yield url
    except ServerUnavailable as exc:
        pytest.skip(f"{exc} (start it to run the {request.param} artifact tests)")


def replica(url: str, home: Path, **settings: object) -> Services:
    """Services as one replica on its own machine would build them: its own model dir and cache dir."""
    values: dict[str, object] = {"database_url": url, "model_dir": home / "models", "cache_dir": home / "cache"}
    values.update(settings)
    return build_services(Settings(**values), ServingConfig(admin_key=TEST_ADMIN_KEY, model_poll_s=0.0))  # type: ignore[arg-type]


def client(services: Services, key: str) -> TestClient:
    app = create_app(services.settings, services.config, services=services)
    return TestClient(app, headers={"X-API-Key": key}, raise_server_exceptions=False)


def personal(services: Services, shop: ReadyPlatform) -> dict[str, object]:
    """A known user's list through the API: it must come from the model, not the popularity fallback."""
    with client(services, shop.api_key) as c:
        answer = c.get(f"/v1/users/{shop.user_ids[0]}/recommendations", params={"k": 5})
    assert answer.status_code == 200, answer.text
    body: dict[str, object] = answer.json()
    return body


def files_under(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file()] if directory.exists() else []


# ---------------------------------------------------------------------------- the canonical packing
def test_canonical_packing_depends_on_names_and_bytes_only(tmp_path: Path) -> None:
    a = tmp_path / "a"
    (a / "sub").mkdir(parents=True)
    (a / "config.json").write_text("{}")
    (a / "sub" / "w.bin").write_bytes(b"\x00\x01" * 1000)
    before = artifact_sha256(a)
    os.utime(a / "config.json", (1, 1))
    (a / "sub" / "w.bin").chmod(0o600)
    assert artifact_sha256(a) == before  # times and modes are not part of it
    b = tmp_path / "b"
    shutil.copytree(a, b)
    assert artifact_sha256(b) == before
    (b / "config.json").write_text("{ }")
    assert artifact_sha256(b) != before
    with (tmp_path / "a.tar").open("wb") as f:
        pack(a, f)
    import hashlib

    assert hashlib.sha256((tmp_path / "a.tar").read_bytes()).hexdigest() == before


# ---------------------------------------------------------------------------- the bug of issue 20
def test_train_in_one_directory_serve_from_another(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`shoprec train` with a relative model directory in dir A, the server in dir B: B serves the model."""
    url = f"sqlite:///{tmp_path / 'shoprec.db'}"
    setup = replica(url, tmp_path / "setup")
    shop = synthetic_platform(setup, "shop", model=None)
    setup.close()
    trainer_dir, server_dir = tmp_path / "A", tmp_path / "B"
    trainer_dir.mkdir()
    server_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPREC_")}
    env.update(SHOPREC_DATABASE_URL=url, SHOPREC_MODEL_DIR="models", SHOPREC_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=str(REPO / "src"))
    command = [sys.executable, "-c", "from shoprec.cli.main import main; main()",
               "train", "-p", "shop", "-m", "itemknn", "--activate", "--no-evaluate"]
    done = subprocess.run(command, cwd=trainer_dir, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    import json

    trained = json.loads(done.stdout)
    assert Path(trained["path"]).is_absolute() and Path(trained["path"]).is_relative_to(trainer_dir.resolve())

    monkeypatch.chdir(server_dir)  # the server: another directory, the same relative setting
    services = build_services(Settings(database_url=url, model_dir=Path("models"), cache_dir=tmp_path / "cache"),
                              ServingConfig(admin_key=TEST_ADMIN_KEY, model_poll_s=0.0))
    try:
        assert services.models.load_all() == {"shop": trained["model_id"]}
        body = personal(services, shop)
        assert body["model"] == "itemknn"
        assert "personal" in {i["reason"]["level"] for i in body["items"]}  # type: ignore[attr-defined,index]
        with client(services, shop.api_key) as c:
            ready = c.get("/v1/health/ready", headers={"X-API-Key": TEST_ADMIN_KEY})  # the details: admin key
        assert ready.status_code == 200 and ready.json()["models"] == {"shop": trained["model_id"]}
    finally:
        services.close()


def test_a_relative_directory_setting_is_made_absolute_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}", model_dir=Path("models"))
    store = open_artifact_store(settings, None)
    assert store.describe() == f"directory {tmp_path.resolve() / 'models'}"
    monkeypatch.chdir("/")
    staged = tmp_path / "staged"
    staged.mkdir()
    (staged / "config.json").write_text("{}")
    ref = store.put("shop", "m1", staged, platform_id=1)
    assert ref.uri == str(tmp_path.resolve() / "models" / "shop" / "m1") and ref.kind == "directory"
    assert store.fetch(ref) == Path(ref.uri)


# ---------------------------------------------------------------------------- the database store
def test_database_store_shared_by_two_replicas_with_no_shared_disk(db_url: str, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Replica A trains into the database (small chunks: many rows); replica B, with its own directories,
    fetches it into its cache, verified; an erasure on A replaces the artifact and B drops the old copy."""
    monkeypatch.setattr("shoprec.service.artifacts.CHUNK_BYTES", 4096)
    a = replica(db_url, tmp_path / "a", artifact_store="database")
    b = replica(db_url, tmp_path / "b", artifact_store="database")
    try:
        shop = synthetic_platform(a, "shop", model="itemknn")
        assert shop.trained is not None and shop.trained.path.startswith("database:")
        with a.engine.connect() as conn:
            rows = conn.execute(sa.select(sa.func.count()).select_from(T.model_artifacts)).scalar_one()
            sha = conn.execute(sa.select(T.models.c.sha256)).scalar_one()
        assert rows > 1 and len(sha) == 64
        assert b.models.load_all() == {"shop": shop.trained.model_id}
        assert "personal" in {i["reason"]["level"] for i in personal(b, shop)["items"]}  # type: ignore[attr-defined,index]
        cached = b.store.artifacts.cache_entry(sha)
        assert cached.is_relative_to(tmp_path / "b" / "cache" / "artifacts") and (cached / "config.json").is_file()
        assert artifact_sha256(cached) == sha
        for home in ("a", "b"):  # nothing was written to a model directory
            assert files_under(tmp_path / home / "models") == []

        a.privacy.erase("shop", shop.user_ids[0])
        with a.engine.connect() as conn:
            new_sha = conn.execute(sa.select(T.models.c.sha256)).scalar_one()
            keys = set(conn.execute(sa.select(T.model_artifacts.c.artifact_key)).scalars())
        assert new_sha != sha and len(keys) == 1  # the old rows went with the erasure
        b.models.refresh("shop", wait=True)  # B notices the rewritten artifact, loads it and drops its old copy
        assert b.models.loaded() == {"shop": shop.trained.model_id}
        assert not cached.exists() and b.store.artifacts.cache_entry(new_sha).is_dir()
    finally:
        a.close()
        b.close()


def test_corrupt_cache_entry_is_fetched_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shoprec.db'}"
    a = replica(url, tmp_path / "a", artifact_store="database")
    try:
        shop = synthetic_platform(a, "shop", model="itemknn")
        assert shop.trained is not None
        ref = ArtifactRef(shop.trained.path, a.store.get_model("shop", shop.trained.model_id)["sha256"])  # type: ignore[index]
        entry = a.store.artifacts.fetch(ref)
        (entry / "idmaps.json").write_text('{"users": [], "items": []}')  # corrupt it
        (entry / "meta.json").unlink()
        partial = a.store.artifacts.fetch(ref)
        assert partial == entry and artifact_sha256(entry) == ref.sha256 and (entry / "meta.json").is_file()
    finally:
        a.close()
    b = replica(url, tmp_path / "a", artifact_store="database")  # a restarted replica over the repaired cache
    try:
        assert b.models.load_all() == {"shop": shop.trained.model_id}
    finally:
        b.close()


def test_corrupt_source_is_a_clear_error_and_activation_is_refused(db_url: str, tmp_path: Path) -> None:
    a = replica(db_url, tmp_path / "a", artifact_store="database")
    try:
        shop = synthetic_platform(a, "shop", model="popular")
        second = a.store.train("shop", "itemknn", evaluate=False)
        with a.engine.begin() as conn:  # flip bytes of the second model's stored archive
            m = T.model_artifacts
            key = second.path.removeprefix("database:")
            data = conn.execute(sa.select(m.c.data).where(m.c.artifact_key == key, m.c.seq == 0)).scalar_one()
            broken = bytes(data[:600]) + bytes(b ^ 0xFF for b in data[600:700]) + bytes(data[700:])
            conn.execute(sa.update(m).where(m.c.artifact_key == key, m.c.seq == 0).values(data=broken))
        with client(a, shop.api_key) as c:
            answer = c.post(f"/v1/models/{second.model_id}/activate")
            assert answer.status_code == 422, answer.text
            message = answer.json()["message"]
            assert second.model_id in message and "corrupt" in message
            assert c.get("/v1/health/ready").status_code == 200
        assert shop.trained is not None
        assert a.store.active("shop")[0] == shop.trained.model_id  # type: ignore[index]  # nothing changed
        assert a.models.loaded() == {"shop": shop.trained.model_id}
    finally:
        a.close()


# ---------------------------------------------------------------------------- fsspec
@pytest.mark.parametrize("scheme", ["memory", "file"])
def test_fsspec_store_shared_by_two_replicas(scheme: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shoprec.db'}"
    store = (f"memory://shoprec-test-{uuid.uuid4().hex[:8]}/models" if scheme == "memory"
             else f"file://{tmp_path / 'bucket'}")
    a = replica(url, tmp_path / "a", artifact_store=store)
    b = replica(url, tmp_path / "b", artifact_store=store)
    try:
        shop = synthetic_platform(a, "shop", model="itemknn")
        assert shop.trained is not None and shop.trained.path.startswith(store + "/shop/")
        assert shop.trained.path.endswith(".tar")
        assert b.models.load_all() == {"shop": shop.trained.model_id}
        assert "personal" in {i["reason"]["level"] for i in personal(b, shop)["items"]}  # type: ignore[attr-defined,index]
        assert files_under(tmp_path / "a" / "models") == [] and files_under(tmp_path / "b" / "models") == []
        import fsspec

        fs, path = fsspec.core.url_to_fs(shop.trained.path)
        fs.rm(path)  # the object is gone: a fresh replica cannot load the active model
        c = replica(url, tmp_path / "c", artifact_store=store)
        try:
            c.models.load_all()
            failures = c.models.failures()
            assert set(failures) == {"shop"} and "no object at" in failures["shop"].reason
            with client(c, shop.api_key) as http:
                ready = http.get("/v1/health/ready", headers={"X-API-Key": TEST_ADMIN_KEY})
            assert ready.status_code == 503 and shop.trained.model_id in ready.json()["message"]
        finally:
            c.close()
    finally:
        a.close()
        b.close()


def test_unknown_or_unreachable_store_is_a_config_error(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}", artifact_store="nosuchproto://bucket/x")
    with pytest.raises(ConfigError, match="artifact_store"):
        open_artifact_store(settings, None)


# ---------------------------------------------------------------------------- activation and readiness
def test_unloadable_model_activation_refused_and_readiness(services: Services, shop: ReadyPlatform) -> None:
    """A model whose artifact is gone cannot be activated (422 naming it, nothing changes); activated
    behind the server's back (another replica, a bad migration), readiness says 503 with the reason while
    the last good model keeps serving; activating a loadable model makes it ready again."""
    assert shop.trained is not None
    good = shop.trained.model_id
    broken = services.store.train("shop", "itemknn", evaluate=False)
    shutil.rmtree(broken.path)
    with client(services, shop.api_key) as c:
        answer = c.post(f"/v1/models/{broken.model_id}/activate")
        assert answer.status_code == 422, answer.text
        assert broken.model_id in answer.json()["message"] and "missing" in answer.json()["message"]
        assert [m["model_id"] for m in c.get("/v1/models").json() if m["active"]] == [good]
        assert c.get("/v1/health/ready").status_code == 200

        services.store.activate("shop", broken.model_id, check=False)  # as if another process had done it
        deadline = time.monotonic() + 60  # the worker tries to load it in the background meanwhile
        admin = {"X-API-Key": TEST_ADMIN_KEY}  # readiness details need the admin key
        while (ready := c.get("/v1/health/ready", headers=admin)).status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.status_code == 503, ready.text
        body = ready.json()
        assert broken.model_id in body["message"] and "missing" in body["message"]
        assert body["failures"]["shop"]["serving"] == good
        lists = c.get(f"/v1/users/{shop.user_ids[0]}/recommendations", params={"k": 5})
        assert lists.status_code == 200 and lists.json()["model"] == "itemknn"  # the last good model
        assert services.models.loaded() == {"shop": good}

        assert c.post(f"/v1/models/{good}/activate").status_code == 200
        assert c.get("/v1/health/ready").status_code == 200


def test_store_level_activation_checks_the_artifact(services: Services, shop: ReadyPlatform) -> None:
    broken = services.store.train("shop", "popular", evaluate=False)
    (Path(broken.path) / "weights.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ArtifactError, match=f"{broken.model_id}.*corrupt"):
        services.store.activate("shop", broken.model_id)
    assert shop.trained is not None and services.store.active("shop")[0] == shop.trained.model_id  # type: ignore[index]


# ---------------------------------------------------------------------------- migration 0007
def test_migration_resolves_relative_paths(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database at 0006 with a relative artifact path that exists from here (made absolute, hashed) and
    one that does not (marked missing: activating it says so)."""
    source = replica(f"sqlite:///{tmp_path / 'src.db'}", tmp_path / "src")
    try:
        shop = synthetic_platform(source, "shop", model="itemknn")
    finally:
        source.close()
    assert shop.trained is not None
    work = tmp_path / "work"
    shutil.copytree(shop.trained.path, work / "models" / "shop" / "m-found")
    monkeypatch.chdir(work)

    migrate(db_url, "0006")
    engine = sa.create_engine(db_url)
    models = sa.table("models", *(sa.column(c) for c in ("platform_id", "model_id", "name", "config", "metrics",
                                                          "path", "active", "created_at", "activated_at")))
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO platforms (name, created_at) VALUES ('shop', 0)"))
        pid = conn.execute(sa.text("SELECT id FROM platforms WHERE name = 'shop'")).scalar_one()
        conn.execute(sa.insert(models), [
            {"platform_id": pid, "model_id": "m-found", "name": "itemknn", "config": None, "metrics": None,
             "path": "models/shop/m-found", "active": True, "created_at": 1.0, "activated_at": 1.0},
            {"platform_id": pid, "model_id": "m-lost", "name": "itemknn", "config": None, "metrics": None,
             "path": "elsewhere/shop/m-lost", "active": False, "created_at": 2.0, "activated_at": None}])
    engine.dispose()

    engine = create_db(db_url)  # what any shoprec command does: migrate to head
    try:
        assert current_revision(engine) == head_revision()
        with engine.connect() as conn:
            rows = {r.model_id: r for r in conn.execute(sa.select(T.models.c.model_id, T.models.c.path,
                                                                  T.models.c.sha256))}
        found = work.resolve() / "models" / "shop" / "m-found"
        assert rows["m-found"].path == str(found) and rows["m-found"].sha256 == artifact_sha256(found)
        assert rows["m-lost"].path == "missing:elsewhere/shop/m-lost" and rows["m-lost"].sha256 is None
    finally:
        engine.dispose()

    monkeypatch.chdir(tmp_path)  # a server elsewhere serves the resolved model and refuses the lost one
    services = replica(db_url, tmp_path / "server")
    try:
        assert services.models.load_all() == {"shop": "m-found"}
        with pytest.raises(ArtifactError, match=r"m-lost.*missing.*elsewhere/shop/m-lost"):
            services.models.activate("shop", "m-lost")
        assert services.store.active("shop")[0] == "m-found"  # type: ignore[index]
    finally:
        services.close()


@pytest.mark.parametrize("store", ["directory", "database"])
def test_a_failed_registration_leaves_no_artifact(store: str, tmp_path: Path) -> None:
    services = replica(f"sqlite:///{tmp_path / 'shoprec.db'}", tmp_path / "r",
                       artifact_store=None if store == "directory" else "database")
    try:
        synthetic_platform(services, "shop", model=None)
        with services.engine.begin() as conn:  # the registering transaction fails on its last statement
            conn.execute(sa.text("ALTER TABLE retrain_flags RENAME TO retrain_flags_gone"))
        with pytest.raises(Exception):  # noqa: B017 - a StorageError from the driver
            services.store.train("shop", "itemknn", evaluate=False)
        with services.engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE retrain_flags_gone RENAME TO retrain_flags"))
            assert conn.execute(sa.select(sa.func.count()).select_from(T.model_artifacts)).scalar_one() == 0
            assert conn.execute(sa.select(sa.func.count()).select_from(T.models)).scalar_one() == 0
        assert files_under(tmp_path / "r" / "models") == [] and files_under(tmp_path / "r" / "cache") == []
    finally:
        services.close()
