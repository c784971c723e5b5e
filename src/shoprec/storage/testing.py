"""Scratch databases for tests and benchmarks: a fresh SQLite file, PostgreSQL schema or MySQL database.

    with scratch_database("postgresql") as url:   # dropped again on exit
        engine = create_db(url)

Servers default to the local CI services (PostgreSQL 127.0.0.1:5432 user postgres database test;
MariaDB 127.0.0.1:3306 root without password); SHOPREC_TEST_POSTGRES_URL / SHOPREC_TEST_MYSQL_URL
override them. ServerUnavailable says which server could not be reached (tests skip on it).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from shoprec.errors import StorageError
from shoprec.storage.engine import describe_url

BACKENDS = ("sqlite", "postgresql", "mysql")
SERVERS = {
    "postgresql": ("SHOPREC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    "mysql": ("SHOPREC_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test"),
}


class ServerUnavailable(StorageError):
    """The database server for a backend cannot be reached."""


def server_url(backend: str) -> str:
    env, default = SERVERS[backend]
    return os.environ.get(env) or default


def _admin_engine(backend: str) -> sa.Engine:
    url = sa.make_url(server_url(backend))
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool,
                              connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.DBAPIError as exc:
        raise ServerUnavailable(f"{backend} server at {describe_url(url)} is unreachable: "
                                f"{str(exc.orig).strip().splitlines()[0]}") from None
    return engine


@contextmanager
def scratch_database(backend: str, directory: str | Path | None = None) -> Iterator[str]:
    """Yield the URL of an empty database of `backend`, removed afterwards."""
    name = f"shoprec_scratch_{uuid.uuid4().hex[:12]}"
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(dir=directory) as tmp:
            yield f"sqlite:///{Path(tmp) / (name + '.db')}"
        return
    if backend not in SERVERS:
        raise StorageError(f"unknown backend {backend!r} (valid: {', '.join(BACKENDS)})")
    admin = _admin_engine(backend)
    base = sa.make_url(server_url(backend))
    if backend == "postgresql":
        create, drop = f"CREATE SCHEMA {name}", f"DROP SCHEMA IF EXISTS {name} CASCADE"
        url = base.update_query_dict({"options": f"-csearch_path={name}"})
    else:
        create = f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        drop = f"DROP DATABASE IF EXISTS {name}"
        url = base.set(database=name)
    with admin.connect() as conn:
        conn.execute(sa.text(create))
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(drop))
        admin.dispose()
