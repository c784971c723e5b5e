"""The API's request and answer shapes, GENERATED from clients/openapi.json by datamodel-code-generator:
do not edit; regenerate with `python -m shoprec.api.openapi_dump`."""
# ruff: noqa
# mypy: ignore-errors

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import Annotated, Any, Dict, Literal, Optional, Union

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    StringConstraints,
)


class Action(StrEnum):
    promote = "promote"
    experiment = "experiment"


class AfterEvents(RootModel[int]):
    root: Annotated[int, Field(ge=1, le=1000000000000, title="After Events")]


class AuditOut(BaseModel):
    action: Annotated[str, Field(title="Action")]
    actor: Annotated[str, Field(title="Actor")]
    subject: Annotated[str | None, Field(title="Subject")]
    details: Annotated[dict[str, Any] | None, Field(title="Details")]
    created_at: Annotated[float, Field(title="Created At")]


class Available(IntEnum):
    integer_0 = 0
    integer_1 = 1


class Available1(RootModel[str]):
    root: Annotated[
        str,
        Field(
            description="true/false; also 1/0, or yes/no, y/n, t/f, 1/0 as strings (any case)",
            pattern="(?i)^\\s*(true|false|yes|no|y|n|t|f|1|0)?\\s*$",
            title="Available",
        ),
    ] = True


class BoostItem(RootModel[str]):
    root: Annotated[str, Field(max_length=2000)]


class CartIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    item_ids: Annotated[
        list[ItemId], Field(max_length=100, min_length=1, title="Item Ids")
    ]
    k: Annotated[int | None, Field(ge=1, le=100, title="K")] = 10


class Category(RootModel[str]):
    root: Annotated[
        str,
        Field(
            description='a path "Women > Tops" (">" is the one separator) or a list ["Women", "Tops"]',
            max_length=100000,
            title="Category",
        ),
    ] = ""


class Category1Item(RootModel[str]):
    root: Annotated[str, Field(max_length=100000)]


class Category1(RootModel[list[Category1Item]]):
    root: Annotated[
        list[Category1Item],
        Field(
            description='a path "Women > Tops" (">" is the one separator) or a list ["Women", "Tops"]',
            max_length=20,
            title="Category",
            validate_default=True,
        ),
    ] = ""


class Category2(RootModel[str]):
    root: Annotated[str, Field(max_length=100000, title="Category")]


class Currency(RootModel[str]):
    root: Annotated[str, Field(max_length=8, title="Currency")]


class DecisionOut(BaseModel):
    decision_id: Annotated[int, Field(title="Decision Id")]
    platform: Annotated[str, Field(title="Platform")]
    candidate_model_id: Annotated[str | None, Field(title="Candidate Model Id")]
    active_model_id: Annotated[str | None, Field(title="Active Model Id")]
    decision: Annotated[str, Field(title="Decision")]
    reason: Annotated[str, Field(title="Reason")]
    metric: Annotated[str, Field(title="Metric")]
    margin: Annotated[float, Field(title="Margin")]
    candidate_metrics: Annotated[
        dict[str, Any] | None, Field(title="Candidate Metrics")
    ]
    active_metrics: Annotated[dict[str, Any] | None, Field(title="Active Metrics")]
    holdout: Annotated[dict[str, Any] | None, Field(title="Holdout")]
    experiment_id: Annotated[str | None, Field(title="Experiment Id")]
    cause: Annotated[str | None, Field(title="Cause")]
    created_at: Annotated[float, Field(title="Created At")]


class Diversity(RootModel[float]):
    root: Annotated[float, Field(ge=0.0, le=1.0, title="Diversity")]


