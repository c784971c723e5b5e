"""The events' dedupe index leads with the event's time: UNIQUE (platform_id, timestamp, dedupe_key) replaces
UNIQUE (platform_id, dedupe_key).

Same uniqueness: the dedupe key is a hash that includes the timestamp, so two events with the same key have
the same time. But a file imported in time order now appends to the index instead of writing into random
pages of it (the hash's order): SQLite's own insert work per event falls by about a third (docs/benchmarks.md,
"Scale: bulk import"). Look-ups of stored keys give the time with the key (shoprec.storage.bulk).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

OLD = ("uq_events_platform_id_dedupe_key", ["platform_id", "dedupe_key"])
NEW = ("uq_events_platform_id_timestamp_dedupe_key", ["platform_id", "timestamp", "dedupe_key"])


def _swap(drop: tuple[str, list[str]], create: tuple[str, list[str]]) -> None:
    # the new index before the old one goes: the events are never without a unique dedupe index, and MariaDB
    # always has an index starting with platform_id for that foreign key
    with op.batch_alter_table("events") as batch:
        batch.create_unique_constraint(create[0], create[1])
        batch.drop_constraint(drop[0], type_="unique")


def upgrade() -> None:
    _swap(OLD, NEW)


def downgrade() -> None:
    _swap(NEW, OLD)
