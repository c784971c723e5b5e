"""The database schema as SQLAlchemy Core tables: every row carries its platform.

Surrogate integer keys are internal; external ids stay strings (at most MAX_ID_LENGTH characters).
Times are unix seconds (UTC) stored as double precision, the same unit as `Interactions.timestamp`.
Event types are stored by name (`shoprec.types.EventType` values), so their codes can evolve.
The Alembic migrations under storage/migrations create exactly this schema (a test compares them).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.schema import SchemaItem

from shoprec.data.vectors import MAX_VECTOR_NAME_LENGTH

MAX_ID_LENGTH = 256
MAX_PLATFORM_LENGTH = 128
MAX_EVENT_TYPE_LENGTH = 32
MAX_CURRENCY_LENGTH = 8
DEDUPE_KEY_LENGTH = 32
MAX_EVENT_ID_LENGTH = 128  # a client's event_id (migration 0010)

# Table options: on MySQL/MariaDB, utf8mb4 with a binary collation so ids are compared exactly
# (the server default collations are case-insensitive).
TABLE_OPTIONS: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin", "mysql_engine": "InnoDB"}

# SQLite only auto-increments an INTEGER PRIMARY KEY, so the 64-bit key is INTEGER there.
BIG_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
LONG_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")

metadata = sa.MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})


def platform_table(name: str, *columns: SchemaItem, key: Any = sa.Integer) -> sa.Table:
    """A table of rows that belong to one platform: an auto-incremented `id` (of type `key`), the owning
    `platform_id`, then `columns`, with TABLE_OPTIONS."""
    return sa.Table(
        name, metadata,
        sa.Column("id", key, primary_key=True, autoincrement=True),
        sa.Column("platform_id", sa.Integer, sa.ForeignKey("platforms.id"), nullable=False),
        *columns,
        **TABLE_OPTIONS,
    )


platforms = sa.Table(
    "platforms", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(MAX_PLATFORM_LENGTH), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.UniqueConstraint("name"),
    **TABLE_OPTIONS,
)

users = platform_table(
    "users",
    sa.Column("external_id", sa.String(MAX_ID_LENGTH), nullable=False),
    sa.Column("attributes", sa.JSON, nullable=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.UniqueConstraint("platform_id", "external_id"),
)

items = platform_table(
    "items",
    sa.Column("external_id", sa.String(MAX_ID_LENGTH), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("description", LONG_TEXT, nullable=False),
    sa.Column("category", sa.Text, nullable=False),  # path joined with " > "
    sa.Column("brand", sa.Text, nullable=False),
    sa.Column("price", sa.Double, nullable=True),
    sa.Column("currency", sa.String(MAX_CURRENCY_LENGTH), nullable=True),
    sa.Column("attributes", sa.JSON, nullable=True),
    sa.Column("available", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.UniqueConstraint("platform_id", "external_id"),
    sa.Index(None, "platform_id", "updated_at"),  # the catalog version: its newest update (migration 0006)
)

events = platform_table(
    "events",
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id"), nullable=False),
    sa.Column("event_type", sa.String(MAX_EVENT_TYPE_LENGTH), nullable=False),
    sa.Column("value", sa.Double, nullable=True),
    sa.Column("timestamp", sa.Double, nullable=False),
    sa.Column("session_id", sa.String(MAX_ID_LENGTH), nullable=True),
    sa.Column("context", sa.JSON, nullable=True),
    sa.Column("text", LONG_TEXT, nullable=True),
    # hash of (user, item, type, timestamp, value, session): the same event imported twice is stored once
    sa.Column("dedupe_key", sa.String(DEDUPE_KEY_LENGTH), nullable=False),
    # led by the time (migration 0014): the same uniqueness (the key hashes the time), and a file in time order
    # appends to the index instead of writing into random pages of it; look-ups give the time with the key. This
    # holds while a stored timestamp is the one its key hashed: nothing may rewrite events.timestamp
    sa.UniqueConstraint("platform_id", "timestamp", "dedupe_key"),
    # the client's id of the event (NULL: none given): an event whose id is stored is a duplicate (migration 0010)
    sa.Column("event_id", sa.String(MAX_EVENT_ID_LENGTH), nullable=True),
    sa.UniqueConstraint("platform_id", "event_id"),  # NULLs are distinct in SQLite, PostgreSQL and MariaDB
    sa.Index(None, "user_id", "timestamp"),  # a user's history in time order (and the foreign key's index)
    sa.Index(None, "item_id"),
    key=BIG_KEY,
)


# ---------------------------------------------------------------------------- serving (migration 0002)
# API keys are stored as a SHA-256 hex digest only; the key itself is shown once, at creation.
KEY_HASH_LENGTH = 64
KEY_ID_LENGTH = 32
MAX_KEY_NAME_LENGTH = 64
MAX_SCOPES_LENGTH = 64
MODEL_ID_LENGTH = 32
ARTIFACT_SHA_LENGTH = 64  # hex sha256 of a model artifact (models.sha256)
MAX_MODEL_NAME_LENGTH = 64
MAX_WORKER_ID_LENGTH = 128  # a worker's id: "host:pid" or its --id
MAX_JOB_ACTOR_LENGTH = 128  # who submitted a job (the audit log's actor)

api_keys = platform_table(
    "api_keys",
    sa.Column("key_hash", sa.String(KEY_HASH_LENGTH), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("revoked", sa.Boolean, nullable=False),
    # security (migration 0003): a public id to list and revoke a key by, a label, its scopes, when revoked
    sa.Column("key_id", sa.String(KEY_ID_LENGTH), nullable=False),
    sa.Column("name", sa.String(MAX_KEY_NAME_LENGTH), nullable=True),
    sa.Column("scopes", sa.String(MAX_SCOPES_LENGTH), nullable=False),  # comma-separated, e.g. "read,write"
    sa.Column("revoked_at", sa.Double, nullable=True),
    sa.UniqueConstraint("key_hash"),
    sa.Index(None, "platform_id"),
    sa.Index(None, "key_id", unique=True),
)

# Trained models; `path` is the artifact's reference in its store (an absolute directory, "database:<key>" or an
# fsspec URL: shoprec.service.artifacts; "missing:<relative path>" when migration 0007 could not resolve it).
# At most one row per platform has active = true (activation is one transaction).
models = platform_table(
    "models",
    sa.Column("model_id", sa.String(MODEL_ID_LENGTH), nullable=False),
    sa.Column("name", sa.String(MAX_MODEL_NAME_LENGTH), nullable=False),
    sa.Column("config", sa.JSON, nullable=True),
    sa.Column("metrics", sa.JSON, nullable=True),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("activated_at", sa.Double, nullable=True),
    sa.Column("sha256", sa.String(ARTIFACT_SHA_LENGTH), nullable=True),  # of the artifact's canonical packing
    # (shoprec.storage.artifacts); NULL: not verified (an absolute path a migration could not read)
    sa.UniqueConstraint("model_id"),
    sa.Index(None, "platform_id", "active"),
)

jobs = platform_table(
    "jobs",
    sa.Column("job_id", sa.String(MODEL_ID_LENGTH), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # queued | running | succeeded | failed | cancelled
    sa.Column("params", sa.JSON, nullable=True),
    sa.Column("result", sa.JSON, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    # durable jobs (migration 0009): claimed by a worker under a lease it renews (storage/jobs.py)
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),  # times a worker claimed it
    sa.Column("worker", sa.String(MAX_WORKER_ID_LENGTH), nullable=True),  # the worker running it (or that last ran it)
    sa.Column("lease_until", sa.Double, nullable=True),  # a running job whose lease ran out is taken over
    sa.Column("started_at", sa.Double, nullable=True),
    sa.Column("finished_at", sa.Double, nullable=True),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("progress", sa.Text, nullable=True),  # the newest progress line of the running attempt
    sa.Column("actor", sa.String(MAX_JOB_ACTOR_LENGTH), nullable=True),  # who submitted it (a key id, "cli")
    sa.UniqueConstraint("job_id"),
    sa.Index(None, "status", "platform_id"),
)

# Served lists, for pagination across workers and for attributing feedback.
recommendations = platform_table(
    "recommendations",
    sa.Column("recommendation_id", sa.String(MODEL_ID_LENGTH), nullable=False),
    sa.Column("user_external_id", sa.String(MAX_ID_LENGTH), nullable=True),
    sa.Column("model", sa.String(MAX_MODEL_NAME_LENGTH), nullable=True),
    sa.Column("items", sa.JSON, nullable=False),  # [[item id, score, source], ...] in served order
    sa.Column("created_at", sa.Double, nullable=False),
    sa.UniqueConstraint("recommendation_id"),
)

feedback = platform_table(
    "feedback",
    sa.Column("recommendation_id", sa.String(MODEL_ID_LENGTH), nullable=False),
    sa.Column("item_external_id", sa.String(MAX_ID_LENGTH), nullable=False),
    sa.Column("feedback_type", sa.String(MAX_EVENT_TYPE_LENGTH), nullable=False),
    sa.Column("timestamp", sa.Double, nullable=False),
    sa.Index(None, "recommendation_id"),
    key=BIG_KEY,
)

# Items deleted through the API: kept as rows (events refer to them) but never served; a new PUT revives them.
deleted_items = sa.Table(
    "deleted_items", metadata,
    sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id"), primary_key=True, autoincrement=False),
    sa.Column("platform_id", sa.Integer, sa.ForeignKey("platforms.id"), nullable=False),
    sa.Column("deleted_at", sa.Double, nullable=False),
    sa.Index(None, "platform_id"),
    **TABLE_OPTIONS,
)


# ---------------------------------------------------------------------------- security (migration 0003)
# Admin actions and erasures. Callers write hashes/pseudonyms only (never a raw user id or identity);
# platform_id is NULL for deployment-wide actions.
MAX_AUDIT_ACTION_LENGTH = 64
MAX_AUDIT_ACTOR_LENGTH = 128

audit_log = sa.Table(
    "audit_log", metadata,
    sa.Column("id", BIG_KEY, primary_key=True, autoincrement=True),
    sa.Column("platform_id", sa.Integer, sa.ForeignKey("platforms.id"), nullable=True),
    sa.Column("action", sa.String(MAX_AUDIT_ACTION_LENGTH), nullable=False),
    sa.Column("actor", sa.String(MAX_AUDIT_ACTOR_LENGTH), nullable=False),
    sa.Column("subject", sa.String(MAX_ID_LENGTH), nullable=True),
    sa.Column("details", sa.JSON, nullable=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Index(None, "platform_id", "created_at"),
    **TABLE_OPTIONS,
)


# ---------------------------------------------------------------------------- privacy (migration 0004)
# Identities are stored only as HMAC-SHA256(SHOPREC_SECRET_KEY, "type:normalised value") hex digests.
IDENTITY_HASH_LENGTH = 64
MAX_IDENTITY_TYPE_LENGTH = 16
MAX_REASON_LENGTH = 64

identities = platform_table(
    "identities",
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("identity_type", sa.String(MAX_IDENTITY_TYPE_LENGTH), nullable=False),
    sa.Column("identity_hash", sa.String(IDENTITY_HASH_LENGTH), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.UniqueConstraint("platform_id", "user_id", "identity_type"),  # one identity of each type per user
    sa.Index(None, "identity_hash"),
    sa.Index(None, "user_id"),
)

# One row per consent: platform_id agrees to share linked users' behaviour with partner_id. A link is in
# force only while both directions have a row.
platform_links = platform_table(
    "platform_links",
    sa.Column("partner_id", sa.Integer, sa.ForeignKey("platforms.id"), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.UniqueConstraint("platform_id", "partner_id"),
    sa.Index(None, "partner_id"),
)

# Platforms whose models must be retrained (e.g. after an erasure): one row per platform, removed by training.
retrain_flags = sa.Table(
    "retrain_flags", metadata,
    sa.Column("platform_id", sa.Integer, sa.ForeignKey("platforms.id"), primary_key=True, autoincrement=False),
    sa.Column("reason", sa.String(MAX_REASON_LENGTH), nullable=False),
    sa.Column("flagged_at", sa.Double, nullable=False),
    **TABLE_OPTIONS,
)


# ---------------------------------------------------------------------------- experiments (migration 0005)
# A/B experiments: variants [{name, model_id, share}] as JSON; running while start_at <= now < end_at and not stopped.
EXPERIMENT_ID_LENGTH = 32
MAX_EXPERIMENT_NAME_LENGTH = 128
MAX_VARIANT_NAME_LENGTH = 64
MAX_OUTCOME_LENGTH = 16

experiments = platform_table(
    "experiments",
    sa.Column("experiment_id", sa.String(EXPERIMENT_ID_LENGTH), nullable=False),
    sa.Column("name", sa.String(MAX_EXPERIMENT_NAME_LENGTH), nullable=False),
    sa.Column("variants", sa.JSON, nullable=False),
    sa.Column("start_at", sa.Double, nullable=False),
    sa.Column("end_at", sa.Double, nullable=True),
    sa.Column("stopped_at", sa.Double, nullable=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.UniqueConstraint("experiment_id"),
    sa.Index(None, "platform_id"),
)

# One row per served list of an experiment: the items shown (impressions) and the variant that chose them.
experiment_exposures = platform_table(
    "experiment_exposures",
    sa.Column("experiment_id", sa.String(EXPERIMENT_ID_LENGTH), nullable=False),
    sa.Column("variant", sa.String(MAX_VARIANT_NAME_LENGTH), nullable=False),
    sa.Column("recommendation_id", sa.String(MODEL_ID_LENGTH), nullable=False),
    sa.Column("user_external_id", sa.String(MAX_ID_LENGTH), nullable=False),
    sa.Column("items", sa.JSON, nullable=False),  # the shown item ids, in served order
    sa.Column("n_shown", sa.Integer, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Index(None, "platform_id", "user_external_id", "created_at"),  # window attribution
    sa.Index(None, "recommendation_id"),
    sa.Index(None, "experiment_id"),
    key=BIG_KEY,
)

# Outcomes credited to a shown item of an exposure: outcome "click" (click, cart, like or purchase) or
# "purchase". Counted per distinct (recommendation_id, item, outcome), so a repeated event counts once.
experiment_credits = platform_table(
    "experiment_credits",
    sa.Column("experiment_id", sa.String(EXPERIMENT_ID_LENGTH), nullable=False),
    sa.Column("variant", sa.String(MAX_VARIANT_NAME_LENGTH), nullable=False),
    sa.Column("recommendation_id", sa.String(MODEL_ID_LENGTH), nullable=False),
    sa.Column("item_external_id", sa.String(MAX_ID_LENGTH), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("outcome", sa.String(MAX_OUTCOME_LENGTH), nullable=False),
    sa.Column("event_type", sa.String(MAX_EVENT_TYPE_LENGTH), nullable=False),
    sa.Column("timestamp", sa.Double, nullable=False),
    sa.Index(None, "experiment_id"),
    key=BIG_KEY,
)


# ---------------------------------------------------------------------------- model artifacts (migration 0007)
# The database artifact store: an artifact's canonical tar (shoprec.storage.artifacts) in rows of at most 1 MiB.
ARTIFACT_KEY_LENGTH = 64
LONG_BINARY = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")

model_artifacts = platform_table(
    "model_artifacts",
    sa.Column("artifact_key", sa.String(ARTIFACT_KEY_LENGTH), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("data", LONG_BINARY, nullable=False),
    sa.UniqueConstraint("artifact_key", "seq"),
    key=BIG_KEY,
)


# ---------------------------------------------------------------------------- retraining (migration 0008)
# A platform's continuous-retraining policy and schedule state (one row per platform). `custom` false: the row
# only holds schedule state and the deployment default ([retraining] settings) is the policy. Custom: the
# triggers are as stored (NULL: that trigger is off) and NULL margin / metric / holdout / action / model take
# the default. `event_mark`: the events table's highest id when the last model was trained (events stored
# since are counted with the primary key, `id > event_mark`); `model_at`: that model's created_at;
# `triggered_at`: when the schedule last fired (a retrain that records its decision clears it).
MAX_RETRAIN_ACTION_LENGTH = 16
MAX_METRIC_NAME_LENGTH = 32
MAX_DECISION_LENGTH = 16

retrain_policies = sa.Table(
    "retrain_policies", metadata,
    sa.Column("platform_id", sa.Integer, sa.ForeignKey("platforms.id"), primary_key=True, autoincrement=False),
    sa.Column("custom", sa.Boolean, nullable=False),
    sa.Column("every_hours", sa.Double, nullable=True),
    sa.Column("after_events", sa.BigInteger, nullable=True),
    sa.Column("margin", sa.Double, nullable=True),
    sa.Column("metric", sa.String(MAX_METRIC_NAME_LENGTH), nullable=True),
    sa.Column("holdout_fraction", sa.Double, nullable=True),
    sa.Column("action", sa.String(MAX_RETRAIN_ACTION_LENGTH), nullable=True),
    sa.Column("model", sa.String(MAX_MODEL_NAME_LENGTH), nullable=True),
    sa.Column("params", sa.JSON, nullable=True),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Column("event_mark", sa.BigInteger, nullable=True),
    sa.Column("model_at", sa.Double, nullable=True),
    sa.Column("triggered_at", sa.Double, nullable=True),
    **TABLE_OPTIONS,
)

# Every promotion-gate decision: the candidate and the active model, both models' metrics on the same
# time-based holdout, the holdout (cut-off, sizes, what each side was trained on), the decision
# (promote | keep | experiment | failed) and why.
retrain_decisions = platform_table(
    "retrain_decisions",
    sa.Column("candidate_model_id", sa.String(MODEL_ID_LENGTH), nullable=True),  # NULL: training failed
    sa.Column("active_model_id", sa.String(MODEL_ID_LENGTH), nullable=True),
    sa.Column("decision", sa.String(MAX_DECISION_LENGTH), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("metric", sa.String(MAX_METRIC_NAME_LENGTH), nullable=False),
    sa.Column("margin", sa.Double, nullable=False),
    sa.Column("candidate_metrics", sa.JSON, nullable=True),
    sa.Column("active_metrics", sa.JSON, nullable=True),
    sa.Column("holdout", sa.JSON, nullable=True),
    sa.Column("experiment_id", sa.String(EXPERIMENT_ID_LENGTH), nullable=True),
    sa.Column("cause", sa.String(MAX_RETRAIN_ACTION_LENGTH), nullable=True),  # schedule | manual | gate
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Index(None, "platform_id", "created_at"),
    key=BIG_KEY,
)

# ---------------------------------------------------------------------------- idempotency (migration 0010)
# The answer to a write request sent with an Idempotency-Key header, per platform and key, so that a retry gets
# the same answer without the work being done again (shoprec.service.idempotency). `request_hash`: sha256 of
# the route and the request's validated body (the same key with another body is refused); `started_at`: when
# the key was first claimed, the arrival time given to events without a timestamp, kept for every retry;
# `owner` / `lease_until`: the request working under the key and until when (a retry waits, then 409; an
# abandoned claim is taken over after it); `status` / `body`: the stored answer (NULL while in flight);
# `expires_at`: when the key is forgotten (serving.idempotency_ttl_s after it was claimed).
MAX_IDEMPOTENCY_KEY_LENGTH = 255
REQUEST_HASH_LENGTH = 64
OWNER_LENGTH = 32
MAX_ROUTE_LENGTH = 64

idempotency_keys = platform_table(
    "idempotency_keys",
    sa.Column("idempotency_key", sa.String(MAX_IDEMPOTENCY_KEY_LENGTH), nullable=False),
    sa.Column("route", sa.String(MAX_ROUTE_LENGTH), nullable=False),
    sa.Column("request_hash", sa.String(REQUEST_HASH_LENGTH), nullable=False),
    sa.Column("owner", sa.String(OWNER_LENGTH), nullable=False),
    sa.Column("lease_until", sa.Double, nullable=False),
    sa.Column("status", sa.Integer, nullable=True),
    sa.Column("body", LONG_TEXT, nullable=True),
    sa.Column("started_at", sa.Double, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=False),
    sa.UniqueConstraint("platform_id", "idempotency_key"),
    sa.Index(None, "platform_id", "expires_at"),
    key=BIG_KEY,
)


# ---------------------------------------------------------------------------- auth failures (migration 0011)
# Failed authentications per client address, shared by the API workers when there is no Redis
# (shoprec.service.ratelimit.DatabaseAuthFailures): the count in the current window, and until when the
# client is refused. Deployment-wide (a client address is not a platform's).
MAX_CLIENT_LENGTH = 64  # an IPv6 address fits

auth_failures = sa.Table(
    "auth_failures", metadata,
    sa.Column("client", sa.String(MAX_CLIENT_LENGTH), primary_key=True),
    sa.Column("window_start", sa.Double, nullable=False),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("blocked_until", sa.Double, nullable=True),
    sa.Index(None, "blocked_until"),
    **TABLE_OPTIONS,
)


# ---------------------------------------------------------------------------- business rules (migration 0012)
# A platform's saved default rules (shoprec.rules.Rules.to_json: filter, boost, pin, max_per_category,
# max_per_brand, diversity): combined with each request's rules. One row per platform.
platform_rules = sa.Table(
    "platform_rules", metadata,
    sa.Column("platform_id", sa.Integer, sa.ForeignKey("platforms.id"), primary_key=True, autoincrement=False),
    sa.Column("rules", sa.JSON, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    **TABLE_OPTIONS,
)

# ---------------------------------------------------------------------------- item vectors (migration 0013)
# The shop's own item vectors (image, LLM, search embeddings...), named per platform. A name's dimension is fixed
# by its first vector (item_vector_spaces: one row per platform and name); a vector is stored as little-endian
# float32 bytes (4 * dim), one row per item and name. Deleting an item deletes its vectors.
# MAX_VECTOR_NAME_LENGTH (32) and MAX_VECTOR_DIM (4096: 16 KiB of float32, fits a MySQL BLOB): shoprec.data.vectors

item_vector_spaces = platform_table(
    "item_vector_spaces",
    sa.Column("name", sa.String(MAX_VECTOR_NAME_LENGTH), nullable=False),
    sa.Column("dim", sa.Integer, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.UniqueConstraint("platform_id", "name"),
)

item_vectors = platform_table(
    "item_vectors",
    sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id"), nullable=False),
    sa.Column("name", sa.String(MAX_VECTOR_NAME_LENGTH), nullable=False),
    sa.Column("dim", sa.Integer, nullable=False),
    sa.Column("vector", sa.LargeBinary, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.UniqueConstraint("platform_id", "item_id", "name"),
    sa.Index(None, "item_id"),
    key=BIG_KEY,
)