class EmailIdentity(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    type: Annotated[Literal["email"], Field(title="Type")]
    value: Annotated[
        str,
        Field(
            max_length=320,
            min_length=3,
            pattern="^[ \t\n\r]*[!-?A-~¡-ᙿᚁ-\u1fff\u200b-‧\u202a-\u202e‰-⁞\u2060-⿿、-\ud7ff\ue000-\ufefe\uff00-\uffff]+@[!-?A-~¡-ᙿᚁ-\u1fff\u200b-‧\u202a-\u202e‰-⁞\u2060-⿿、-\ud7ff\ue000-\ufefe\uff00-\uffff]+[ \t\n\r]*$",
            title="Value",
        ),
    ]


class ErrorDetail(BaseModel):
    index: Annotated[
        int | None,
        Field(
            description="the record of a batch (0-based); null when not about one record",
            title="Index",
        ),
    ]
    field: Annotated[
        str | None,
        Field(
            description="the field, query parameter or path parameter at fault",
            title="Field",
        ),
    ]
    reason: Annotated[
        str,
        Field(
            description="a snake_case code, e.g. missing, unknown_parameter, bad_timestamp",
            title="Reason",
        ),
    ]
    message: Annotated[str, Field(title="Message")]
    position: Annotated[
        int | None,
        Field(
            description="bad_expression only: the 0-based character offset in the expression where it goes wrong",
            title="Position",
        ),
    ] = None


class ErrorOut(BaseModel):
    error: Annotated[
        str,
        Field(
            description="one of: malformed_json, unauthorized, forbidden, not_found, method_not_allowed, conflict, too_large, unsupported_media_type, invalid_request, bad_expression, rate_limited, queue_full, internal_error, storage_unavailable",
            title="Error",
        ),
    ]
    message: Annotated[str, Field(title="Message")]
    errors: Annotated[list[ErrorDetail] | None, Field(title="Errors")] = None


class EventId(RootModel[str]):
    root: Annotated[str, Field(max_length=128, title="Event Id")]


class EventIn1(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    __annotations__ = {
        "__pydantic_extra__": Dict[
            Annotated[str, StringConstraints(max_length=1000)], Optional["JsonValue"]
        ],
    }
    user_id: Annotated[UserId | UserId1, Field(title="User Id")]
    item_id: Annotated[ItemId1 | ItemId2, Field(title="Item Id")]
    event_type: Annotated[
        str,
        Field(
            description="an event type, case-insensitive: view, click, cart, remove_from_cart, purchase, return, rating, review, like, dislike, impression; synonyms: add_to_cart, addtocart, buy, carts, clicks, detail_view, impressions, order, orders, page_view, pageview, ratings, remove_from_basket, returns, reviews, transaction, views",
            pattern="(?i)^\\s*(view|click|cart|remove_from_cart|purchase|return|rating|review|like|dislike|impression|add_to_cart|addtocart|buy|carts|clicks|detail_view|impressions|order|orders|page_view|pageview|ratings|remove_from_basket|returns|reviews|transaction|views)\\s*$",
            title="Event Type",
        ),
    ]
    type: Annotated[
        str | None,
        Field(
            description="the same as event_type (one of the two is required)",
            pattern="(?i)^\\s*(view|click|cart|remove_from_cart|purchase|return|rating|review|like|dislike|impression|add_to_cart|addtocart|buy|carts|clicks|detail_view|impressions|order|orders|page_view|pageview|ratings|remove_from_basket|returns|reviews|transaction|views)\\s*$",
            title="Type",
        ),
    ] = None
    timestamp: Annotated[float | AwareDatetime | None, Field(title="Timestamp")] = None
    value: Annotated[float | Value | None, Field(title="Value")] = None
    session_id: Annotated[SessionId | None, Field(title="Session Id")] = None
    context: Annotated[
        dict[Annotated[str, StringConstraints(max_length=1000)], JsonValue | None] | None,
        Field(title="Context"),
    ] = None
    text: Annotated[Text | None, Field(title="Text")] = None
    event_id: Annotated[EventId | None, Field(title="Event Id")] = None


class EventIn2(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    __annotations__ = {
        "__pydantic_extra__": Dict[
            Annotated[str, StringConstraints(max_length=1000)], Optional["JsonValue"]
        ],
    }
    user_id: Annotated[UserId2 | UserId3, Field(title="User Id")]
    item_id: Annotated[ItemId3 | ItemId4, Field(title="Item Id")]
    event_type: Annotated[
        str | None,
        Field(
            description="an event type, case-insensitive: view, click, cart, remove_from_cart, purchase, return, rating, review, like, dislike, impression; synonyms: add_to_cart, addtocart, buy, carts, clicks, detail_view, impressions, order, orders, page_view, pageview, ratings, remove_from_basket, returns, reviews, transaction, views",
            pattern="(?i)^\\s*(view|click|cart|remove_from_cart|purchase|return|rating|review|like|dislike|impression|add_to_cart|addtocart|buy|carts|clicks|detail_view|impressions|order|orders|page_view|pageview|ratings|remove_from_basket|returns|reviews|transaction|views)\\s*$",
            title="Event Type",
        ),
    ] = None
    type: Annotated[
        str,
        Field(
            description="the same as event_type (one of the two is required)",
            pattern="(?i)^\\s*(view|click|cart|remove_from_cart|purchase|return|rating|review|like|dislike|impression|add_to_cart|addtocart|buy|carts|clicks|detail_view|impressions|order|orders|page_view|pageview|ratings|remove_from_basket|returns|reviews|transaction|views)\\s*$",
            title="Type",
        ),
    ]
    timestamp: Annotated[float | AwareDatetime | None, Field(title="Timestamp")] = None
    value: Annotated[float | Value | None, Field(title="Value")] = None
    session_id: Annotated[SessionId | None, Field(title="Session Id")] = None
    context: Annotated[
        dict[Annotated[str, StringConstraints(max_length=1000)], JsonValue | None] | None,
        Field(title="Context"),
    ] = None
    text: Annotated[Text | None, Field(title="Text")] = None
    event_id: Annotated[EventId | None, Field(title="Event Id")] = None


class EventIn(RootModel[EventIn1 | EventIn2]):
    root: Annotated[
        EventIn1 | EventIn2,
        Field(
            description="An event, as a line of events-jsonl. `event_type` (canonical) or `type`; timestamp: the time of\narrival when absent; other fields (and a `context` object) become the event's context.",
            title="EventIn",
        ),
    ]


class EventOut(BaseModel):
    item_id: Annotated[str, Field(title="Item Id")]
    type: Annotated[str, Field(title="Type")]
    timestamp: Annotated[float, Field(title="Timestamp")]


class EventType(StrEnum):
    view = "view"
    click = "click"
    cart = "cart"
    remove_from_cart = "remove_from_cart"
    purchase = "purchase"
    return_ = "return"
    rating = "rating"
    review = "review"
    like = "like"
    dislike = "dislike"
    impression = "impression"


class EveryHours(RootModel[float]):
    root: Annotated[float, Field(ge=0.001, title="Every Hours")]


class ExcludeItem(RootModel[str]):
    root: Annotated[
        str,
        Field(max_length=256, min_length=1, pattern="^[^\\x00]*[^\\x00\\s][^\\x00]*$"),
    ]


class ExperimentIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    name: Annotated[
        str,
        Field(
            max_length=128,
            min_length=1,
            pattern="^[^\\x00]*[^\\x00\\u0009\\u000a\\u000b\\u000c\\u000d\\u001c\\u001d\\u001e\\u001f\\u0020\\u0085\\u00a0\\u1680\\u2000\\u2001\\u2002\\u2003\\u2004\\u2005\\u2006\\u2007\\u2008\\u2009\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\x00]*$",
            title="Name",
        ),
    ]
    variants: Annotated[
        list[VariantIn], Field(max_length=10, min_length=2, title="Variants")
    ]
    start: Annotated[float | None, Field(title="Start")] = None
    end: Annotated[float | None, Field(title="End")] = None


class ExperimentOut(BaseModel):
    experiment_id: Annotated[str, Field(title="Experiment Id")]
    name: Annotated[str, Field(title="Name")]
    variants: Annotated[list[VariantOut], Field(title="Variants")]
    start: Annotated[float, Field(title="Start")]
    end: Annotated[float | None, Field(title="End")]
    stopped_at: Annotated[float | None, Field(title="Stopped At")]
    created_at: Annotated[float, Field(title="Created At")]
    status: Annotated[str, Field(title="Status")]


class ExperimentResultsOut(BaseModel):
    experiment_id: Annotated[str, Field(title="Experiment Id")]
    name: Annotated[str, Field(title="Name")]
    status: Annotated[str, Field(title="Status")]
    start: Annotated[float, Field(title="Start")]
    end: Annotated[float | None, Field(title="End")]
    stopped_at: Annotated[float | None, Field(title="Stopped At")]
    control: Annotated[str, Field(title="Control")]
    attribution_window_s: Annotated[float, Field(title="Attribution Window S")]
    variants: Annotated[list[dict[str, Any]], Field(title="Variants")]


class ExplanationOut(BaseModel):
    user_id: Annotated[str, Field(title="User Id")]
    item_id: Annotated[str, Field(title="Item Id")]
    model: Annotated[str | None, Field(title="Model")]
    score: Annotated[float, Field(title="Score")]
    reason: Annotated[dict[str, Any], Field(title="Reason")]
    experiment: Annotated[str | None, Field(title="Experiment")] = None
    variant: Annotated[str | None, Field(title="Variant")] = None


class FeedbackIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    recommendation_id: Annotated[
        str, Field(max_length=64, min_length=1, title="Recommendation Id")
    ]
    item_id: Annotated[
        str,
        Field(
            max_length=256,
            min_length=1,
            pattern="^[^\\x00]*[^\\x00\\s][^\\x00]*$",
            title="Item Id",
        ),
    ]
    type: Annotated[Type, Field(title="Type")]


class FeedbackOut(BaseModel):
    recommendation_id: Annotated[str, Field(title="Recommendation Id")]
    item_id: Annotated[str, Field(title="Item Id")]
    type: Annotated[str, Field(title="Type")]
    event_stored: Annotated[bool, Field(title="Event Stored")]


class Filter(RootModel[str]):
    root: Annotated[str, Field(max_length=2000, title="Filter")]


class HTTPValidationError(BaseModel):
    detail: Annotated[list[ValidationError] | None, Field(title="Detail")] = None


class HoldoutFraction(RootModel[float]):
    root: Annotated[float, Field(gt=0.0, lt=1.0, title="Holdout Fraction")]


class ItemId(RootModel[str]):
    root: Annotated[
        str,
        Field(max_length=256, min_length=1, pattern="^[^\\x00]*[^\\x00\\s][^\\x00]*$"),
    ]


class ItemId1(RootModel[str]):
    root: Annotated[
        str,
        Field(
            max_length=256,
            min_length=1,
            pattern="^[^\\x00]*[^\\x00\\s][^\\x00]*$",
            title="Item Id",
        ),
    ]


class ItemId2(RootModel[int]):
    root: Annotated[int, Field(ge=0, lt=1000000000000000000, title="Item Id")]


class ItemId3(RootModel[str]):
    root: Annotated[
        str,
        Field(
            max_length=256,
            min_length=1,
            pattern="^[^\\x00]*[^\\x00\\s][^\\x00]*$",
            title="Item Id",
        ),
    ]


class ItemId4(RootModel[int]):
    root: Annotated[int, Field(ge=0, lt=1000000000000000000, title="Item Id")]


class ItemId5(RootModel[str]):
    root: Annotated[
        str,
        Field(
            max_length=256,
            min_length=1,
            pattern="^[^\\x00]*[^\\x00\\s][^\\x00]*$",
            title="Item Id",
        ),
    ]


class ItemId6(RootModel[int]):
    root: Annotated[int, Field(ge=0, lt=1000000000000000000, title="Item Id")]


class ItemIn(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    __annotations__ = {
        "__pydantic_extra__": Dict[
            Annotated[str, StringConstraints(max_length=1000)], Optional["JsonValue"]
        ],
    }
    item_id: Annotated[ItemId5 | ItemId6, Field(title="Item Id")]
    title: Annotated[str | None, Field(max_length=100000, title="Title")] = ""
    description: Annotated[
        str | None, Field(max_length=100000, title="Description")
    ] = ""
    category: Annotated[
        Category | Category1 | None,
        Field(
            description='a path "Women > Tops" (">" is the one separator) or a list ["Women", "Tops"]',
            title="Category",
            validate_default=True,
        ),
    ] = ""
    brand: Annotated[str | None, Field(max_length=100000, title="Brand")] = ""
    price: Annotated[float | Price | None, Field(title="Price")] = None
    currency: Annotated[Currency | None, Field(title="Currency")] = None
    available: Annotated[
        bool | Available | Available1 | None,
        Field(
            description="true/false; also 1/0, or yes/no, y/n, t/f, 1/0 as strings (any case)",
            title="Available",
            validate_default=True,
        ),
    ] = True
    attributes: Annotated[
        dict[Annotated[str, StringConstraints(max_length=1000)], JsonValue | None] | None,
        Field(title="Attributes"),
    ] = None
    vectors: Annotated[
        dict[Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$", max_length=32)], Vectors | None] | None,
        Field(
            description='the shop\'s own named item vectors, e.g. {"image": [0.12, ...], "llm": [...]}: each name\'s dimension is fixed per platform by its first vector; null removes the item\'s vector of that name',
            title="Vectors",
        ),
    ] = None


class ItemOut(BaseModel):
    item_id: Annotated[str, Field(title="Item Id")]
    title: Annotated[str, Field(title="Title")]
    description: Annotated[str, Field(title="Description")]
    category: Annotated[str, Field(title="Category")]
    brand: Annotated[str, Field(title="Brand")]
    price: Annotated[float | None, Field(title="Price")]
    currency: Annotated[str | None, Field(title="Currency")]
    available: Annotated[bool, Field(title="Available")]
    attributes: Annotated[dict[str, Any], Field(title="Attributes")]
    created_at: Annotated[float, Field(title="Created At")]
    updated_at: Annotated[float, Field(title="Updated At")]
    vectors: Annotated[
        dict[str, list[float]] | None,
        Field(description="the item's named vectors", title="Vectors"),
    ] = None


class JobOut(BaseModel):
    job_id: Annotated[str, Field(title="Job Id")]
    kind: Annotated[str, Field(title="Kind")]
    status: Annotated[str, Field(title="Status")]
    params: Annotated[dict[str, Any] | None, Field(title="Params")]
    result: Annotated[dict[str, Any] | None, Field(title="Result")]
    error: Annotated[str | None, Field(title="Error")]
    created_at: Annotated[float, Field(title="Created At")]
    updated_at: Annotated[float, Field(title="Updated At")]
    attempts: Annotated[int, Field(title="Attempts")]
    worker: Annotated[str | None, Field(title="Worker")]
    started_at: Annotated[float | None, Field(title="Started At")]
    finished_at: Annotated[float | None, Field(title="Finished At")]
    cancel_requested: Annotated[bool, Field(title="Cancel Requested")]
    progress: Annotated[str | None, Field(title="Progress")]
    actor: Annotated[str | None, Field(title="Actor")]


class JsonValue1(RootModel[str]):
    root: Annotated[str, Field(max_length=100000)]


class JsonValue(
    RootModel[Optional[Union[bool, int, float, JsonValue1, list[Optional["JsonValue"]], dict[Annotated[str, StringConstraints(max_length=1000)], Optional["JsonValue"]]]]]
):
    root: Optional[Union[bool, int, float, JsonValue1, list[Optional["JsonValue"]], dict[Annotated[str, StringConstraints(max_length=1000)], Optional["JsonValue"]]]]


class KeyIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    scopes: Annotated[
        list[Scope] | None, Field(max_length=5, min_length=1, title="Scopes")
    ] = None
    name: Annotated[Name | None, Field(title="Name")] = None


class KeyOut(BaseModel):
    key_id: Annotated[str, Field(title="Key Id")]
    name: Annotated[str | None, Field(title="Name")]
    scopes: Annotated[list[str], Field(title="Scopes")]
    created_at: Annotated[float, Field(title="Created At")]
    revoked: Annotated[bool | None, Field(title="Revoked")] = False
    revoked_at: Annotated[float | None, Field(title="Revoked At")] = None


class LoyaltyIdentity(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    type: Annotated[Literal["loyalty"], Field(title="Type")]
    value: Annotated[
        str,
        Field(
            max_length=320,
            min_length=1,
            pattern="^[^\\x00]*[^\\x00\\s][^\\x00]*$",
            title="Value",
        ),
    ]


class Margin(RootModel[float]):
    root: Annotated[float, Field(ge=0.0, lt=1.0, title="Margin")]


class MaxPerBrand(RootModel[int]):
    root: Annotated[int, Field(ge=1, le=1000, title="Max Per Brand")]


class MaxPerCategory(RootModel[int]):
    root: Annotated[int, Field(ge=1, le=1000, title="Max Per Category")]


class Metric(RootModel[str]):
    root: Annotated[
        str,
        Field(
            max_length=32,
            pattern="(?i)^[ \\t\\n\\r]*((hr|recall|ndcg|map|precision)@[1-9][0-9]{0,2}|mrr)[ \\t\\n\\r]*$",
            title="Metric",
        ),
    ]


class Model(StrEnum):
    popular = "popular"
    itemknn = "itemknn"
    ease = "ease"
    als = "als"
    bpr = "bpr"
    mf = "mf"
    ncf = "ncf"
    gru4rec = "gru4rec"
    transformer = "transformer"
    cross = "cross"


class ModelOut(BaseModel):
    model_id: Annotated[str, Field(title="Model Id")]
    name: Annotated[str, Field(title="Name")]
    config: Annotated[dict[str, Any] | None, Field(title="Config")]
    metrics: Annotated[dict[str, Any] | None, Field(title="Metrics")]
    active: Annotated[bool, Field(title="Active")]
    created_at: Annotated[float, Field(title="Created At")]
    activated_at: Annotated[float | None, Field(title="Activated At")]


class Name(RootModel[str]):
    root: Annotated[str, Field(max_length=64, min_length=1, title="Name")]


class NewKeyOut(BaseModel):
    key_id: Annotated[str, Field(title="Key Id")]
    name: Annotated[str | None, Field(title="Name")]
    scopes: Annotated[list[str], Field(title="Scopes")]
    created_at: Annotated[float, Field(title="Created At")]
    revoked: Annotated[bool | None, Field(title="Revoked")] = False
    revoked_at: Annotated[float | None, Field(title="Revoked At")] = None
    platform: Annotated[str, Field(title="Platform")]
    api_key: Annotated[str, Field(title="Api Key")]


class PhoneIdentity(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    type: Annotated[Literal["phone"], Field(title="Type")]
    value: Annotated[
        str,
        Field(
            description="6..15 digits (not starting with 0), optionally + ( ) - . / and spaces",
            max_length=320,
            pattern="^[ +()./-]*[1-9][ ()./-]*([0-9][ ()./-]*){5,14}$",
            title="Value",
        ),
    ]


class PinItem(RootModel[str]):
    root: Annotated[str, Field(max_length=266)]


class PlatformIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    name: Annotated[str, Field(max_length=128, min_length=1, title="Name")]


class PlatformOut(BaseModel):
    platform: Annotated[str, Field(title="Platform")]
    api_key: Annotated[str, Field(title="Api Key")]


class Price(RootModel[str]):
    root: Annotated[
        str,
        Field(
            description="a number written as a string, as in a CSV file",
            max_length=32,
            pattern="^\\s*[-+]?(\\d+\\.?\\d*|\\.\\d+)([eE][-+]?\\d{1,2})?\\s*$",
            title="Price",
        ),
    ]


class RecommendationOut(BaseModel):
    recommendation_id: Annotated[str, Field(title="Recommendation Id")]
    model: Annotated[str | None, Field(title="Model")]
    offset: Annotated[int, Field(title="Offset")]
    items: Annotated[list[RecommendedItem], Field(title="Items")]
    experiment: Annotated[str | None, Field(title="Experiment")] = None
    variant: Annotated[str | None, Field(title="Variant")] = None


class RecommendedItem(BaseModel):
    item_id: Annotated[str, Field(title="Item Id")]
    score: Annotated[float, Field(title="Score")]
    reason: Annotated[
        dict[str, Any],
        Field(
            description="why the item is here (shoprec.explain.Reason.to_json): type, source, level and, as they apply, model_id, candidates, because_of, weights, category, item_id, text, and rules (the business rules that moved the item: boost, bury, pin, max_per_category, max_per_brand, diversity); docs/serving.md, Explanations",
            title="Reason",
        ),
    ]


class RetrainPolicyIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    every_hours: Annotated[EveryHours | None, Field(title="Every Hours")] = None
    after_events: Annotated[AfterEvents | None, Field(title="After Events")] = None
    margin: Annotated[Margin | None, Field(title="Margin")] = None
    metric: Annotated[Metric | None, Field(title="Metric")] = None
    holdout_fraction: Annotated[
        HoldoutFraction | None, Field(title="Holdout Fraction")
    ] = None
    action: Annotated[Action | None, Field(title="Action")] = None
    model: Annotated[Model | None, Field(title="Model")] = None
    params: Annotated[
        dict[Annotated[str, StringConstraints(max_length=1000)], JsonValue | None] | None,
        Field(title="Params"),
    ] = None


class RetrainPolicyOut(BaseModel):
    every_hours: Annotated[float | None, Field(title="Every Hours")]
    after_events: Annotated[int | None, Field(title="After Events")]
    margin: Annotated[float, Field(title="Margin")]
    metric: Annotated[str, Field(title="Metric")]
    holdout_fraction: Annotated[float, Field(title="Holdout Fraction")]
    action: Annotated[str, Field(title="Action")]
    model: Annotated[str | None, Field(title="Model")]
    params: Annotated[dict[str, Any] | None, Field(title="Params")]
    source: Annotated[str, Field(title="Source")]
    enabled: Annotated[bool, Field(title="Enabled")]


class RetrainRunOut(BaseModel):
    platform: Annotated[str, Field(title="Platform")]
    queued: Annotated[bool, Field(title="Queued")]
    job: Annotated[dict[str, Any] | None, Field(title="Job")]


class RulesIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    filter: Annotated[Filter | None, Field(title="Filter")] = None
    boost: Annotated[list[BoostItem] | None, Field(max_length=20, title="Boost")] = None
    pin: Annotated[list[PinItem] | None, Field(max_length=100, title="Pin")] = None
    max_per_category: Annotated[
        MaxPerCategory | None, Field(title="Max Per Category")
    ] = None
    max_per_brand: Annotated[MaxPerBrand | None, Field(title="Max Per Brand")] = None
    diversity: Annotated[Diversity | None, Field(title="Diversity")] = None


class RulesOut(BaseModel):
    platform: Annotated[str, Field(title="Platform")]
    filter: Annotated[str | None, Field(title="Filter")]
    boost: Annotated[list[str], Field(title="Boost")]
    pin: Annotated[list[str], Field(title="Pin")]
    max_per_category: Annotated[int | None, Field(title="Max Per Category")]
    max_per_brand: Annotated[int | None, Field(title="Max Per Brand")]
    diversity: Annotated[float | None, Field(title="Diversity")]
    updated_at: Annotated[float | None, Field(title="Updated At")]


class Scope(StrEnum):
    read = "read"
    write = "write"
    admin = "admin"
    train = "train"
    events = "events"


class SessionEvent(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    item_id: Annotated[
        str,
        Field(
            max_length=256,
            min_length=1,
            pattern="^[^\\x00]*[^\\x00\\s][^\\x00]*$",
            title="Item Id",
        ),
    ]
    type: EventType | None = "view"


class SessionId(RootModel[str]):
    root: Annotated[
        str,
        Field(
            max_length=256,
            min_length=1,
            pattern="^[^\\x00]*[^\\x00\\s][^\\x00]*$",
            title="Session Id",
        ),
    ]


class SessionIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    history: Annotated[list[SessionEvent], Field(max_length=1000, title="History")]
    k: Annotated[int | None, Field(ge=1, le=100, title="K")] = 10
    category: Annotated[Category2 | None, Field(title="Category")] = None
    min_price: Annotated[float | None, Field(title="Min Price")] = None
    max_price: Annotated[float | None, Field(title="Max Price")] = None
    exclude: Annotated[
        list[ExcludeItem] | None, Field(max_length=1000, title="Exclude")
    ] = None
    filter: Annotated[Filter | None, Field(title="Filter")] = None
    boost: Annotated[list[BoostItem] | None, Field(max_length=20, title="Boost")] = None
    pin: Annotated[list[PinItem] | None, Field(max_length=100, title="Pin")] = None
    max_per_category: Annotated[
        MaxPerCategory | None, Field(title="Max Per Category")
    ] = None
    max_per_brand: Annotated[MaxPerBrand | None, Field(title="Max Per Brand")] = None
    diversity: Annotated[Diversity | None, Field(title="Diversity")] = None


class Text(RootModel[str]):
    root: Annotated[str, Field(max_length=100000, title="Text")]


class TrainIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    model: Annotated[Model, Field(title="Model")]
    params: Annotated[
        dict[Annotated[str, StringConstraints(max_length=1000)], JsonValue | None] | None,
        Field(title="Params"),
    ] = None
    activate: Annotated[bool | None, Field(title="Activate")] = False


class Type(StrEnum):
    impression = "impression"
    click = "click"
    like = "like"
    dislike = "dislike"
    purchase = "purchase"


class UserId(RootModel[str]):
    root: Annotated[
        str,
        Field(
            max_length=256,
            min_length=1,
            pattern="^[^\\x00]*[^\\x00\\s][^\\x00]*$",
            title="User Id",
        ),
    ]


class UserId1(RootModel[int]):
    root: Annotated[int, Field(ge=0, lt=1000000000000000000, title="User Id")]


class UserId2(RootModel[str]):
    root: Annotated[
        str,
        Field(
            max_length=256,
            min_length=1,
            pattern="^[^\\x00]*[^\\x00\\s][^\\x00]*$",
            title="User Id",
        ),
    ]


class UserId3(RootModel[int]):
    root: Annotated[int, Field(ge=0, lt=1000000000000000000, title="User Id")]


class UserId4(RootModel[str]):
    root: Annotated[
        str,
        Field(
            max_length=256,
            min_length=1,
            pattern="^[^\\x00]*[^\\x00\\s][^\\x00]*$",
            title="User Id",
        ),
    ]


class UserId5(RootModel[int]):
    root: Annotated[int, Field(ge=0, lt=1000000000000000000, title="User Id")]


class UserIn(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    __annotations__ = {
        "__pydantic_extra__": Dict[
            Annotated[str, StringConstraints(max_length=1000)], JsonValue | None
        ],
    }
    user_id: Annotated[UserId4 | UserId5, Field(title="User Id")]
    attributes: Annotated[
        dict[Annotated[str, StringConstraints(max_length=1000)], JsonValue | None] | None,
        Field(title="Attributes"),
    ] = None
    identity: Annotated[
        EmailIdentity | PhoneIdentity | LoyaltyIdentity | None, Field(title="Identity")
    ] = None


class UserOut(BaseModel):
    user_id: Annotated[str, Field(title="User Id")]
    attributes: Annotated[dict[str, Any], Field(title="Attributes")]
    created_at: Annotated[float, Field(title="Created At")]
    updated_at: Annotated[float, Field(title="Updated At")]
    recent_events: Annotated[list[EventOut], Field(title="Recent Events")]


class ValidationError(BaseModel):
    loc: Annotated[list[str | int], Field(title="Location")]
    msg: Annotated[str, Field(title="Message")]
    type: Annotated[str, Field(title="Error Type")]
    input: Annotated[Any | None, Field(title="Input")] = None
    ctx: Annotated[dict[str, Any] | None, Field(title="Context")] = None


class Value(RootModel[str]):
    root: Annotated[
        str,
        Field(
            description="a number written as a string, as in a CSV file",
            max_length=32,
            pattern="^\\s*[-+]?(\\d+\\.?\\d*|\\.\\d+)([eE][-+]?\\d{1,2})?\\s*$",
            title="Value",
        ),
    ]


class VariantIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    name: Annotated[str, Field(max_length=64, min_length=1, title="Name")]
    model_id: Annotated[str, Field(max_length=32, min_length=1, title="Model Id")]
    share: Annotated[float, Field(gt=0.0, le=1.0, title="Share")]


class VariantOut(BaseModel):
    name: Annotated[str, Field(title="Name")]
    model_id: Annotated[str, Field(title="Model Id")]
    share: Annotated[float, Field(title="Share")]


class Vector(RootModel[float]):
    root: Annotated[float, Field(ge=-3.4028234663852886e+38, le=3.4028234663852886e+38)]


class Vectors(RootModel[list[Vector]]):
    root: Annotated[list[Vector], Field(max_length=4096, min_length=1)]


class WriteOut(BaseModel):
    received: Annotated[int, Field(title="Received")]
    accepted: Annotated[int, Field(title="Accepted")]
    duplicates: Annotated[int, Field(title="Duplicates")]
    stored: Annotated[dict[str, int], Field(title="Stored")]


JsonValue.model_rebuild()
