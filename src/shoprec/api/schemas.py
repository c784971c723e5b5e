"""Request and response bodies of the REST API (pydantic), separate from the database tables.

Items, users and events are the records of the import files (docs/data-formats.md): these models declare
their shape for OpenAPI and refuse what no parse could accept (a wrong JSON type, an over-long id, an
unknown event type, NUL characters); each record is then parsed by the SAME function as a file's line
(`to_record` -> shoprec.datasets.events.event_from_row / item_from_row, shoprec.datasets.users.user_from_row),
so names (`event_type`, or `type`), event type synonyms and case, timestamp forms (unix seconds or ISO-8601),
categories (a "A > B" path or a list), `available` ("yes", 1, true, ...) and extra fields (an item's or a
user's attributes, an event's context) are handled the same on both paths. A record the parse refuses is a
422 naming its index and field.

The other bodies are strict: unknown fields and wrong types are refused with 422 naming the field.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from typing_extensions import TypeAliasType

from shoprec.api.errors import ErrorDetail, ErrorOut
from shoprec.data.records import Record, Source
from shoprec.data.vectors import FLOAT32_MAX, MAX_VECTOR_DIM, MAX_VECTOR_NAME_LENGTH, MAX_VECTOR_NAMES, VECTOR_NAME
from shoprec.datasets._common import EVENT_ALIASES
from shoprec.datasets.events import event_from_row, item_from_row
from shoprec.datasets.users import user_from_row
from shoprec.models import MODEL_NAMES
from shoprec.rules.expr import MAX_EXPRESSION_LENGTH
from shoprec.rules.rules import MAX_BOOSTS, MAX_PINS
from shoprec.service.retraining import MAX_AFTER_EVENTS
from shoprec.storage.tables import MAX_CURRENCY_LENGTH, MAX_EVENT_ID_LENGTH, MAX_ID_LENGTH, MAX_PLATFORM_LENGTH
from shoprec.types import EventType

__all__ = ["ErrorDetail", "ErrorOut"]  # the error body is defined in shoprec.api.errors

MAX_TEXT = 100_000
MAX_BATCH = 10_000  # records per request (413 above)
STORABLE = r"^[^\x00]*$"  # no NUL character (no database here stores one)
Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=r"^[^\x00]*[^\x00\s][^\x00]*$")]
Text = Annotated[str, Field(max_length=MAX_TEXT, pattern=STORABLE)]
Type = Annotated[EventType, Field(strict=False)]  # JSON strings -> the enum (unknown names refused)
FeedbackType = Literal["impression", "click", "like", "dislike", "purchase"]
EVENT_TYPE_NAMES = tuple(t.value for t in EventType) + tuple(sorted(EVENT_ALIASES))
EventTypeName = Annotated[str, Field(
    pattern="(?i)^\\s*(" + "|".join(re.escape(n) for n in EVENT_TYPE_NAMES) + ")\\s*$",
    description="an event type, case-insensitive: " + ", ".join(t.value for t in EventType)
                + "; synonyms: " + ", ".join(sorted(EVENT_ALIASES)))]
Timestamp = Annotated[Annotated[float, Field(allow_inf_nan=False)] | Annotated[datetime, Field(strict=False)], Field(
    description="unix seconds, or an ISO-8601 date-time (without an offset: UTC)")]
Number = Annotated[float, Field(allow_inf_nan=False)]
_INTEGRAL = BeforeValidator(lambda v: int(v) if type(v) is float and v.is_integer() else v)
"""42.0 as 42: JSON (and JSON Schema) make no difference between them; pydantic's strict int does."""
IntId = Annotated[int, Field(ge=0, lt=10**18), _INTEGRAL]  # an id sent as a number is stored as "42"
Key = Annotated[str, Field(max_length=1000, pattern=STORABLE)]
JsonValue = TypeAliasType(  # any JSON a database here can store: no NUL in a string or a key, finite numbers
    "JsonValue", "bool | int | Number | Text | list[JsonValue] | dict[Key, JsonValue] | None")
JsonObject = dict[Key, JsonValue]
VectorName = Annotated[str, Field(pattern=VECTOR_NAME.pattern, max_length=MAX_VECTOR_NAME_LENGTH)]
Vector = Annotated[list[Annotated[float, Field(allow_inf_nan=False, ge=-FLOAT32_MAX, le=FLOAT32_MAX)]],
                   Field(min_length=1, max_length=MAX_VECTOR_DIM)]
NamedVectors = Annotated[dict[VectorName, Vector | None], Field(max_length=MAX_VECTOR_NAMES)]
NumberText = Annotated[str, Field(max_length=32, pattern=r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d{1,2})?\s*$",
                                  description="a number written as a string, as in a CSV file")]


class Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)


