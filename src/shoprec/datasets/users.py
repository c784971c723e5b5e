"""users-jsonl: one user per line, {"user_id": ..., "attributes": {...}, "identity": {"type": ..., "value": ...}}.

The identity (optional; type "email", "phone" or "loyalty") is checked here and hashed by the ingest
pipeline (shoprec.privacy): its raw value is never stored, and rejections do not repeat it. Other keys
of a line become attributes, as in items-jsonl.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from shoprec.data.records import Identity, Record, Rejected, Source, UserRecord
from shoprec.datasets._common import parse_id
from shoprec.datasets.events import read_jsonl_rows
from shoprec.errors import DataError
from shoprec.privacy.keys import normalise_identity

USER_KEYS = ("user_id", "attributes", "identity")


def user_from_row(row: Mapping[str, Any], source: Source) -> Record:
    """One UserRecord from a users-jsonl object, or a Rejected naming the bad field."""
    try:
        user_id = parse_id(row.get("user_id"))
    except ValueError as exc:
        return Rejected(source, "bad_id", "user_id", str(exc))
    if not user_id:
        return Rejected(source, "missing_user", "user_id", "empty")
    attributes = {k: v for k, v in row.items() if k not in USER_KEYS and v not in (None, "")}
    extra = row.get("attributes")
    if extra is not None and not isinstance(extra, dict):
        return Rejected(source, "bad_attributes", "attributes", "must be an object")
    attributes.update(extra or {})
    identity = _identity(row.get("identity"))
    if isinstance(identity, str):
        return Rejected(source, "bad_identity", "identity", identity)
    return UserRecord(user_id=user_id, attributes=attributes, source=source, identity=identity)


def _identity(raw: Any) -> Identity | str | None:
    """The Identity of a line (None when absent), or the reason it is refused (without its value)."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str) or not isinstance(raw.get("value"), str):
        return 'must be an object {"type": "email" | "phone" | "loyalty", "value": "..."}'
    identity = Identity(raw["type"], raw["value"])
    try:
        normalise_identity(identity)
    except DataError as exc:
        return str(exc)
    return identity


def read_users_jsonl(path: Path) -> Iterator[Record]:
    return read_jsonl_rows(path, user_from_row)
