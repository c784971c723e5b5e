"""Items, users and events of a platform through the ingest pipeline (the same `ingest` as bulk import).

A batch is validated whole first, once (the pipeline's `validate`: its own checks and the cleaning rules,
record by record); if any record is refused, nothing is written and RecordErrors names each bad record's
index and field. Otherwise `ingest` writes the validated records (not checking them again) in ONE
transaction. Afterwards the caches of the affected users and of the platform's catalog are invalidated,
so the next recommendation sees the change.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from shoprec.data.records import EventRecord, ItemRecord, Record, Rejected, Source, UserRecord
from shoprec.errors import ConfigError, DataError
from shoprec.ingest.pipeline import ingest, validate
from shoprec.ingest.vectors import fixed_dims
from shoprec.privacy.keys import Privacy, normalise_identity
from shoprec.service.config import ServingConfig
from shoprec.service.errors import NotFound, RecordError, RecordErrors, TooLarge
from shoprec.service.platform import PlatformService
from shoprec.storage import Engine, PlatformRepo, storage_errors
from shoprec.storage.serving import ServingRepo
from shoprec.storage.vectors import VectorRepo

SOURCE = "request"
Stored = EventRecord | ItemRecord | UserRecord


@dataclass(frozen=True, slots=True)
class StoredCounts:
    events: int
    items: int
    users: int


@dataclass(frozen=True, slots=True)
class WriteResult:
    """A write's counts (WriteOut): records received, accepted (not rejected), duplicate events, rows stored."""

    received: int
    accepted: int
    duplicates: int
    stored: StoredCounts


@dataclass(frozen=True, slots=True)
class ItemView:
    """An item as stored (ItemOut)."""

    item_id: str
    title: str
    description: str
    category: str
    brand: str
    price: float | None
    currency: str | None
    available: bool
    attributes: dict[str, Any]
    created_at: float
    updated_at: float
    vectors: dict[str, list[float]] = field(default_factory=dict)  # the item's named vectors


@dataclass(frozen=True, slots=True)
class UserEvent:
    item_id: str
    type: str
    timestamp: float


@dataclass(frozen=True, slots=True)
class UserView:
    """A user and their recent events, oldest first (UserOut)."""

    user_id: str
    attributes: dict[str, Any]
    created_at: float
    updated_at: float
    recent_events: tuple[UserEvent, ...]


def _error(rej: Rejected) -> RecordError:
    index = rej.source.line if rej.source.file == SOURCE else None
    return RecordError(index=index, field=rej.field, reason=rej.reason, message=rej.detail or rej.reason)


