"""Property-based fuzzing of every operation in the OpenAPI schema (schemathesis strategies driven by
hypothesis) with EVERY schemathesis check (schemathesis.checks.CHECKS: no 5xx, status codes, content types,
headers and bodies as declared, schema-valid data accepted, schema-invalid data refused, missing headers,
unsupported methods, ignored auth, ...), and every error answer in the documented JSON shape. Both valid and
invalid (negative) data are generated; the default run keeps a few examples per operation (fast)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402

from shoprec.api import create_app  # noqa: E402
from shoprec.service import Services  # noqa: E402
from shoprec.service.testing import ReadyPlatform, local_services, synthetic_platform  # noqa: E402


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Services, ReadyPlatform]]:
    svc = local_services(tmp_path_factory.mktemp("fuzz"))
    shop = synthetic_platform(svc, "shop", users=30, items=20)
    yield svc, shop
    svc.close()


def _operations(svc: Services) -> list[object]:
    app = create_app(svc.settings, svc.config, services=svc)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    return [result.ok() for result in schema.get_all_operations()]


def _all_checks() -> list[object]:
    from schemathesis.checks import CHECKS, load_all_checks

    load_all_checks()
    return list(CHECKS.get_all())


def _check(case: object, key: str) -> None:
    response = case.call_and_validate(headers={"X-API-Key": key}, checks=_all_checks())  # type: ignore[attr-defined]
    status = response.status_code
    assert status < 500, f"{case}: {status} {response.text}"
    if status >= 400 and status != 405:
        body = response.json()
        assert isinstance(body, dict) and {"error", "message", "errors"} <= set(body), body


@pytest.mark.parametrize(("mode", "examples"), [
    ("positive", 5), ("negative", 5),
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
            _check(case, shop.api_key)

        try:
            run()
        except Unsatisfiable:  # negative mode: an operation without parameters has no invalid input
            continue
