"""Serving: hashed API keys, the model registry (active flag), jobs, recommendation log, feedback, deleted items.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Frozen copies of the definitions in shoprec.storage.tables at the time of this revision.
OPTIONS: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin", "mysql_engine": "InnoDB"}
BIG_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _platform_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["platform_id"], ["platforms.id"], name=f"fk_{table}_platform_id_platforms")


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer, autoincrement=True),
        sa.Column("platform_id", sa.Integer, nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("revoked", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        _platform_fk("api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
        **OPTIONS,
    )
    op.create_index("ix_api_keys_platform_id", "api_keys", ["platform_id"])
    op.create_table(
        "models",
        sa.Column("id", sa.Integer, autoincrement=True),
        sa.Column("platform_id", sa.Integer, nullable=False),
        sa.Column("model_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("config", sa.JSON, nullable=True),
        sa.Column("metrics", sa.JSON, nullable=True),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("activated_at", sa.Double, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_models"),
        _platform_fk("models"),
        sa.UniqueConstraint("model_id", name="uq_models_model_id"),
        **OPTIONS,
    )
    op.create_index("ix_models_platform_id_active", "models", ["platform_id", "active"])
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, autoincrement=True),
        sa.Column("platform_id", sa.Integer, nullable=False),
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("params", sa.JSON, nullable=True),
        sa.Column("result", sa.JSON, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        _platform_fk("jobs"),
        sa.UniqueConstraint("job_id", name="uq_jobs_job_id"),
        **OPTIONS,
    )
    op.create_table(
        "recommendations",
        sa.Column("id", sa.Integer, autoincrement=True),
        sa.Column("platform_id", sa.Integer, nullable=False),
        sa.Column("recommendation_id", sa.String(32), nullable=False),
        sa.Column("user_external_id", sa.String(256), nullable=True),
        sa.Column("model", sa.String(64), nullable=True),
        sa.Column("items", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_recommendations"),
        _platform_fk("recommendations"),
        sa.UniqueConstraint("recommendation_id", name="uq_recommendations_recommendation_id"),
        **OPTIONS,
    )
    op.create_table(
        "feedback",
        sa.Column("id", BIG_KEY, autoincrement=True),
        sa.Column("platform_id", sa.Integer, nullable=False),
        sa.Column("recommendation_id", sa.String(32), nullable=False),
        sa.Column("item_external_id", sa.String(256), nullable=False),
        sa.Column("feedback_type", sa.String(32), nullable=False),
        sa.Column("timestamp", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_feedback"),
        _platform_fk("feedback"),
        **OPTIONS,
    )
    op.create_index("ix_feedback_recommendation_id", "feedback", ["recommendation_id"])
    op.create_table(
        "deleted_items",
        sa.Column("item_id", sa.Integer, autoincrement=False),
        sa.Column("platform_id", sa.Integer, nullable=False),
        sa.Column("deleted_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("item_id", name="pk_deleted_items"),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], name="fk_deleted_items_item_id_items"),
        _platform_fk("deleted_items"),
        **OPTIONS,
    )
    op.create_index("ix_deleted_items_platform_id", "deleted_items", ["platform_id"])


def downgrade() -> None:
    # dropping a table drops its indexes (MariaDB refuses to drop an index a foreign key needs first)
    for table in ("deleted_items", "feedback", "recommendations", "jobs", "models", "api_keys"):
        op.drop_table(table)