class RecordIn(BaseModel):
    """A record shared with the import files: extra fields are allowed (an item's or user's attributes, an
    event's context), and `to_record` parses it as a file's line is parsed."""

    model_config = ConfigDict(strict=True, extra="allow", allow_inf_nan=False,
                              json_schema_extra={"propertyNames": {"maxLength": 1000, "pattern": STORABLE}})
    __pydantic_extra__: dict[Key, JsonValue] = Field(init=False)

    def row(self) -> dict[str, Any]:
        """The fields that were sent, as a file's row (keys lower-cased, as the JSONL reader does)."""
        return {str(k).lower(): v for k, v in self.model_dump(exclude_unset=True).items()}


# ------------------------------------------------------------------------------ inputs
class ItemIn(RecordIn):
    """An item, as a line of items-jsonl: other fields become attributes (merged with `attributes`)."""

    item_id: Id | IntId
    title: Text = ""
    description: Text = ""
    category: Text | Annotated[list[Text], Field(max_length=20)] = Field(
        "", description='a path "Women > Tops" (">" is the one separator) or a list ["Women", "Tops"]')
    brand: Text = ""
    price: Number | NumberText | None = None
    currency: Annotated[str, Field(max_length=MAX_CURRENCY_LENGTH, pattern=STORABLE)] | None = None
    available: bool | Literal[0, 1] | Annotated[str, Field(pattern=r"(?i)^\s*(true|false|yes|no|y|n|t|f|1|0)?\s*$")] \
        | None = Field(True, description="true/false; also 1/0, or yes/no, y/n, t/f, 1/0 as strings (any case)")
    attributes: JsonObject = Field(default_factory=dict)
    vectors: NamedVectors | None = Field(None, description=(
        'the shop\'s own named item vectors, e.g. {"image": [0.12, ...], "llm": [...]}: each name\'s dimension '
        "is fixed per platform by its first vector; null removes the item's vector of that name"))

    def to_record(self, index: int = 0) -> Record:
        return item_from_row(self.row(), Source("api", index))


# a character that is neither "@" nor a space nor a control character (in Python's sense and JSON Schema's)
_VISIBLE = ("[!-?A-~\u00a1-\u167f\u1681-\u1fff\u200b-\u2027\u202a-\u202e\u2030-\u205e\u2060-\u2fff"
            "\u3001-\ud7ff\ue000-\ufefe\uff00-\uffff]")


class EmailIdentity(Strict):
    """The person behind a user, for linking platforms: only a keyed hash of it is stored."""

    type: Literal["email"]
    value: Annotated[str, Field(min_length=3, max_length=320, pattern=f"^[ \t\n\r]*{_VISIBLE}+@{_VISIBLE}+[ \t\n\r]*$")]


class PhoneIdentity(Strict):
    type: Literal["phone"]
    value: Annotated[str, Field(max_length=320, pattern=r"^[ +()./-]*[1-9][ ()./-]*([0-9][ ()./-]*){5,14}$",
                                description="6..15 digits (not starting with 0), optionally + ( ) - . / and spaces")]


class LoyaltyIdentity(Strict):
    type: Literal["loyalty"]
    value: Annotated[str, Field(min_length=1, max_length=320, pattern=r"^[^\x00]*[^\x00\s][^\x00]*$")]


IdentityIn = Annotated[EmailIdentity | PhoneIdentity | LoyaltyIdentity, Field(discriminator="type")]


class UserIn(RecordIn):
    """A user, as a line of users-jsonl: other fields become attributes (merged with `attributes`)."""

    user_id: Id | IntId
    attributes: JsonObject = Field(default_factory=dict)
    identity: IdentityIn | None = None

    def to_record(self, index: int = 0) -> Record:
        return user_from_row(self.row(), Source("api", index))


class EventIn(RecordIn):
    """An event, as a line of events-jsonl. `event_type` (canonical) or `type`; timestamp: the time of
    arrival when absent; other fields (and a `context` object) become the event's context."""

    model_config = ConfigDict(json_schema_extra={"anyOf": [{"required": ["event_type"]}, {"required": ["type"]}],
                                                 "propertyNames": {"maxLength": 1000, "pattern": STORABLE}})

    user_id: Id | IntId
    item_id: Id | IntId
    event_type: EventTypeName = None  # type: ignore[assignment]  # (not null when sent)
    type: EventTypeName = Field(None, description="the same as event_type (one of the two is required)")  # type: ignore[assignment]
    timestamp: Timestamp | None = None
    value: Number | NumberText | None = None
    session_id: Id | None = None
    context: JsonObject | None = None
    text: Text | None = None
    # the client's id of this event (printable): an event whose event_id is stored is a duplicate, not stored again
    event_id: Annotated[str, Field(max_length=MAX_EVENT_ID_LENGTH)] | None = None

    def to_record(self, now: float, index: int = 0) -> Record:
        return event_from_row(self.row(), Source("api", index), now=now)


class PlatformIn(Strict):
    name: Annotated[str, Field(min_length=1, max_length=MAX_PLATFORM_LENGTH)]


class SessionEvent(Strict):
    item_id: Id
    type: Type = EventType.VIEW


