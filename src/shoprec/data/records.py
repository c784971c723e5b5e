"""Canonical records that every reader yields and the ingest pipeline consumes.

Readers (shoprec.datasets) turn a source into a stream of EventRecord / ItemRecord / UserRecord
(and Rejected for lines they could not parse); the pipeline cleans, dedupes and writes them.
Times are unix seconds (float, UTC). Ids are strings at this boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shoprec.types import EventType


@dataclass(frozen=True, slots=True)
class Source:
    """Where a record came from, for error messages and reports: file (or 'api'), line / index."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(slots=True)
class EventRecord:
    user_id: str
    item_id: str
    event_type: EventType
    timestamp: float
    value: float | None = None
    session_id: str | None = None
    context: dict[str, Any] | None = None
    text: str | None = None
    source: Source | None = None
    event_id: str | None = None  # the client's id of this event: an event whose id is stored is a duplicate


@dataclass(slots=True)
class ItemRecord:
    item_id: str
    title: str = ""
    description: str = ""
    category: str = ""  # path joined with " > "
    brand: str = ""
    price: float | None = None
    currency: str | None = None
    available: bool = True
    attributes: dict[str, Any] = field(default_factory=dict)
    source: Source | None = None
    # the shop's own named vectors {"image": [...]} (shoprec.data.vectors; None: none given, the stored ones stay)
    vectors: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Identity:
    """An identifier of the person behind a user (type "email", "phone" or "loyalty"), for linking platforms.

    Only its keyed hash is ever stored (shoprec.privacy.identity); the value is kept out of reprs and logs."""

    type: str
    value: str = field(repr=False)


@dataclass(slots=True)
class UserRecord:
    user_id: str
    attributes: dict[str, Any] = field(default_factory=dict)
    source: Source | None = None
    identity: Identity | None = field(default=None, repr=False)


@dataclass(slots=True)
class Rejected:
    """A line or record that was dropped, with the field and the reason (a short snake_case code)."""

    source: Source
    reason: str
    field: str | None = None
    detail: str = ""


@dataclass(slots=True)
class Note:
    """A fact about the import the report should state (e.g. 'timestamps are synthetic')."""

    text: str


@dataclass(slots=True)
class Domain:
    """Records after this one belong to domain `name` (e.g. CDRIB's "game" and "video"), until the next Domain.

    The ingest pipeline maps a domain to its own platform f"{P}-{name}"; user ids shared across domains
    denote the same person.
    """

    name: str


Record = EventRecord | ItemRecord | UserRecord | Rejected | Note | Domain
