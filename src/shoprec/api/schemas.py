"""Request and response bodies of the REST API (pydantic), separate from the database tables.

Bodies are strict: unknown fields, wrong types (a number for an id, a string for a price), unknown
event types and over-long ids are refused with 422 naming the field and the record index.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shoprec.data.records import EventRecord, Identity, ItemRecord, UserRecord
from shoprec.storage.tables import MAX_CURRENCY_LENGTH, MAX_EVENT_ID_LENGTH, MAX_ID_LENGTH, MAX_PLATFORM_LENGTH
from shoprec.types import EventType

MAX_TEXT = 100_000
MAX_BATCH = 10_000  # records per request (413 above)
Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]
Text = Annotated[str, Field(max_length=MAX_TEXT)]
Type = Annotated[EventType, Field(strict=False)]  # JSON strings -> the enum (unknown names refused)
FeedbackType = Literal["impression", "click", "like", "dislike", "purchase"]


class Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)


# ------------------------------------------------------------------------------ inputs
class ItemIn(Strict):
    item_id: Id
    title: Text = ""
    description: Text = ""
    category: Text = ""
    brand: Text = ""
    price: float | None = None
    currency: Annotated[str, Field(max_length=MAX_CURRENCY_LENGTH)] | None = None
    available: bool = True
    attributes: dict[str, Any] = Field(default_factory=dict)

    def to_record(self) -> ItemRecord:
        return ItemRecord(**self.model_dump())


class IdentityIn(Strict):
    """The person behind a user, for linking platforms: only a keyed hash of it is stored."""

    type: Literal["email", "phone", "loyalty"]
    value: Annotated[str, Field(min_length=1, max_length=320)]


class UserIn(Strict):
    user_id: Id
    attributes: dict[str, Any] = Field(default_factory=dict)
    identity: IdentityIn | None = None

    def to_record(self) -> UserRecord:
        identity = None if self.identity is None else Identity(self.identity.type, self.identity.value)
        return UserRecord(user_id=self.user_id, attributes=self.attributes, identity=identity)


class EventIn(Strict):
    user_id: Id
    item_id: Id
    type: Type
    timestamp: float | None = None  # unix seconds; the time of arrival when absent
    value: float | None = None
    session_id: Id | None = None
    context: dict[str, Any] | None = None
    # the client's id of this event (printable): an event whose event_id is stored is a duplicate, not stored again
    event_id: Annotated[str, Field(max_length=MAX_EVENT_ID_LENGTH)] | None = None

    def to_record(self, now: float) -> EventRecord:
        return EventRecord(user_id=self.user_id, item_id=self.item_id, event_type=self.type,
                           timestamp=now if self.timestamp is None else self.timestamp, value=self.value,
                           session_id=self.session_id, context=self.context, event_id=self.event_id)


class PlatformIn(Strict):
    name: Annotated[str, Field(min_length=1, max_length=MAX_PLATFORM_LENGTH)]


class SessionEvent(Strict):
    item_id: Id
    type: Type = EventType.VIEW


class SessionIn(Strict):
    history: Annotated[list[SessionEvent], Field(max_length=1000)]
    k: Annotated[int, Field(ge=1, le=100)] = 10
    category: Text | None = None
    min_price: float | None = None
    max_price: float | None = None
    exclude: Annotated[list[Id], Field(max_length=1000)] = Field(default_factory=list)


class FeedbackIn(Strict):
    recommendation_id: Annotated[str, Field(min_length=1, max_length=64)]
    item_id: Id
    type: FeedbackType


class TrainIn(Strict):
    model: Annotated[str, Field(min_length=1, max_length=64)]
    params: dict[str, Any] = Field(default_factory=dict)
    activate: bool = False


# ------------------------------------------------------------------------------ outputs
class PlatformOut(BaseModel):
    platform: str
    api_key: str


class WriteOut(BaseModel):
    received: int
    accepted: int
    duplicates: int
    stored: dict[str, int]


class ItemOut(BaseModel):
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


class EventOut(BaseModel):
    item_id: str
    type: str
    timestamp: float


class UserOut(BaseModel):
    user_id: str
    attributes: dict[str, Any]
    created_at: float
    updated_at: float
    recent_events: list[EventOut]


class RecommendedItem(BaseModel):
    item_id: str
    score: float
    reason: dict[str, Any]


class RecommendationOut(BaseModel):
    recommendation_id: str
    model: str | None
    offset: int
    items: list[RecommendedItem]
    experiment: str | None = None  # the running experiment that chose this list (user lists only)
    variant: str | None = None


class FeedbackOut(BaseModel):
    recommendation_id: str
    item_id: str
    type: str
    event_stored: bool


class ModelOut(BaseModel):
    model_id: str
    name: str
    config: dict[str, Any] | None
    metrics: dict[str, Any] | None
    active: bool
    created_at: float
    activated_at: float | None


class JobOut(BaseModel):
    """A durable job: status queued | running | succeeded | failed | cancelled; attempts = times a worker
    claimed it; worker = the worker running it (or that ran it last); progress = its newest progress line."""

    job_id: str
    kind: str
    status: str
    params: dict[str, Any] | None
    result: dict[str, Any] | None
    error: str | None
    created_at: float
    updated_at: float
    attempts: int
    worker: str | None
    started_at: float | None
    finished_at: float | None
    cancel_requested: bool
    progress: str | None
    actor: str | None


class ErrorDetail(BaseModel):
    index: int | None
    field: str | None
    reason: str
    message: str


class ErrorOut(BaseModel):
    error: str
    message: str
    errors: list[ErrorDetail] = Field(default_factory=list)


# ------------------------------------------------------------------------------ explanations and experiments
class ExplanationOut(BaseModel):
    user_id: str
    item_id: str
    model: str | None
    score: float
    reason: dict[str, Any]
    experiment: str | None = None
    variant: str | None = None


class VariantIn(Strict):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    model_id: Annotated[str, Field(min_length=1, max_length=32)]
    share: Annotated[float, Field(gt=0, le=1)]


class ExperimentIn(Strict):
    name: Annotated[str, Field(min_length=1, max_length=128)]
    variants: Annotated[list[VariantIn], Field(min_length=2, max_length=10)]
    start: float | None = None  # unix seconds; now when absent
    end: float | None = None  # unix seconds; runs until stopped when absent


class VariantOut(BaseModel):
    name: str
    model_id: str
    share: float


class ExperimentOut(BaseModel):
    experiment_id: str
    name: str
    variants: list[VariantOut]
    start: float
    end: float | None
    stopped_at: float | None
    created_at: float
    status: str


class ExperimentResultsOut(BaseModel):
    experiment_id: str
    name: str
    status: str
    start: float
    end: float | None
    stopped_at: float | None
    control: str
    attribution_window_s: float
    variants: list[dict[str, Any]]


# ------------------------------------------------------------------------------ retraining
class RetrainPolicyIn(Strict):
    """A platform's own retraining policy (PUT replaces it): both triggers null turns retraining off for the
    platform; null margin / metric / holdout_fraction / action take the deployment default."""

    every_hours: float | None = None
    after_events: int | None = None
    margin: float | None = None
    metric: Annotated[str, Field(max_length=32)] | None = None
    holdout_fraction: float | None = None
    action: Literal["promote", "experiment"] | None = None
    model: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    params: dict[str, Any] | None = None


class RetrainPolicyOut(BaseModel):
    every_hours: float | None
    after_events: int | None
    margin: float
    metric: str
    holdout_fraction: float
    action: str
    model: str | None
    params: dict[str, Any] | None
    source: str  # "platform" (its own) or "default" (the deployment's [retraining] settings)
    enabled: bool


class DecisionOut(BaseModel):
    decision_id: int
    platform: str
    candidate_model_id: str | None
    active_model_id: str | None
    decision: str  # promote | keep | experiment | failed
    reason: str
    metric: str
    margin: float
    candidate_metrics: dict[str, Any] | None
    active_metrics: dict[str, Any] | None
    holdout: dict[str, Any] | None
    experiment_id: str | None
    cause: str | None
    created_at: float


class RetrainRunOut(BaseModel):
    platform: str
    queued: bool
    job: dict[str, Any] | None  # the queued job as the job queue describes it