class SessionIn(Strict):
    history: Annotated[list[SessionEvent], Field(max_length=1000)]
    k: Annotated[int, Field(ge=1, le=100), _INTEGRAL] = 10
    category: Text | None = None
    min_price: float | None = None
    max_price: float | None = None
    exclude: Annotated[list[Id], Field(max_length=1000)] = Field(default_factory=list)
    filter: Annotated[str, Field(max_length=MAX_EXPRESSION_LENGTH)] | None = None
    boost: Annotated[list[Annotated[str, Field(max_length=MAX_EXPRESSION_LENGTH)]], Field(max_length=MAX_BOOSTS)
                     ] = Field(default_factory=list)
    pin: Annotated[list[Annotated[str, Field(max_length=MAX_ID_LENGTH + 10)]], Field(max_length=MAX_PINS)
                   ] = Field(default_factory=list)
    max_per_category: Annotated[int, Field(ge=1, le=1000), _INTEGRAL] | None = None
    max_per_brand: Annotated[int, Field(ge=1, le=1000), _INTEGRAL] | None = None
    diversity: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | None = None


class RulesIn(Strict):
    """A platform's saved default rules (PUT /v1/rules): the same rules as a request's, in the same syntax
    (docs/serving.md, Business rules). `pin`: "ITEM_ID:POSITION" strings."""

    filter: Annotated[str, Field(max_length=MAX_EXPRESSION_LENGTH)] | None = None
    boost: Annotated[list[Annotated[str, Field(max_length=MAX_EXPRESSION_LENGTH)]], Field(max_length=MAX_BOOSTS)
                     ] = Field(default_factory=list)
    pin: Annotated[list[Annotated[str, Field(max_length=MAX_ID_LENGTH + 10)]], Field(max_length=MAX_PINS)
                   ] = Field(default_factory=list)
    max_per_category: Annotated[int, Field(ge=1, le=1000), _INTEGRAL] | None = None
    max_per_brand: Annotated[int, Field(ge=1, le=1000), _INTEGRAL] | None = None
    diversity: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | None = None


class CartIn(Strict):
    """A cart (POST /v1/lists/frequently-bought-together): its item ids, in any order (repeats count once)."""

    item_ids: Annotated[list[Id], Field(min_length=1, max_length=100)]
    k: Annotated[int, Field(ge=1, le=100), _INTEGRAL] = 10


class FeedbackIn(Strict):
    recommendation_id: Annotated[str, Field(min_length=1, max_length=64)]
    item_id: Id
    type: FeedbackType


ModelName = Literal[MODEL_NAMES]  # type: ignore[valid-type]


class TrainIn(Strict):
    model: ModelName
    params: JsonObject = Field(default_factory=dict)
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
    vectors: dict[str, list[float]] = Field(default_factory=dict, description="the item's named vectors")


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
    reason: dict[str, Any] = Field(description=(
        "why the item is here (shoprec.explain.Reason.to_json): type, source, level and, as they apply, model_id, "
        "candidates, because_of, weights, category, item_id, text, and rules (the business rules that moved the "
        "item: boost, bury, pin, max_per_category, max_per_brand, diversity); docs/serving.md, Explanations"))


class RecommendationOut(BaseModel):
    recommendation_id: str
    model: str | None
    offset: int
    items: list[RecommendedItem]
    experiment: str | None = None  # the running experiment that chose this list (user lists only)
    variant: str | None = None


class RulesOut(BaseModel):
    """A platform's saved default rules (empty lists and nulls when none; updated_at null: never saved)."""

    platform: str
    filter: str | None
    boost: list[str]
    pin: list[str]
    max_per_category: int | None
    max_per_brand: int | None
    diversity: float | None
    updated_at: float | None


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


# storable (no NUL) with a character that str.strip() keeps (written as 4-digit \u escapes, which Python's and
# JSON Schema's regexes read alike): an experiment name is trimmed, so a name of spaces only is refused
_SPACES = "".join(f"\\u{ord(c):04x}" for c in map(chr, range(0x10000)) if c.isspace())
_NOT_SPACE = f"^[^\\x00]*[^\\x00{_SPACES}][^\\x00]*$"


class ExperimentIn(Strict):
    name: Annotated[str, Field(min_length=1, max_length=128, pattern=_NOT_SPACE)]
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
METRIC_PATTERN = r"(?i)^[ \t\n\r]*((hr|recall|ndcg|map|precision)@[1-9][0-9]{0,2}|mrr)[ \t\n\r]*$"


class RetrainPolicyIn(Strict):
    """A platform's own retraining policy (PUT replaces it): both triggers null turns retraining off for the
    platform; null margin / metric / holdout_fraction / action take the deployment default."""

    every_hours: Annotated[float, Field(ge=0.001)] | None = None
    after_events: Annotated[int, Field(ge=1, le=MAX_AFTER_EVENTS), _INTEGRAL] | None = None
    margin: Annotated[float, Field(ge=0, lt=1)] | None = None
    metric: Annotated[str, Field(max_length=32, pattern=METRIC_PATTERN)] | None = None
    holdout_fraction: Annotated[float, Field(gt=0, lt=1)] | None = None
    action: Literal["promote", "experiment"] | None = None
    model: ModelName | None = None
    params: JsonObject | None = None


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
