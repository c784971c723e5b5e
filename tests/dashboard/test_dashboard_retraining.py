"""The dashboard's Retraining page: the platform's policy and its decision history (model, time, both models'
holdout metrics, decision, why), as the service records them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dashhelpers import Dashboard
from fastapi.testclient import TestClient

from shoprec.api import create_app


@pytest.fixture
def admin(board: Dashboard) -> Iterator[TestClient]:
    app = create_app(board.services.settings, board.services.config, services=board.services)
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False,
                    headers={"X-API-Key": board.admin_key}) as c:
        yield c


def test_retraining_page_shows_the_policy_and_every_decision(admin: TestClient, board: Dashboard) -> None:
    empty = admin.get("/dashboard/retraining?platform=shop")
    assert empty.status_code == 200 and "No retraining decisions yet" in empty.text
    assert 'href="/dashboard/retraining?platform=shop"' in empty.text  # in the navigation
    assert "The deployment default" in empty.text
    retraining = board.services.retraining
    retraining.set_policy("shop", every_hours=12, after_events=5000, margin=0.05)
    first = retraining.retrain("shop")
    second = retraining.gate("shop", board.mf_id)
    html = admin.get("/dashboard/retraining?platform=shop").text
    assert "This platform&#39;s own policy" in html and "12 hours" in html and "5,000 new events" in html
    assert "not more than 5% below" in html
    for d in (first, second):
        assert f'class="decision decision-{d.decision}"' in html
        assert d.candidate_model_id is not None and d.candidate_model_id[:8] in html
        assert d.reason.replace("'", "&#39;") in html
        for side in ("candidate", "active"):
            value = d.value(side)
            assert value is not None and f"{value:.4f}" in html
    assert html.index(second.candidate_model_id[:8]) < html.index(first.candidate_model_id[:8])  # newest first


def test_retraining_page_for_an_unknown_platform_is_404(admin: TestClient) -> None:
    r = admin.get("/dashboard/retraining?platform=nowhere")
    assert r.status_code == 404 and "no platform &#39;nowhere&#39;" in r.text
