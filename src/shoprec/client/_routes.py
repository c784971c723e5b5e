"""Every /v1 route of the API, once: ROUTES names its method and path template, and one builder per route
turns the method's arguments into a Call (path, query, body, Idempotency-Key, result type). Client and
AsyncClient only send these Calls, so the two cannot drift apart; tests/client checks that ROUTES covers
every /v1 operation of clients/openapi.json."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from pydantic import TypeAdapter

from shoprec.client._core import Call, new_key, plain, with_event_ids
from shoprec.client.models import (
    AuditOut,
    DecisionOut,
    ExperimentOut,
    ExperimentResultsOut,
    ExplanationOut,
    FeedbackOut,
    ItemOut,
    JobOut,
    KeyOut,
    ModelOut,
    NewKeyOut,
    PlatformOut,
    RecommendationOut,
    RetrainPolicyOut,
    RetrainRunOut,
    RulesOut,
    UserOut,
    WriteOut,
)

ROUTES: dict[str, tuple[str, str]] = {
    "live": ("GET", "/v1/health/live"),
    "ready": ("GET", "/v1/health/ready"),
    "create_platform": ("POST", "/v1/platforms"),
    "put_items": ("PUT", "/v1/items"),
    "get_item": ("GET", "/v1/items/{item_id}"),
    "delete_item": ("DELETE", "/v1/items/{item_id}"),
    "similar_items": ("GET", "/v1/items/{item_id}/similar"),
    "post_users": ("POST", "/v1/users"),
    "get_user": ("GET", "/v1/users/{user_id}"),
    "erase_user": ("DELETE", "/v1/users/{user_id}"),
    "export_user": ("GET", "/v1/users/{user_id}/export"),
    "post_events": ("POST", "/v1/events"),
    "recommend": ("GET", "/v1/users/{user_id}/recommendations"),
    "explain": ("GET", "/v1/users/{user_id}/recommendations/explain"),
    "recommend_session": ("POST", "/v1/sessions/recommendations"),
    "trending": ("GET", "/v1/lists/trending"),
    "buy_again": ("GET", "/v1/users/{user_id}/buy-again"),
    "bought_together": ("POST", "/v1/lists/frequently-bought-together"),
    "new_arrivals": ("GET", "/v1/users/{user_id}/new-arrivals"),
    "feedback": ("POST", "/v1/feedback"),
    "train": ("POST", "/v1/models/train"),
    "list_jobs": ("GET", "/v1/jobs"),
    "get_job": ("GET", "/v1/jobs/{job_id}"),
    "cancel_job": ("POST", "/v1/jobs/{job_id}/cancel"),
    "list_models": ("GET", "/v1/models"),
    "activate_model": ("POST", "/v1/models/{model_id}/activate"),
    "create_experiment": ("POST", "/v1/experiments"),
    "list_experiments": ("GET", "/v1/experiments"),
    "get_experiment": ("GET", "/v1/experiments/{experiment_id}"),
    "stop_experiment": ("POST", "/v1/experiments/{experiment_id}/stop"),
    "experiment_results": ("GET", "/v1/experiments/{experiment_id}/results"),
    "create_key": ("POST", "/v1/keys"),
    "list_keys": ("GET", "/v1/keys"),
    "revoke_key": ("DELETE", "/v1/keys/{key_id}"),
    "rotate_key": ("POST", "/v1/keys/{key_id}/rotate"),
    "audit": ("GET", "/v1/audit"),
    "retraining_policy": ("GET", "/v1/retraining/policy"),
    "set_retraining_policy": ("PUT", "/v1/retraining/policy"),
    "reset_retraining_policy": ("DELETE", "/v1/retraining/policy"),
    "rules": ("GET", "/v1/rules"),
    "set_rules": ("PUT", "/v1/rules"),
    "clear_rules": ("DELETE", "/v1/rules"),
    "retraining_decisions": ("GET", "/v1/retraining/decisions"),
    "retrain_now": ("POST", "/v1/retraining/run"),
}
_A: dict[Any, TypeAdapter[Any]] = {}


def _of(kind: Any) -> TypeAdapter[Any]:
    """One TypeAdapter per result type (building one costs more than a small answer's validation)."""
    if kind not in _A:
        _A[kind] = TypeAdapter(kind)
    return _A[kind]


def _call(name: str, result: Any, *, path: Mapping[str, str] | None = None, **fields: Any) -> Call[Any]:
    method, template = ROUTES[name]
    filled = template.format(**{k: quote(str(v), safe="") for k, v in (path or {}).items()})
    return Call(method, template, filled, None if result is None else _of(result), **fields)


def _query(**params: Any) -> dict[str, Any]:
    """Query parameters without the unset ones (the API's defaults apply)."""
    return {k: v for k, v in params.items() if v is not None}


def live() -> Call[dict[str, Any]]:
    return _call("live", dict[str, Any])


def ready() -> Call[dict[str, Any]]:
    return _call("ready", dict[str, Any], accept=frozenset({503}))


def create_platform(name: str) -> Call[PlatformOut]:
    return _call("create_platform", PlatformOut, json={"name": name})


def put_items(items: Iterable[Any], idempotency_key: str | None) -> Call[WriteOut]:
    return _call("put_items", WriteOut, json=[plain(i) for i in items], idempotency_key=idempotency_key or new_key())


def get_item(item_id: str) -> Call[ItemOut]:
    return _call("get_item", ItemOut, path={"item_id": item_id})


def delete_item(item_id: str) -> Call[None]:
    return _call("delete_item", None, path={"item_id": item_id})


def similar_items(item_id: str, k: int | None, rules: Mapping[str, Any] | None = None) -> Call[RecommendationOut]:
    return _call("similar_items", RecommendationOut, path={"item_id": item_id},
                 params=_query(k=k, **_rule_params(rules or {})))


def post_users(users: Iterable[Any], idempotency_key: str | None) -> Call[WriteOut]:
    return _call("post_users", WriteOut, json=[plain(u) for u in users], idempotency_key=idempotency_key or new_key())


def get_user(user_id: str) -> Call[UserOut]:
    return _call("get_user", UserOut, path={"user_id": user_id})


def erase_user(user_id: str) -> Call[None]:
    return _call("erase_user", None, path={"user_id": user_id})


def export_user(user_id: str) -> Call[dict[str, Any]]:
    return _call("export_user", dict[str, Any], path={"user_id": user_id})


def post_events(events: Iterable[Any], idempotency_key: str | None) -> Call[WriteOut]:
    return _call("post_events", WriteOut, json=with_event_ids(events), idempotency_key=idempotency_key or new_key())


def recommend(user_id: str, k: int | None, offset: int | None, category: str | None, min_price: float | None,
              max_price: float | None, exclude: Iterable[str] | None, include_seen: bool | None,
              recommendation_id: str | None, params: Mapping[str, Any] | None,
              rules: Mapping[str, Any] | None = None) -> Call[RecommendationOut]:
    query = _query(k=k, offset=offset, category=category, min_price=min_price, max_price=max_price,
                   exclude=",".join(exclude) if exclude else None,
                   include_seen=None if include_seen is None else str(include_seen).lower(),
                   recommendation_id=recommendation_id, **_rule_params(rules or {}))
    return _call("recommend", RecommendationOut, path={"user_id": user_id}, params={**query, **(params or {})})


def _rule_params(rules: Mapping[str, Any]) -> dict[str, Any]:
    """Business rules as the API's query parameters: `boost` repeated (a list), `pin` as "ID:POS,ID:POS"."""
    out = {k: v for k, v in rules.items() if v is not None}
    if isinstance(out.get("boost"), str):
        out["boost"] = [out["boost"]]
    if isinstance(out.get("pin"), list | tuple):
        out["pin"] = ",".join(p if isinstance(p, str) else f"{p[0]}:{p[1]}" for p in out["pin"])
    return out


def explain(user_id: str, item_id: str) -> Call[ExplanationOut]:
    return _call("explain", ExplanationOut, path={"user_id": user_id}, params={"item_id": item_id})


def recommend_session(history: Iterable[Any], k: int | None, category: str | None, min_price: float | None,
                      max_price: float | None, exclude: Iterable[str] | None) -> Call[RecommendationOut]:
    body = _query(history=[plain(e) for e in history], k=k, category=category, min_price=min_price,
                  max_price=max_price, exclude=list(exclude) if exclude is not None else None)
    return _call("recommend_session", RecommendationOut, json=body, safe=True)  # a read: nothing is written


def trending(k: int | None, window: str | None, category: str | None,
             min_count: int | None) -> Call[RecommendationOut]:
    return _call("trending", RecommendationOut, params=_query(k=k, window=window, category=category,
                                                              min_count=min_count))


def buy_again(user_id: str, k: int | None) -> Call[RecommendationOut]:
    return _call("buy_again", RecommendationOut, path={"user_id": user_id}, params=_query(k=k))


def bought_together(item_ids: Iterable[str], k: int | None) -> Call[RecommendationOut]:
    body = _query(item_ids=list(item_ids), k=k)
    return _call("bought_together", RecommendationOut, json=body, safe=True)  # a read: nothing is written


def new_arrivals(user_id: str, k: int | None, days: int | None) -> Call[RecommendationOut]:
    return _call("new_arrivals", RecommendationOut, path={"user_id": user_id}, params=_query(k=k, days=days))


def feedback(recommendation_id: str, item_id: str, type: str, idempotency_key: str | None) -> Call[FeedbackOut]:
    return _call("feedback", FeedbackOut, json={"recommendation_id": recommendation_id, "item_id": item_id,
                                                "type": type}, idempotency_key=idempotency_key or new_key())


def train(model: str, params: Mapping[str, Any] | None, activate: bool) -> Call[JobOut]:
    return _call("train", JobOut, json=_query(model=model, params=dict(params) if params else None,
                                              activate=activate))


def list_jobs(status: str | Iterable[str] | None, limit: int | None) -> Call[list[JobOut]]:
    joined = status if isinstance(status, str) or status is None else ",".join(status)
    return _call("list_jobs", list[JobOut], params=_query(status=joined, limit=limit))


def get_job(job_id: str) -> Call[JobOut]:
    return _call("get_job", JobOut, path={"job_id": job_id})


def cancel_job(job_id: str) -> Call[JobOut]:
    return _call("cancel_job", JobOut, path={"job_id": job_id})


def list_models() -> Call[list[ModelOut]]:
    return _call("list_models", list[ModelOut])


def activate_model(model_id: str) -> Call[ModelOut]:
    return _call("activate_model", ModelOut, path={"model_id": model_id}, safe=True)  # activating twice: same


def create_experiment(name: str, variants: Iterable[Any], start: float | None, end: float | None
                      ) -> Call[ExperimentOut]:
    return _call("create_experiment", ExperimentOut, json=_query(name=name, variants=[plain(v) for v in variants],
                                                                 start=start, end=end))


def list_experiments() -> Call[list[ExperimentOut]]:
    return _call("list_experiments", list[ExperimentOut])


def get_experiment(experiment_id: str) -> Call[ExperimentOut]:
    return _call("get_experiment", ExperimentOut, path={"experiment_id": experiment_id})


def stop_experiment(experiment_id: str) -> Call[ExperimentOut]:
    return _call("stop_experiment", ExperimentOut, path={"experiment_id": experiment_id})


def experiment_results(experiment_id: str) -> Call[ExperimentResultsOut]:
    return _call("experiment_results", ExperimentResultsOut, path={"experiment_id": experiment_id})


def create_key(scopes: Iterable[str] | None, name: str | None) -> Call[NewKeyOut]:
    return _call("create_key", NewKeyOut, json=_query(scopes=list(scopes) if scopes is not None else None,
                                                      name=name))


def list_keys() -> Call[list[KeyOut]]:
    return _call("list_keys", list[KeyOut])


def revoke_key(key_id: str) -> Call[None]:
    return _call("revoke_key", None, path={"key_id": key_id})


def rotate_key(key_id: str) -> Call[NewKeyOut]:
    return _call("rotate_key", NewKeyOut, path={"key_id": key_id})


def audit(limit: int | None) -> Call[list[AuditOut]]:
    return _call("audit", list[AuditOut], params=_query(limit=limit))


def retraining_policy() -> Call[RetrainPolicyOut]:
    return _call("retraining_policy", RetrainPolicyOut)


def set_retraining_policy(policy: Any) -> Call[RetrainPolicyOut]:
    return _call("set_retraining_policy", RetrainPolicyOut, json=plain(policy))


def reset_retraining_policy() -> Call[RetrainPolicyOut]:
    return _call("reset_retraining_policy", RetrainPolicyOut)


def rules() -> Call[RulesOut]:
    return _call("rules", RulesOut)


def set_rules(rules: Any) -> Call[RulesOut]:
    return _call("set_rules", RulesOut, json=plain(rules), safe=True)  # a replacement: the same on every try


def clear_rules() -> Call[RulesOut]:
    return _call("clear_rules", RulesOut, safe=True)


def retraining_decisions(limit: int | None) -> Call[list[DecisionOut]]:
    return _call("retraining_decisions", list[DecisionOut], params=_query(limit=limit))


def retrain_now() -> Call[RetrainRunOut]:
    return _call("retrain_now", RetrainRunOut)


def custom(method: str, path: str, result: Any, params: Mapping[str, Any] | None, json: Any,
           idempotency_key: str | None) -> Call[Any]:
    """A route this client has no method for yet (a newer server): `result` a type (or None for no body)."""
    return Call(method.upper(), path, path, None if result is None else _of(result), params=params, json=json,
                idempotency_key=idempotency_key)
