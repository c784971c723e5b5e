"""Property-based fuzzing of every operation in the OpenAPI schema (schemathesis strategies driven by
hypothesis) with EVERY schemathesis check (schemathesis.checks.CHECKS: no 5xx, status codes, content types,
headers and bodies as declared, schema-valid data accepted, schema-invalid data refused, missing headers,
unsupported methods, ignored auth, ...), and every error answer in the documented JSON shape. Both valid and
invalid (negative) data are generated; the default run keeps a few examples per operation (fast)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402

from shoprec.api import create_app  # noqa: E402
from shoprec.service import Services, build_services  # noqa: E402
from shoprec.service.testing import ReadyPlatform, local_services, synthetic_platform  # noqa: E402


def secret_services(directory: Path) -> Services:
    """local_services with a secret key, so that a user's identity (a keyed hash) can be stored."""
    plain = local_services(directory)
    plain.close()
    return build_services(dataclasses.replace(plain.settings, secret_key="fuzzing-secret-key-0123456789abcdef"),
                          plain.config)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Services, ReadyPlatform]]:
    svc = secret_services(tmp_path_factory.mktemp("fuzz"))
    shop = synthetic_platform(svc, "shop", users=30, items=20)
    yield svc, shop
    svc.close()


def _operations(svc: Services) -> list[object]:
    app = create_app(svc.settings, svc.config, services=svc)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    return [result.ok() for result in schema.get_all_operations()]


DATA_RULES = frozenset({"bad_timestamp", "future_timestamp", "non_product_code", "non_positive_quantity",
                        "non_positive_price", "min_above_max", "page_too_deep", "bad_model_params",
                        "bad_event_id", "bad_expression", "unknown_field", "unknown_item", "bad_pin", "too_many"})
"""Rules no JSON schema of a request states: the ingest's cleaning rules (shoprec.preprocess.clean: a time
window relative to now, non-product item codes, quantities and prices per event type, an event_id of printable
characters as Python's str.isprintable() says, which no regex of JSON Schema states) and the rules across
query parameters (min_price <= max_price, offset + k <= the list depth; OpenAPI has no cross-parameter
constraint, so they are in the parameters' descriptions), each model's own parameters (`params`: names and
caps per model) and the business rules' expression language (`filter`, `boost`, `pin`: a grammar and the
catalog's fields and items, docs/serving.md "Business rules"). A schema-valid request may break one; the answer is
then a 422 naming the fields and the rule."""


CROSS_RULES = frozenset({("duplicate", "variants"), ("unknown_model", "variants"), ("invalid", "variants"),
                         ("invalid", "end"), ("overlap", "start"), ("invalid", "params"),
                         ("bad_vector_dim", "vectors")})
"""(reason, field) of rules across fields or against stored state, which no schema states either: an
experiment's variant names unique, shares summing to 1, models that exist, a time window after now and not
overlapping another; a retraining policy's params only with a model; an Idempotency-Key used before with
another body; an item vector's dimension, fixed per platform and name by the first one stored."""


def _known_rule(error: dict[str, object]) -> bool:
    field = str(error.get("field") or "").split(".")[0]
    return error.get("reason") in DATA_RULES or (error.get("reason"), field) in CROSS_RULES


def _positive_data_acceptance(ctx: object, response: object, case: object) -> bool | None:
    """schemathesis's positive_data_acceptance, except a 422 whose every error is a DATA_RULES or CROSS_RULES
    refusal."""
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    if getattr(response, "status_code", None) == 422:
        errors = response.json().get("errors") or []  # type: ignore[attr-defined]
        if errors and all(_known_rule(e) for e in errors):
            return None
    return positive_data_acceptance(ctx, response, case)  # type: ignore[arg-type]


def _negative_data_rejection(ctx: object, response: object, case: object) -> bool | None:
    """schemathesis's negative_data_rejection, except that a 413 `too_large` refusal counts as a rejection: a
    batch over its record limit (the schema's maxItems) is answered 413 by design (shoprec.api.errors)."""
    from schemathesis.specs.openapi.checks import negative_data_rejection

    if getattr(response, "status_code", None) == 413 and response.json().get("error") == "too_large":  # type: ignore[attr-defined]
        return None
    return negative_data_rejection(ctx, response, case)  # type: ignore[arg-type]


def _all_checks() -> list[object]:
    """Every check schemathesis has (positive_data_acceptance and negative_data_rejection as above)."""
    from schemathesis.checks import CHECKS, load_all_checks

    load_all_checks()
    mine = {"positive_data_acceptance", "negative_data_rejection"}
    return [c for c in CHECKS.get_all() if c.__name__ not in mine] + [_positive_data_acceptance,
                                                                      _negative_data_rejection]


def _check(case: object, key: str) -> None:
    """Call with the platform's key unless the case's headers are the negated part (then as generated: a
    schema-violating X-API-Key must be refused)."""
    from schemathesis.core.parameters import ParameterLocation

    meta = getattr(case, "meta", None)
    negated_headers = meta is not None and meta.is_negative_at(ParameterLocation.HEADER)
    headers = None if negated_headers else {"X-API-Key": key}
    response = case.call_and_validate(headers=headers, checks=_all_checks())  # type: ignore[attr-defined]
    status = response.status_code
    assert status < 500, f"{case}: {status} {response.text}"
    if status >= 400 and status != 405:
        body = response.json()
        assert isinstance(body, dict) and {"error", "message", "errors"} <= set(body), body


@pytest.mark.parametrize(("mode", "examples"), [
    ("positive", 3), ("negative", 3),
    pytest.param("positive", 200, marks=pytest.mark.slow), pytest.param("negative", 200, marks=pytest.mark.slow),
])
def test_no_generated_request_gets_a_server_error(fuzzed: tuple[Services, ReadyPlatform], mode: str,
                                                  examples: int) -> None:
    """`examples` generated requests per operation, with known ids and no X-Platform half the time
    (so that requests get past authentication and the 404s into the services)."""
    from schemathesis import GenerationMode

    svc, shop = fuzzed
    operations = _operations(svc)
    assert len(operations) >= 14
    generation = GenerationMode.POSITIVE if mode == "positive" else GenerationMode.NEGATIVE
    for op in operations:
        @given(case=op.as_strategy(generation_mode=generation), data=st.data())  # type: ignore[attr-defined]
        @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case: object, data: st.DataObject) -> None:
            params = getattr(case, "path_parameters", None) or {}
            for name, pool in (("item_id", shop.item_ids), ("user_id", shop.user_ids)):
                if name in params and data.draw(st.booleans()):
                    params[name] = data.draw(st.sampled_from(pool))
            headers = getattr(case, "headers", None)
            if headers and data.draw(st.booleans()):
                headers.pop("X-Platform", None)
            key = (headers or {}).get("Idempotency-Key")
            if isinstance(key, str) and 0 < len(key) <= 200 and key.isascii() and key.isprintable():
                headers["Idempotency-Key"] = f"{key}-{uuid.uuid4().hex}"  # a new request, not a retry of another
            _check(case, shop.api_key)

        try:
            run()
        except Unsatisfiable:  # negative mode: an operation without parameters has no invalid input
            continue
