"""Platforms, items, users and events."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Body, Path, Request
from fastapi.responses import Response

from shoprec.api.auth import AdminDep, PlatformDep, ServicesDep
from shoprec.api.errors import responses
from shoprec.api.idempotency import IdempotencyKeyDep, idempotent
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
              services: ServicesDep, request: Request, idempotency_key: IdempotencyKeyDep = None) -> Response:
    """Insert or update items (all or nothing). Each item is parsed as a line of items-jsonl: a category
    path or list, available as true/false/yes/no/1/0, other fields as attributes. With an Idempotency-Key, a
    retry gets the first answer."""

    def work(now: float) -> WriteOut:
        records = parsed_records(items, ItemIn.to_record)
        return WriteOut(**asdict(services.data.upsert_items(platform, [r for r in records
                                                                       if isinstance(r, ItemRecord)])))

    return idempotent(request, services, platform, idempotency_key, [i.model_dump(mode="json") for i in items],
                      work)


@router.get("/items/{item_id}", response_model=ItemOut, tags=["items"])
def get_item(item_id: ItemId, platform: PlatformDep, services: ServicesDep) -> ItemOut:
    return ItemOut(**asdict(services.data.get_item(platform, item_id)))


@router.delete("/items/{item_id}", status_code=204, tags=["items"])
def delete_item(item_id: ItemId, platform: PlatformDep, services: ServicesDep) -> None:
    """Delete an item: it is never recommended again (a later PUT brings it back)."""
    services.data.delete_item(platform, item_id)


@router.post("/users", response_model=WriteOut, tags=["users"])
def post_users(users: Annotated[list[UserIn], Body(max_length=MAX_BATCH)], platform: PlatformDep,
               services: ServicesDep, request: Request, idempotency_key: IdempotencyKeyDep = None) -> Response:
    """Insert or update users (all or nothing), each parsed as a line of users-jsonl (other fields are
    attributes). With an Idempotency-Key, a retry gets the first answer."""

    def work(now: float) -> WriteOut:
        records = parsed_records(users, UserIn.to_record)
        return WriteOut(**asdict(services.data.upsert_users(platform, [r for r in records
                                                                       if isinstance(r, UserRecord)])))

    return idempotent(request, services, platform, idempotency_key, [u.model_dump(mode="json") for u in users],
                      work)


@router.get("/users/{user_id}", response_model=UserOut, tags=["users"])
def get_user(user_id: UserId, platform: PlatformDep, services: ServicesDep) -> UserOut:
    return UserOut(**asdict(services.data.get_user(platform, user_id)))


@router.post("/events", response_model=WriteOut, tags=["events"])
def post_events(events: Annotated[list[EventIn], Body(max_length=MAX_BATCH)], platform: PlatformDep,
                services: ServicesDep, request: Request, idempotency_key: IdempotencyKeyDep = None) -> Response:
    """Store events through the ingest pipeline (all or nothing); the users' next lists change at once.
    Each event is parsed as a line of events-jsonl (event_type or type, synonyms, any case; timestamp in
    unix seconds or ISO-8601, the time of arrival when absent).

    Retries never store an event twice: an event whose `event_id` is already stored is counted in `duplicates`;
    with an Idempotency-Key a retry gets the first answer (events without a timestamp keep the first arrival time)."""

    def work(now: float) -> WriteOut:
        records = parsed_records(events, lambda e, i: e.to_record(now, i))
        result = services.data.add_events(platform, [r for r in records if isinstance(r, EventRecord)])
        request.app.state.metrics.events.labels(platform).inc(result.stored.events)
        return WriteOut(**asdict(result))

    return idempotent(request, services, platform, idempotency_key, [e.model_dump(mode="json") for e in events],
                      work)
