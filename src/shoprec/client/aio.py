"""AsyncClient: the asyncio twin of Client (httpx.AsyncClient): the same methods, awaited.

    async with AsyncClient("http://127.0.0.1:8000", "sk_...") as api:
        top = await api.recommend("u1", k=10)

Each method sends the same Call as Client's method of that name (shoprec.client._routes), with the same
retries, Idempotency-Key and event_ids; see Client for what each one does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import httpx

from shoprec.client import _routes as r
from shoprec.client._core import Call, ConnectionFailed, Retries, api_error, parse, wait_before_retry
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
from shoprec.client.sync import DEFAULT_TIMEOUT_S, client_headers, request_headers

T = TypeVar("T")


class AsyncClient:
    """Client's twin for asyncio (the same arguments; `transport` / `http` are httpx's async ones)."""

    def __init__(self, base_url: str, api_key: str, *, platform: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT_S, retries: Retries | int = Retries(),
                 transport: httpx.AsyncBaseTransport | None = None, http: httpx.AsyncClient | None = None) -> None:
        self.retries = retries if isinstance(retries, Retries) else Retries(attempts=max(1, retries))
        self._owned = http is None
        self._http = http or httpx.AsyncClient(base_url=base_url, timeout=timeout, transport=transport)
        self._headers = client_headers(api_key, platform)

    async def aclose(self) -> None:
        if self._owned:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def send(self, call: Call[T]) -> T:
        """Send `call`, retrying as Retries says, and return its typed result (Client.send)."""
        maybe_done = False
        attempt = 0
        while True:
            try:
                response = await self._http.request(call.method, call.path, params=call.params, json=call.json,
                                                    headers={**self._headers, **request_headers(call)})
            except httpx.TransportError as exc:
                wait = wait_before_retry(call, attempt, self.retries, error=exc)
                if wait is None:
                    raise ConnectionFailed(f"{call.method} {call.path}: {exc!r} after {attempt + 1} tries") from exc
                maybe_done = maybe_done or not isinstance(exc, httpx.ConnectError)
            else:
                if response.is_success or response.status_code in call.accept:
                    return parse(call, response)
                if call.method == "DELETE" and response.status_code == 404 and maybe_done:
                    return parse(call, response)
                wait = wait_before_retry(call, attempt, self.retries, response=response)
                if wait is None:
                    raise api_error(response)
            await asyncio.sleep(wait)
            attempt += 1

    async def request(self, method: str, path: str, *, result: Any = None, params: Mapping[str, Any] | None = None,
                      json: Any = None, idempotency_key: str | None = None) -> Any:
        return await self.send(r.custom(method, path, result, params, json, idempotency_key))

    # ------------------------------------------------------------------ health and platforms
    async def live(self) -> dict[str, Any]:
        return await self.send(r.live())

    async def ready(self) -> dict[str, Any]:
        """Readiness: {"status": "ok", ...} or, not ready, {"status": "unavailable", "message": ...}."""
        return await self.send(r.ready())

    async def create_platform(self, name: str) -> PlatformOut:
        return await self.send(r.create_platform(name))

    # ------------------------------------------------------------------ items, users, events
    async def put_items(self, items: Iterable[Any], *, idempotency_key: str | None = None) -> WriteOut:
        return await self.send(r.put_items(items, idempotency_key))

    async def get_item(self, item_id: str) -> ItemOut:
        return await self.send(r.get_item(item_id))

    async def delete_item(self, item_id: str) -> None:
        await self.send(r.delete_item(item_id))

    async def similar_items(self, item_id: str, k: int | None = None, *, filter: str | None = None,
                      boost: str | Iterable[str] | None = None, pin: str | Iterable[str] | None = None,
                      max_per_category: int | None = None, max_per_brand: int | None = None,
                      diversity: float | None = None) -> RecommendationOut:
        """Items like an item, with business rules as `recommend` takes them."""
        rules = {"filter": filter, "boost": boost, "pin": pin, "max_per_category": max_per_category,
                 "max_per_brand": max_per_brand, "diversity": diversity}
        return await self.send(r.similar_items(item_id, k, rules))

    async def trending(self, k: int | None = None, *, window: str | None = None, category: str | None = None,
                 min_count: int | None = None) -> RecommendationOut:
        """Items rising in the last `window` ("24h", "7d"), with the fallbacks' items after them."""
        return await self.send(r.trending(k, window, category, min_count))

    async def buy_again(self, user_id: str, k: int | None = None) -> RecommendationOut:
        """Repurchasable items the user bought before."""
        return await self.send(r.buy_again(user_id, k))

    async def bought_together(self, item_ids: Iterable[str], k: int | None = None) -> RecommendationOut:
        """Items frequently bought together with a cart's items."""
        return await self.send(r.bought_together(item_ids, k))

    async def new_arrivals(self, user_id: str, k: int | None = None, *, days: int | None = None) -> RecommendationOut:
        """Items created in the last `days`, ranked for the user."""
        return await self.send(r.new_arrivals(user_id, k, days))

    async def post_users(self, users: Iterable[Any], *, idempotency_key: str | None = None) -> WriteOut:
        return await self.send(r.post_users(users, idempotency_key))

    async def get_user(self, user_id: str) -> UserOut:
        return await self.send(r.get_user(user_id))

    async def erase_user(self, user_id: str) -> None:
        await self.send(r.erase_user(user_id))

    async def export_user(self, user_id: str) -> dict[str, Any]:
        return await self.send(r.export_user(user_id))

    async def post_events(self, events: Iterable[Any], *, idempotency_key: str | None = None) -> WriteOut:
        return await self.send(r.post_events(events, idempotency_key))

    # ------------------------------------------------------------------ recommendations
    async def recommend(self, user_id: str, k: int | None = None, *, offset: int | None = None,
                  category: str | None = None, min_price: float | None = None, max_price: float | None = None,
                  exclude: Iterable[str] | None = None, include_seen: bool | None = None,
                  recommendation_id: str | None = None, params: Mapping[str, Any] | None = None,
                  filter: str | None = None, boost: str | Iterable[str] | None = None,
                  pin: str | Iterable[str] | None = None, max_per_category: int | None = None,
                  max_per_brand: int | None = None, diversity: float | None = None
                  ) -> RecommendationOut:
        """Top-k items for a user, with filters and business rules as Client.recommend takes them."""
        rules = {"filter": filter, "boost": boost, "pin": pin, "max_per_category": max_per_category,
                 "max_per_brand": max_per_brand, "diversity": diversity}
        return await self.send(r.recommend(user_id, k, offset, category, min_price, max_price, exclude, include_seen,
                                           recommendation_id, params, rules))

    async def explain(self, user_id: str, item_id: str) -> ExplanationOut:
        return await self.send(r.explain(user_id, item_id))

    async def recommend_session(self, history: Iterable[Any], k: int | None = None, *, category: str | None = None,
                          min_price: float | None = None, max_price: float | None = None,
                          exclude: Iterable[str] | None = None) -> RecommendationOut:
        """Recommendations for an anonymous visitor from the session's events ({"item_id", "type"})."""
        return await self.send(r.recommend_session(history, k, category, min_price, max_price, exclude))

    async def feedback(self, recommendation_id: str, item_id: str, type: str, *, idempotency_key: str | None = None
                 ) -> FeedbackOut:
        return await self.send(r.feedback(recommendation_id, item_id, type, idempotency_key))

    # ------------------------------------------------------------------ models and jobs
    async def train(self, model: str, params: Mapping[str, Any] | None = None, *, activate: bool = False) -> JobOut:
        return await self.send(r.train(model, params, activate))

    async def list_jobs(self, status: str | Iterable[str] | None = None, limit: int | None = None) -> list[JobOut]:
        return await self.send(r.list_jobs(status, limit))

    async def get_job(self, job_id: str) -> JobOut:
        return await self.send(r.get_job(job_id))

    async def cancel_job(self, job_id: str) -> JobOut:
        return await self.send(r.cancel_job(job_id))

    async def list_models(self) -> list[ModelOut]:
        return await self.send(r.list_models())

    async def activate_model(self, model_id: str) -> ModelOut:
        return await self.send(r.activate_model(model_id))

    # ------------------------------------------------------------------ experiments
    async def create_experiment(self, name: str, variants: Iterable[Any], *, start: float | None = None,
                          end: float | None = None) -> ExperimentOut:
        return await self.send(r.create_experiment(name, variants, start, end))

    async def list_experiments(self) -> list[ExperimentOut]:
        return await self.send(r.list_experiments())

    async def get_experiment(self, experiment_id: str) -> ExperimentOut:
        return await self.send(r.get_experiment(experiment_id))

    async def stop_experiment(self, experiment_id: str) -> ExperimentOut:
        return await self.send(r.stop_experiment(experiment_id))

    async def experiment_results(self, experiment_id: str) -> ExperimentResultsOut:
        return await self.send(r.experiment_results(experiment_id))

    # ------------------------------------------------------------------ keys and audit (`admin` scope)
    async def create_key(self, scopes: Iterable[str] | None = None, *, name: str | None = None) -> NewKeyOut:
        return await self.send(r.create_key(scopes, name))

    async def list_keys(self) -> list[KeyOut]:
        return await self.send(r.list_keys())

    async def revoke_key(self, key_id: str) -> None:
        await self.send(r.revoke_key(key_id))

    async def rotate_key(self, key_id: str) -> NewKeyOut:
        return await self.send(r.rotate_key(key_id))

    async def audit(self, limit: int | None = None) -> list[AuditOut]:
        return await self.send(r.audit(limit))

    # ------------------------------------------------------------------ continuous retraining
    async def retraining_policy(self) -> RetrainPolicyOut:
        return await self.send(r.retraining_policy())

    async def set_retraining_policy(self, policy: Any) -> RetrainPolicyOut:
        return await self.send(r.set_retraining_policy(policy))

    async def reset_retraining_policy(self) -> RetrainPolicyOut:
        return await self.send(r.reset_retraining_policy())

    # ------------------------------------------------------------------ business rules
    async def rules(self) -> RulesOut:
        """The platform's saved default business rules."""
        return await self.send(r.rules())

    async def set_rules(self, rules: Any) -> RulesOut:
        """Replace the platform's default rules (a mapping or models.RulesIn; a key with the `train` scope)."""
        return await self.send(r.set_rules(rules))

    async def clear_rules(self) -> RulesOut:
        return await self.send(r.clear_rules())

    async def retraining_decisions(self, limit: int | None = None) -> list[DecisionOut]:
        return await self.send(r.retraining_decisions(limit))

    async def retrain_now(self) -> RetrainRunOut:
        return await self.send(r.retrain_now())