class DataService:
    def __init__(self, engine: Engine, platforms: PlatformService, config: ServingConfig,
                 on_users_changed: Callable[[str, set[str]], None] | None = None,
                 on_catalog_changed: Callable[[str], None] | None = None, privacy: Privacy | None = None,
                 on_events_stored: Callable[[str, Sequence[EventRecord], bool], object] | None = None) -> None:
        """The hooks: `on_users_changed(platform, stored user ids)` and `on_catalog_changed(platform)` after a
        write (cache invalidation); `on_events_stored(platform, events, ids already stored)` after events were
        stored (crediting them to experiment lists)."""
        self.engine, self.platforms, self.config = engine, platforms, config
        self.privacy = privacy or Privacy()
        self.on_users_changed = on_users_changed or (lambda platform, users: None)
        self.on_catalog_changed = on_catalog_changed or (lambda platform: None)
        self.on_events_stored = on_events_stored

    # ---------------------------------------------------------------- writes
    def _write(self, platform: str, records: Sequence[Stored], limit: int, what: str, stored_ids: bool = False
               ) -> WriteResult:
        if len(records) > limit:
            raise TooLarge(f"{len(records):,} {what} in one request (at most {limit:,})")
        now = time.time()
        for i, rec in enumerate(records):
            rec.source = Source(SOURCE, i)  # errors and the report name the request index
        validated: list[Record] = list(fixed_dims(validate(records, now=now), self.engine, platform))
        errors = [_error(r) for r in validated if isinstance(r, Rejected)] + self._identity_errors(records)
        if errors:
            raise RecordErrors(sorted(errors, key=lambda e: (e.index if e.index is not None else -1)))
        privacy = replace(self.privacy, pseudonymize=False) if stored_ids else self.privacy
        report = ingest(self.engine, platform, validated, batch_size=len(records) + 1, now=now, source=SOURCE,
                        privacy=privacy, validated=True)
        duplicates = report.rejected.get("duplicate", 0)
        stored = StoredCounts(report.stored_total("events"), report.stored_total("items"), report.stored_total("users"))
        return WriteResult(len(records), report.accepted, duplicates, stored)

    def _identity_errors(self, records: Sequence[Stored]) -> list[RecordError]:
        """Users whose identity cannot be stored: malformed, or no secret to hash it with (ConfigError)."""
        with_identity = [(i, r) for i, r in enumerate(records) if isinstance(r, UserRecord) and r.identity]
        if with_identity and not self.privacy.secret:
            raise ConfigError("identities need SHOPREC_SECRET_KEY to be set (they are stored as keyed hashes only)")
        errors = []
        for i, rec in with_identity:
            assert rec.identity is not None
            try:
                normalise_identity(rec.identity)
            except DataError as exc:
                errors.append(RecordError(i, "identity", "bad_identity", str(exc)))
        return errors

    def add_events(self, platform: str, events: Sequence[EventRecord], *, stored_ids: bool = False
                   ) -> WriteResult:
        """Store events (unknown users are created; unknown items created or refused per config).
        `stored_ids`: the user ids are already as stored (pseudonyms, e.g. from the recommendation log)."""
        if len(events) <= self.config.max_events and self.config.unknown_items == "reject":
            self._refuse_unknown_items(platform, events)
        result = self._write(platform, events, self.config.max_events, "events", stored_ids)
        self.on_users_changed(platform, {e.user_id if stored_ids else self.privacy.user_id(platform, e.user_id)
                                         for e in events})
        if self.on_events_stored is not None and result.stored.events:
            self.on_events_stored(platform, events, stored_ids)
        if result.stored.events:
            self.on_catalog_changed(platform)  # bare items may have been created
        return result

    def _refuse_unknown_items(self, platform: str, events: Sequence[EventRecord]) -> None:
        ids = [e.item_id for e in events if isinstance(e.item_id, str)]
        with storage_errors(self.engine, "look up items"), self.engine.connect() as conn:
            known = ServingRepo(conn, self.platforms.platform_id(platform)).known_items(ids)
        errors = [RecordError(i, "item_id", "unknown_item", f"no item {e.item_id!r} in the catalog")
                  for i, e in enumerate(events) if isinstance(e.item_id, str) and e.item_id.strip() not in known]
        if errors:
            raise RecordErrors(errors)

    def upsert_items(self, platform: str, items: Sequence[ItemRecord]) -> WriteResult:
        result = self._write(platform, items, self.config.max_items, "items")
        with storage_errors(self.engine, "revive items"), self.engine.begin() as conn:
            ServingRepo(conn, self.platforms.platform_id(platform)).undelete_items([i.item_id for i in items])
        self.on_catalog_changed(platform)
        return result

    def upsert_users(self, platform: str, users: Sequence[UserRecord]) -> WriteResult:
        result = self._write(platform, users, self.config.max_items, "users")
        self.on_users_changed(platform, {self.privacy.user_id(platform, u.user_id) for u in users})
        return result

    def delete_item(self, platform: str, item_id: str) -> None:
        with storage_errors(self.engine, f"delete item {item_id!r}"), self.engine.begin() as conn:
            key = self.platforms.platform_id(platform)
            found = ServingRepo(conn, key).delete_item(item_id, time.time())
            VectorRepo(conn, key).delete_item(item_id)  # its vectors are deleted with it (a PUT may send new ones)
        if not found:
            raise NotFound(f"no item {item_id!r} on platform {platform!r}")
        self.on_catalog_changed(platform)

    # ---------------------------------------------------------------- reads
    def get_item(self, platform: str, item_id: str) -> ItemView:
        with storage_errors(self.engine, f"read item {item_id!r}"), self.engine.connect() as conn:
            key = self.platforms.platform_id(platform)
            row = PlatformRepo(conn, key).get_item(item_id)
            deleted = row is not None and ServingRepo(conn, key).is_deleted(item_id)
            vectors = VectorRepo(conn, key).of_item(item_id) if row is not None and not deleted else {}
        if row is None or deleted:
            raise NotFound(f"no item {item_id!r} on platform {platform!r}")
        return ItemView(item_id=row["external_id"], title=row["title"], description=row["description"],
                        category=row["category"], brand=row["brand"], price=row["price"], currency=row["currency"],
                        available=row["available"], attributes=row.get("attributes") or {},
                        created_at=row["created_at"], updated_at=row["updated_at"], vectors=vectors)

    def get_user(self, platform: str, user_id: str, history: int = 20) -> UserView:
        stored = self.privacy.user_id(platform, user_id)
        with storage_errors(self.engine, f"read user {user_id!r}"), self.engine.connect() as conn:
            repo = PlatformRepo(conn, self.platforms.platform_id(platform))
            row = repo.get_user(stored)
            events = repo.user_history(stored, limit=history) if row is not None else []
        if row is None:
            raise NotFound(f"no user {user_id!r} on platform {platform!r}")
        return UserView(user_id, row.get("attributes") or {}, row["created_at"], row["updated_at"],
                        tuple(UserEvent(i, t, ts) for i, t, ts in events))
