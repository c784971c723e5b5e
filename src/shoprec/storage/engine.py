"""Engines from a URL, schema migrations to head, and database errors turned into StorageError.

SQLite files get WAL mode and foreign keys; PostgreSQL (postgresql+psycopg://) and MySQL/MariaDB
(mysql+pymysql://) get a connect timeout (and utf8mb4 on MySQL) unless the URL sets one. JSON columns are
encoded by orjson.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import URL, Engine
from sqlalchemy.pool import StaticPool

from shoprec.errors import StorageError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
CONNECT_TIMEOUT_S = 10


def describe_url(url: str | URL) -> str:
    """The URL with its password hidden, for messages."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return str(url)


def make_engine(url: str | URL) -> Engine:
    """An Engine for `url` (nothing is connected yet); StorageError for a malformed or unsupported URL."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise StorageError(f"invalid database URL {str(url)!r}: {exc}") from None
    kwargs: dict[str, Any] = {"json_serializer": json_text, "json_deserializer": json_value}
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            kwargs["poolclass"] = StaticPool
            kwargs["connect_args"] = {"check_same_thread": False}
    elif backend == "postgresql":
        if "connect_timeout" not in parsed.query:
            kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    elif backend in ("mysql", "mariadb"):
        if "charset" not in parsed.query:
            parsed = parsed.update_query_dict({"charset": "utf8mb4"})
        if "connect_timeout" not in parsed.query:
            kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
        raise StorageError(f"unsupported database URL {describe_url(parsed)}: {exc}") from None
    if backend == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def json_text(value: Any) -> str:
    """JSON columns' encoder: orjson (the served-list log writes one per request), json for what it refuses."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    except (TypeError, ValueError):
        return json.dumps(value)


def json_value(text: str | bytes) -> Any:
    """JSON columns' decoder (json for what orjson refuses, e.g. NaN written by older versions)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA journal_mode=WAL")  # ignored (stays 'memory') for in-memory databases
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


@contextmanager
def storage_errors(engine: Engine | str | URL, action: str) -> Iterator[None]:
    """Turn database driver errors inside the block into StorageError naming the action and the URL."""
    try:
        yield
    except sa.exc.DBAPIError as exc:
        url = describe_url(engine.url if isinstance(engine, Engine) else engine)
        orig = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
        if exc.connection_invalidated or isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
            raise StorageError(f"cannot {action}: database {url} is unreachable or refused: {orig}") from None
        raise StorageError(f"cannot {action} in database {url}: {orig}") from None
    except sa.exc.StatementError as exc:  # a value the driver cannot send (e.g. not JSON-serialisable)
        raise StorageError(f"cannot {action}: {exc.orig}") from None


def alembic_config() -> Config:
    """Alembic config pointing at the migration scripts shipped inside the package."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def migrate(target: str | URL | Engine, revision: str = "head") -> None:
    """Run the migrations up to `revision` (default: the newest)."""
    _run_alembic(target, command.upgrade, revision)


def downgrade(target: str | URL | Engine, revision: str) -> None:
    """Undo migrations down to `revision` ("base": drop every shoprec table)."""
    _run_alembic(target, command.downgrade, revision)


def _run_alembic(target: str | URL | Engine, step: Any, revision: str) -> None:
    engine = target if isinstance(target, Engine) else make_engine(target)
    cfg = alembic_config()
    with storage_errors(engine, "migrate the schema"), engine.begin() as conn:
        cfg.attributes["connection"] = conn
        step(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    """The migration revision the database is at (None for an empty database)."""
    with storage_errors(engine, "read the schema version"), engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    """The newest migration revision shipped with this version of shoprec."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def create_db(url: str | URL) -> Engine:
    """An Engine whose database is migrated to head (a fresh SQLite file is created)."""
    engine = make_engine(url)
    with storage_errors(engine, "connect"), engine.connect():
        pass
    migrate(engine)
    return engine
