"""Client: the blocking Python client of the shoprec API (httpx), one method per /v1 route.

    from shoprec.client import Client
    with Client("http://127.0.0.1:8000", "sk_...") as api:
        api.post_events([{"user_id": "u1", "item_id": "i9", "type": "view"}])
        top = api.recommend("u1", k=10)           # RecommendationOut: top.items[0].item_id, .score, .reason
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import httpx

from shoprec import __version__
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

T = TypeVar("T")
DEFAULT_TIMEOUT_S = 10.0


def client_headers(api_key: str, platform: str | None) -> dict[str, str]:
    headers = {"X-API-Key": api_key, "User-Agent": f"shoprec-python/{__version__}"}
    if platform:
        headers["X-Platform"] = platform  # the platform an admin key acts on
    return headers


def request_headers(call: Call[Any]) -> dict[str, str]:
    headers = dict(call.headers)
    if call.idempotency_key is not None:
        headers["Idempotency-Key"] = call.idempotency_key
    return headers


class Client:
    """The API at `base_url` as `api_key` (with `platform`: the platform an admin key acts on).

    timeout: seconds per try (connect, read, write); retries: a Retries or a number of tries. Every error
    answer raises an ApiError subclass carrying the API's body; no answer after the retries: ConnectionFailed.
    `transport` / `http`: an httpx transport or a whole httpx.Client of your own (proxies, TLS settings)."""

    def __init__(self, base_url: str, api_key: str, *, platform: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT_S, retries: Retries | int = Retries(),
                 transport: httpx.BaseTransport | None = None, http: httpx.Client | None = None) -> None:
        self.retries = retries if isinstance(retries, Retries) else Retries(attempts=max(1, retries))
        self._owned = http is None
        self._http = http or httpx.Client(base_url=base_url, timeout=timeout, transport=transport)
        self._headers = client_headers(api_key, platform)

    def close(self) -> None:
        if self._owned:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, call: Call[T]) -> T:
        """Send `call`, retrying as Retries says, and return its typed result."""
        maybe_done = False  # an earlier try may have reached the server
        attempt = 0
        while True:
            try:
                response = self._http.request(call.method, call.path, params=call.params, json=call.json,
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
                    return parse(call, response)  # the try that got no answer deleted it
                wait = wait_before_retry(call, attempt, self.retries, response=response)
                if wait is None:
                    raise api_error(response)
            time.sleep(wait)
            attempt += 1

    def request(self, method: str, path: str, *, result: Any = None, params: Mapping[str, Any] | None = None,
                json: Any = None, idempotency_key: str | None = None) -> Any:
        """Any route (one this client version has no method for): the answer validated as `result`."""
        return self.send(r.custom(method, path, result, params, json, idempotency_key))

    # ------------------------------------------------------------------ health and platforms
    def live(self) -> dict[str, Any]:
        return self.send(r.live())

    def ready(self) -> dict[str, Any]:
        """Readiness: {"status": "ok", ...} or, not ready, {"status": "unavailable", "message": ...}."""
        return self.send(r.ready())

    def create_platform(self, name: str) -> PlatformOut:
        """Create a platform (admin key) and return its key, shown this once."""
        return self.send(r.create_platform(name))

    # ------------------------------------------------------------------ items, users, events
    def put_items(self, items: Iterable[Any], *, idempotency_key: str | None = None) -> WriteOut:
        """Insert or update items (mappings or models.ItemIn), all or nothing; retried with one Idempotency-Key."""
        return self.send(r.put_items(items, idempotency_key))

    def get_item(self, item_id: str) -> ItemOut:
        return self.send(r.get_item(item_id))

    def delete_item(self, item_id: str) -> None:
        self.send(r.delete_item(item_id))

    def similar_items(self, item_id: str, k: int | None = None, *, filter: str | None = None,
                      boost: str | Iterable[str] | None = None, pin: str | Iterable[str] | None = None,
                      max_per_category: int | None = None, max_per_brand: int | None = None,
                      diversity: float | None = None) -> RecommendationOut:
        """Items like an item, with business rules as `recommend` takes them."""
        rules = {"filter": filter, "boost": boost, "pin": pin, "max_per_category": max_per_category,
                 "max_per_brand": max_per_brand, "diversity": diversity}
        return self.send(r.similar_items(item_id, k, rules))

    def trending(self, k: int | None = None, *, window: str | None = None, category: str | None = None,
                 min_count: int | None = None) -> RecommendationOut:
        """Items rising in the last `window` ("24h", "7d"), with the fallbacks' items after them."""
        return self.send(r.trending(k, window, category, min_count))

    def buy_again(self, user_id: str, k: int | None = None) -> RecommendationOut:
        """Repurchasable items the user bought before."""
        return self.send(r.buy_again(user_id, k))

    def bought_together(self, item_ids: Iterable[str], k: int | None = None) -> RecommendationOut:
        """Items frequently bought together with a cart's items."""
        return self.send(r.bought_together(item_ids, k))

    def new_arrivals(self, user_id: str, k: int | None = None, *, days: int | None = None) -> RecommendationOut:
        """Items created in the last `days`, ranked for the user."""
        return self.send(r.new_arrivals(user_id, k, days))

    def post_users(self, users: Iterable[Any], *, idempotency_key: str | None = None) -> WriteOut:
        return self.send(r.post_users(users, idempotency_key))

    def get_user(self, user_id: str) -> UserOut:
        return self.send(r.get_user(user_id))

    def erase_user(self, user_id: str) -> None:
        """Erase everything that names the user (privacy)."""
        self.send(r.erase_user(user_id))

    def export_user(self, user_id: str) -> dict[str, Any]:
        return self.send(r.export_user(user_id))

    def post_events(self, events: Iterable[Any], *, idempotency_key: str | None = None) -> WriteOut:
        """Store events (mappings or models.EventIn); each gets an event_id unless it has one, and the call one
        Idempotency-Key: a retry after a dropped connection stores nothing twice."""
        return self.send(r.post_events(events, idempotency_key))

    # ------------------------------------------------------------------ recommendations
    def recommend(self, user_id: str, k: int | None = None, *, offset: int | None = None,
                  category: str | None = None, min_price: float | None = None, max_price: float | None = None,
                  exclude: Iterable[str] | None = None, include_seen: bool | None = None,
                  recommendation_id: str | None = None, params: Mapping[str, Any] | None = None,
                  filter: str | None = None, boost: str | Iterable[str] | None = None,
                  pin: str | Iterable[str] | None = None, max_per_category: int | None = None,
                  max_per_brand: int | None = None, diversity: float | None = None
                  ) -> RecommendationOut:
        """Top-k items for a user. Business rules (`filter`, `boost` "EXPR: WEIGHT" one or several, `pin`
        "ID:POS" one or several, caps, `diversity`) as docs/serving.md describes; `params`: more query parameters,
        as the API names them."""
        rules = {"filter": filter, "boost": boost, "pin": pin, "max_per_category": max_per_category,
                 "max_per_brand": max_per_brand, "diversity": diversity}
        return self.send(r.recommend(user_id, k, offset, category, min_price, max_price, exclude, include_seen,
                                     recommendation_id, params, rules))

    def explain(self, user_id: str, item_id: str) -> ExplanationOut:
        return self.send(r.explain(user_id, item_id))

    def recommend_session(self, history: Iterable[Any], k: int | None = None, *, category: str | None = None,
                          min_price: float | None = None, max_price: float | None = None,
                          exclude: Iterable[str] | None = None) -> RecommendationOut:
        """Recommendations for an anonymous visitor from the session's events ({"item_id", "type"})."""
        return self.send(r.recommend_session(history, k, category, min_price, max_price, exclude))

    def feedback(self, recommendation_id: str, item_id: str, type: str, *, idempotency_key: str | None = None
                 ) -> FeedbackOut:
        return self.send(r.feedback(recommendation_id, item_id, type, idempotency_key))

    # ------------------------------------------------------------------ models and jobs
    def train(self, model: str, params: Mapping[str, Any] | None = None, *, activate: bool = False) -> JobOut:
        """Queue a training job (`train` scope); poll get_job."""
        return self.send(r.train(model, params, activate))

    def list_jobs(self, status: str | Iterable[str] | None = None, limit: int | None = None) -> list[JobOut]:
        return self.send(r.list_jobs(status, limit))

    def get_job(self, job_id: str) -> JobOut:
        return self.send(r.get_job(job_id))

    def cancel_job(self, job_id: str) -> JobOut:
        return self.send(r.cancel_job(job_id))

    def list_models(self) -> list[ModelOut]:
        return self.send(r.list_models())

    def activate_model(self, model_id: str) -> ModelOut:
        return self.send(r.activate_model(model_id))

    # ------------------------------------------------------------------ experiments
    def create_experiment(self, name: str, variants: Iterable[Any], *, start: float | None = None,
                          end: float | None = None) -> ExperimentOut:
        return self.send(r.create_experiment(name, variants, start, end))

    def list_experiments(self) -> list[ExperimentOut]:
        return self.send(r.list_experiments())

    def get_experiment(self, experiment_id: str) -> ExperimentOut:
        return self.send(r.get_experiment(experiment_id))

    def stop_experiment(self, experiment_id: str) -> ExperimentOut:
        return self.send(r.stop_experiment(experiment_id))

    def experiment_results(self, experiment_id: str) -> ExperimentResultsOut:
        return self.send(r.experiment_results(experiment_id))

    # ------------------------------------------------------------------ keys and audit (`admin` scope)
    def create_key(self, scopes: Iterable[str] | None = None, *, name: str | None = None) -> NewKeyOut:
        return self.send(r.create_key(scopes, name))

    def list_keys(self) -> list[KeyOut]:
        return self.send(r.list_keys())

    def revoke_key(self, key_id: str) -> None:
        self.send(r.revoke_key(key_id))

    def rotate_key(self, key_id: str) -> NewKeyOut:
        return self.send(r.rotate_key(key_id))

    def audit(self, limit: int | None = None) -> list[AuditOut]:
        return self.send(r.audit(limit))

    # ------------------------------------------------------------------ continuous retraining
    def retraining_policy(self) -> RetrainPolicyOut:
        return self.send(r.retraining_policy())

    def set_retraining_policy(self, policy: Any) -> RetrainPolicyOut:
        """Set the platform's policy (a mapping or models.RetrainPolicyIn)."""
        return self.send(r.set_retraining_policy(policy))

    def reset_retraining_policy(self) -> RetrainPolicyOut:
        return self.send(r.reset_retraining_policy())

    # ------------------------------------------------------------------ business rules
    def rules(self) -> RulesOut:
        """The platform's saved default business rules."""
        return self.send(r.rules())

    def set_rules(self, rules: Any) -> RulesOut:
        """Replace the platform's default rules (a mapping or models.RulesIn; a key with the `train` scope)."""
        return self.send(r.set_rules(rules))

    def clear_rules(self) -> RulesOut:
        return self.send(r.clear_rules())

    def retraining_decisions(self, limit: int | None = None) -> list[DecisionOut]:
        return self.send(r.retraining_decisions(limit))

    def retrain_now(self) -> RetrainRunOut:
        return self.send(r.retrain_now())
