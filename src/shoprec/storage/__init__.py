"""Storage: the only package that imports SQLAlchemy (tables, engines, migrations, tenant-scoped repositories).

    engine = create_db("sqlite:///shoprec.db")      # migrated to head; WAL mode for SQLite
    with engine.begin() as conn:                     # one transaction
        repo = PlatformRepo(conn, get_or_create_platform(conn, "shop-a"))
        repo.stats()
    interactions, catalog = load_interactions(engine, "shop-a")
"""

from sqlalchemy.engine import Engine  # the connection pool every service is built on (for annotations)

from shoprec.storage.engine import (
    create_db,
    current_revision,
    describe_url,
    downgrade,
    head_revision,
    make_engine,
    migrate,
    storage_errors,
)
from shoprec.storage.repo import (
    KeyCache,
    PlatformRepo,
    dedupe_key,
    find_platform,
    get_or_create_platform,
    list_platforms,
    platform_created,
)
from shoprec.storage.snapshot import load_interactions

__all__ = [
    "Engine",
    "KeyCache",
    "PlatformRepo",
    "create_db",
    "current_revision",
    "dedupe_key",
    "describe_url",
    "downgrade",
    "find_platform",
    "get_or_create_platform",
    "head_revision",
    "list_platforms",
    "load_interactions",
    "make_engine",
    "migrate",
    "platform_created",
    "storage_errors",
]
