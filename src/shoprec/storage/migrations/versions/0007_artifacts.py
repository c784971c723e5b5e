"""Artifacts any replica can load: models.sha256, the database artifact store (model_artifacts), and stored
artifact paths made absolute.

Before this revision `shoprec train` stored the artifact path as written, relative to the trainer's working
directory, so a server started elsewhere could not find it. Each relative path is resolved against the
directory the migration runs in: when the artifact is there, the path becomes absolute and its sha256 is
recorded; when it is not, the path is marked "missing:<path>" (activating that model then says the artifact
is missing) and a warning names the model. Absolute paths get their sha256 when the artifact is readable.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

log = logging.getLogger("shoprec.migrations")
MISSING = "missing:"  # shoprec.service.artifacts.MISSING_PREFIX

# Frozen copies of the definitions in shoprec.storage.tables at the time of this revision.
OPTIONS: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin", "mysql_engine": "InnoDB"}
BIG_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
LONG_BINARY = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")


def upgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("sha256", sa.String(64), nullable=True))
    op.create_table(
        "model_artifacts",
        sa.Column("id", BIG_KEY, autoincrement=True),
        sa.Column("platform_id", sa.Integer, nullable=False),
        sa.Column("artifact_key", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("data", LONG_BINARY, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_model_artifacts"),
        sa.ForeignKeyConstraint(["platform_id"], ["platforms.id"], name="fk_model_artifacts_platform_id_platforms"),
        sa.UniqueConstraint("artifact_key", "seq", name="uq_model_artifacts_artifact_key_seq"),
        **OPTIONS,
    )
    _resolve_paths()


def _resolve_paths() -> None:
    """Relative artifact paths -> absolute (with sha256) when found from the current directory, else marked."""
    from shoprec.storage.artifacts import artifact_sha256  # the canonical packing is a format: it does not change

    conn = op.get_bind()
    models = sa.table("models", sa.column("id", sa.Integer), sa.column("model_id", sa.String),
                      sa.column("path", sa.Text), sa.column("sha256", sa.String))
    rows = conn.execute(sa.select(models.c.id, models.c.model_id, models.c.path)).all()
    for key, model_id, path in rows:
        if str(path).startswith(MISSING) or ":" in str(path).split("/", 1)[0]:  # marked, or a URL
            continue
        found = Path(path) if Path(path).is_absolute() else Path.cwd() / path
        values: dict[str, Any] = {}
        if (found / "config.json").is_file():
            values = {"path": str(found.resolve()), "sha256": artifact_sha256(found)}
            if not Path(path).is_absolute():
                log.warning("model %s: relative artifact path %r resolved to %s", model_id, path, values["path"])
        elif not Path(path).is_absolute():
            values = {"path": MISSING + str(path)}
            log.warning("model %s: artifact path %r is relative and no artifact is there from %s; the model is "
                        "marked missing (activating it is refused; retrain it, or migrate from the directory "
                        "it was trained in)", model_id, path, Path.cwd())
        else:
            log.warning("model %s: no artifact at %s (left as is; it may be on a disk this machine lacks)",
                        model_id, path)
        if values:
            conn.execute(sa.update(models).where(models.c.id == key).values(**values))


def downgrade() -> None:
    conn = op.get_bind()
    models = sa.table("models", sa.column("id", sa.Integer), sa.column("path", sa.Text))
    for key, path in conn.execute(sa.select(models.c.id, models.c.path)).all():
        if str(path).startswith(MISSING):
            conn.execute(sa.update(models).where(models.c.id == key).values(path=str(path)[len(MISSING):]))
    op.drop_table("model_artifacts")
    with op.batch_alter_table("models") as batch:
        batch.drop_column("sha256")
