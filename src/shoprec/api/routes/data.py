"""Platforms, items, users and events."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Body, Path, Request

from shoprec.api.auth import AdminDep, PlatformDep, ServicesDep
from shoprec.api.errors import responses
from shoprec.api.schemas import (
    MAX_BATCH,
    EventIn,
    ItemIn,
    ItemOut,
    PlatformIn,
    PlatformOut,
    UserIn,
    UserOut,
    WriteOut,
)
from shoprec.api.validation import parsed_records
from shoprec.data.records import EventRecord, ItemRecord, UserRecord
from shoprec.storage.tables import MAX_ID_LENGTH

router = APIRouter(prefix="/v1")
ItemId = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH, pattern=r"^[^\x00]*$")]
UserId = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH, pattern=r"^[^\x00]*$")]


@router.post("/platforms", response_model=PlatformOut, status_code=201, tags=["platforms"],
             responses=responses(409))
def create_platform(body: PlatformIn, services: ServicesDep, admin: AdminDep) -> PlatformOut:
    """Create a platform (admin key only) and return its API key, shown this once."""
    return PlatformOut(platform=body.name, api_key=services.platforms.create(body.name))


@router.put("/items", response_model=WriteOut, tags=["items"])
def put_items(items: Annotated[list[ItemIn], Body(max_length=MAX_BATCH)], platform: PlatformDep,
              services: ServicesDep) -> WriteOut:
    """Insert or update items (all or nothing). Each item is parsed as a line of items-jsonl: a category
    path or list, available as true/false/yes/no/1/0, other fields as attributes."""
    records = parsed_records(items, ItemIn.to_record)
    return WriteOut(**asdict(services.data.upsert_items(platform, [r for r in records
                                                                   if isinstance(r, ItemRecord)])))


@router.get("/items/{item_id}", response_model=ItemOut, tags=["items"])
def get_item(item_id: ItemId, platform: PlatformDep, services: ServicesDep) -> ItemOut:
    return ItemOut(**asdict(services.data.get_item(platform, item_id)))


@router.delete("/items/{item_id}", status_code=204, tags=["items"])
def delete_item(item_id: ItemId, platform: PlatformDep, services: ServicesDep) -> None:
    """Delete an item: it is never recommended again (a later PUT brings it back)."""
    services.data.delete_item(platform, item_id)


@router.post("/users", response_model=WriteOut, tags=["users"])
def post_users(users: Annotated[list[UserIn], Body(max_length=MAX_BATCH)], platform: PlatformDep,
               services: ServicesDep) -> WriteOut:
    """Insert or update users (all or nothing), each parsed as a line of users-jsonl (other fields are
    attributes)."""
    records = parsed_records(users, UserIn.to_record)
    return WriteOut(**asdict(services.data.upsert_users(platform, [r for r in records
                                                                   if isinstance(r, UserRecord)])))


@router.get("/users/{user_id}", response_model=UserOut, tags=["users"])
def get_user(user_id: UserId, platform: PlatformDep, services: ServicesDep) -> UserOut:
    return UserOut(**asdict(services.data.get_user(platform, user_id)))


@router.post("/events", response_model=WriteOut, tags=["events"])
def post_events(events: Annotated[list[EventIn], Body(max_length=MAX_BATCH)], platform: PlatformDep,
                services: ServicesDep, request: Request) -> WriteOut:
    """Store events through the ingest pipeline (all or nothing); the users' next lists change at once.
    Each event is parsed as a line of events-jsonl (event_type or type, synonyms, any case; timestamp in
    unix seconds or ISO-8601, the time of arrival when absent)."""
    now = time.time()
    records = parsed_records(events, lambda e, i: e.to_record(now, i))
    result = services.data.add_events(platform, [r for r in records if isinstance(r, EventRecord)])
    request.app.state.metrics.events.labels(platform).inc(result.stored.events)
    return WriteOut(**asdict(result))
