"""Engines, migrations and database errors."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from shoprec.errors import StorageError
from shoprec.storage import create_db, current_revision, make_engine, migrate
from shoprec.storage.engine import alembic_config, downgrade
from shoprec.storage.tables import metadata

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_fresh_sqlite_file_just_works(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    engine = create_db(f"sqlite:///{path}")
    assert path.exists()
    assert current_revision(engine) == HEAD
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert set(sa.inspect(conn).get_table_names()) >= {"platforms", "users", "items", "events"}
    engine.dispose()


def test_migrations_create_exactly_the_declared_schema(engine: sa.Engine) -> None:
    assert current_revision(engine) == HEAD
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == [], f"migrations and storage/tables.py differ: {diff}"


def test_migrate_again_is_a_no_op(engine: sa.Engine) -> None:
    migrate(engine)
    assert current_revision(engine) == HEAD


def test_downgrade_to_base_and_upgrade_again(tmp_path: Path) -> None:
    engine = create_db(f"sqlite:///{tmp_path / 'down.db'}")
    downgrade(engine, "base")
    assert current_revision(engine) is None
    with engine.connect() as conn:
        assert "events" not in sa.inspect(conn).get_table_names()
    migrate(engine)
    assert current_revision(engine) == HEAD
    engine.dispose()


def test_unreachable_server_is_a_storage_error_naming_the_url() -> None:
    started = time.perf_counter()
    with pytest.raises(StorageError, match=r"nobody@127\.0\.0\.1:1/x is unreachable"):
        create_db("postgresql+psycopg://nobody@127.0.0.1:1/x")
    assert time.perf_counter() - started < 15


def test_password_is_hidden_in_messages() -> None:
    with pytest.raises(StorageError) as info:
        create_db("mysql+pymysql://me:s3cret@127.0.0.1:1/x")
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize("url", ["not a url", "nosuchdb://x/y"])
def test_malformed_or_unsupported_url(url: str) -> None:
    with pytest.raises(StorageError, match="database URL"):
        make_engine(url)


def test_sqlite_file_in_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="cannot"):
        create_db(f"sqlite:///{tmp_path / 'missing' / 'x.db'}")
