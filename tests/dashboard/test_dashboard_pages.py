"""The dashboard through the app (TestClient): access control, each page's content, activation, escaping,
friendly 4xx pages. The platform comes from conftest.board (itemknn active, mf with a training log)."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterator

import pytest
from dashhelpers import EVIL_ITEM, EVIL_TITLE, Dashboard, ab_experiment
from fastapi.testclient import TestClient

from shoprec.api import create_app
from shoprec.dashboard.auth import COOKIE, LOGIN_RATE, SESSION_TTL_S, DashboardAuth

HTML = {"Accept": "text/html,application/xhtml+xml"}


@pytest.fixture
def client(board: Dashboard) -> Iterator[TestClient]:
    app = create_app(board.services.settings, board.services.config, services=board.services)
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as c:
        yield c


@pytest.fixture
def admin(client: TestClient, board: Dashboard) -> TestClient:
    """The client with the admin key as X-API-Key (a script)."""
    client.headers["X-API-Key"] = board.admin_key
    return client


def login(client: TestClient, key: str, next_path: str = "/dashboard") -> object:
    return client.post("/dashboard/login", data={"key": key, "next": next_path})


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, "page has no CSRF field"
    return found.group(1)


# ---------------------------------------------------------------- access
def test_browser_without_session_is_sent_to_login(client: TestClient) -> None:
    r = client.get("/dashboard/models?platform=shop", headers=HTML)
    assert r.status_code == 303
    assert r.headers["location"] == "/dashboard/login?next=%2Fdashboard%2Fmodels%3Fplatform%3Dshop"
    page = client.get(r.headers["location"])
    assert page.status_code == 200 and "Admin key" in page.text and 'type="password"' in page.text


def test_scripts_without_the_admin_key_get_401(client: TestClient, board: Dashboard) -> None:
    assert client.get("/dashboard").status_code == 401
    assert client.get("/dashboard", headers={"X-API-Key": "wrong"}).json()["error"] == "unauthorized"
    platform_key = client.get("/dashboard", headers={**HTML, "X-API-Key": board.shop.api_key})
    assert platform_key.status_code == 401  # a platform key is not the admin key, even from a browser
    assert client.get("/dashboard/users", headers={"X-API-Key": board.admin_key}).status_code == 200


def test_login_sets_a_signed_httponly_strict_cookie(client: TestClient, board: Dashboard) -> None:
    r = login(client, board.admin_key, "/dashboard/items?platform=shop")
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/items?platform=shop"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Path=/dashboard" in cookie and "Secure" not in cookie  # plain http here
    assert board.admin_key not in cookie
    page = client.get("/dashboard", headers=HTML)
    assert page.status_code == 200 and "Log out" in page.text


def test_login_over_https_marks_the_cookie_secure(board: Dashboard) -> None:
    app = create_app(board.services.settings, board.services.config, services=board.services)
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as c:
        assert "Secure" in login(c, board.admin_key).headers["set-cookie"]  # type: ignore[attr-defined]


def test_wrong_key_is_refused_without_a_cookie(client: TestClient) -> None:
    r = client.post("/dashboard/login", data={"key": "guess", "next": "/dashboard"})
    assert r.status_code == 401 and "Wrong admin key" in r.text and "set-cookie" not in r.headers


def test_without_an_admin_key_the_dashboard_is_off(board: Dashboard) -> None:
    services = dataclasses.replace(board.services, config=dataclasses.replace(board.services.config, admin_key=None))
    app = create_app(services.settings, services.config, services=services)
    with TestClient(app, follow_redirects=False) as c:
        r = c.post("/dashboard/login", data={"key": "", "next": "/dashboard"})
        assert r.status_code == 403 and "SHOPREC_ADMIN_KEY" in r.text and "set-cookie" not in r.headers
        assert c.get("/dashboard", headers={"X-API-Key": board.admin_key}).status_code == 401
        assert not DashboardAuth(services).valid_session(DashboardAuth(services).new_session())


def test_login_attempts_are_rate_limited(board: Dashboard) -> None:
    app = create_app(board.services.settings, board.services.config, services=board.services)
    with TestClient(app, follow_redirects=False, client=("203.0.113.7", 5000)) as c:
        answers = [c.post("/dashboard/login", data={"key": "guess"}).status_code for _ in range(LOGIN_RATE[0] + 1)]
        assert answers == [401] * LOGIN_RATE[0] + [429]
        blocked = login(c, board.admin_key)  # even the right key waits now
        assert blocked.status_code == 429 and "Too many login attempts" in blocked.text  # type: ignore[attr-defined]


def test_forged_or_expired_sessions_are_refused(client: TestClient, board: Dashboard) -> None:
    auth = DashboardAuth(board.services)
    good = auth.new_session()
    assert auth.valid_session(good)
    expiry, nonce, signature = good.split(".")
    forged = [f"{int(expiry) + 999}.{nonce}.{signature}", f"{expiry}.{nonce}.{'0' * 64}", board.admin_key, "",
              auth.new_session(now=time.time() - 2 * SESSION_TTL_S)]
    for token in forged:
        assert not auth.valid_session(token)
        client.cookies.set(COOKIE, token, path="/dashboard")
        assert client.get("/dashboard", headers=HTML).status_code == 303
        client.cookies.clear()


def test_login_never_redirects_off_the_dashboard(client: TestClient, board: Dashboard) -> None:
    for target in ("https://evil.example/", "//evil.example/dashboard", "/dashboard//evil.example", "/other"):
        assert login(client, board.admin_key, target).headers["location"] == "/dashboard"  # type: ignore[attr-defined]


def test_logout_needs_the_csrf_token_and_ends_the_session(client: TestClient, board: Dashboard) -> None:
    login(client, board.admin_key)
    token = csrf_of(client.get("/dashboard", headers=HTML).text)
    assert client.post("/dashboard/logout", data={"csrf": "bad"}, headers=HTML).status_code == 422
    r = client.post("/dashboard/logout", data={"csrf": token}, headers=HTML)
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/login"
    assert f'{COOKIE}=""' in r.headers["set-cookie"] or "Max-Age=0" in r.headers["set-cookie"]


# ---------------------------------------------------------------- pages
def test_overview_shows_counts_event_chart_and_request_latency(admin: TestClient, board: Dashboard) -> None:
    admin.get("/v1/health/live")
    html = admin.get("/dashboard?platform=shop").text
    assert f'id="n-users">{len(board.shop.user_ids):,}<' in html
    assert f'id="n-items">{len(board.shop.item_ids) + 1:,}<' in html  # the synthetic items and the markup one
    assert "Events per type over time" in html and "<polyline" in html
    assert "GET /v1/health/live" in html and "p95 ms" in html


def test_models_page_lists_metrics_curves_and_the_active_model(admin: TestClient, board: Dashboard) -> None:
    html = admin.get("/dashboard/models?platform=shop").text
    assert board.knn_id[:8] in html and board.mf_id[:8] in html
    assert "<th class=\"num\">NDCG@10</th>" in html  # the evaluated itemknn's offline metrics are columns
    active_row = re.search(r'<tr class="active">(.*?)</tr>', html, re.S)
    assert active_row and "itemknn" in active_row.group(1)
    assert 'aria-label="loss"' in html  # mf's training curve from its training log
    assert html.count('class="activate"') == 1  # only the inactive model has a button


def test_activate_from_the_page_needs_csrf_and_switches_the_model(client: TestClient, board: Dashboard) -> None:
    login(client, board.admin_key)
    url = f"/dashboard/models/{board.mf_id}/activate?platform=shop"
    try:
        refused = client.post(url, data={"csrf": "stale"}, headers=HTML)
        assert refused.status_code == 422 and "CSRF" in refused.text
        assert board.services.store.active("shop")[0] == board.knn_id  # type: ignore[index]
        token = csrf_of(client.get("/dashboard/models?platform=shop", headers=HTML).text)
        r = client.post(url, data={"csrf": token}, headers=HTML)
        assert r.status_code == 303
        assert board.services.store.active("shop")[0] == board.mf_id  # type: ignore[index]
        page = client.get(r.headers["location"], headers=HTML).text
        assert "is now active" in page
        assert re.search(r'<tr class="active">\s*<td>mf</td>', page)
    finally:
        board.services.models.activate("shop", board.knn_id)


def test_activate_by_script_and_unknown_model(admin: TestClient, board: Dashboard) -> None:
    r = admin.post(f"/dashboard/models/{board.knn_id}/activate?platform=shop")
    assert r.status_code == 303  # the header key needs no CSRF token
    missing = admin.post("/dashboard/models/feedface/activate?platform=shop")
    assert missing.status_code == 404 and "no model &#39;feedface&#39;" in missing.text


def test_user_page_shows_history_and_the_served_list_with_reasons(admin: TestClient, board: Dashboard) -> None:
    user = board.shop.user_ids[3]
    html = admin.get(f"/dashboard/users?platform=shop&user_id={user}").text
    served = board.services.recommend.recommend("shop", user, 10)
    shown = re.findall(r'<span class="muted">([^ ]+) · score', html)
    assert shown == [i.item_id for i in served.items]  # the recommend service's own ranking
    assert html.count('<div class="why">') == len(shown) and "Because" in html
    events = board.services.users.get("shop", user).history
    assert 'id="history"' in html and all(f"item_id={item}" in html for item in events)


def test_users_page_suggests_users_to_click(admin: TestClient, board: Dashboard) -> None:
    html = admin.get("/dashboard/users?platform=shop").text
    assert "Recently active users" in html
    assert f"user_id={board.shop.user_ids[0]}" in html  # the newest event (the markup item) was theirs


def test_item_page_shows_details_and_similar_items(admin: TestClient, board: Dashboard) -> None:
    item = board.shop.item_ids[0]
    html = admin.get(f"/dashboard/items?platform=shop&item_id={item}").text
    assert "Similar items" in html
    similar = board.services.recommend.similar("shop", item, 10)
    shown = re.findall(r'<span class="muted">([^ ]+) · score', html)
    assert shown == [i.item_id for i in similar.items]


def test_markup_in_titles_and_queries_is_escaped(admin: TestClient, board: Dashboard) -> None:
    item_page = admin.get(f"/dashboard/items?platform=shop&item_id={EVIL_ITEM}").text
    user_page = admin.get(f"/dashboard/users?platform=shop&user_id={board.shop.user_ids[0]}").text
    for html in (item_page, user_page):
        assert "<script>alert" not in html
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; Evil &amp; Co" in html
    assert EVIL_TITLE not in item_page
    probe = admin.get("/dashboard/users", params={"platform": "shop", "user_id": "<img src=x onerror=alert(1)>"})
    assert probe.status_code == 404 and "<img src=x" not in probe.text and "&lt;img src=x" in probe.text


@pytest.mark.parametrize(("path", "status", "text"), [
    ("/dashboard/users?platform=shop&user_id=nobody", 404, "no user &#39;nobody&#39;"),
    ("/dashboard/items?platform=shop&item_id=nothing", 404, "no item &#39;nothing&#39;"),
    ("/dashboard/users?platform=shop&user_id=%20", 422, "enter a user_id"),
    (f"/dashboard/items?platform=shop&item_id={'x' * 600}", 422, "longer than"),
    ("/dashboard/models?platform=nowhere", 404, "no platform &#39;nowhere&#39;"),
    ("/dashboard/experiments?platform=nowhere", 404, "no platform"),
])
def test_bad_lookups_get_a_friendly_4xx_page(admin: TestClient, path: str, status: int, text: str) -> None:
    r = admin.get(path)
    assert r.status_code == status
    assert r.headers["content-type"].startswith("text/html") and text in r.text


def test_experiments_page_empty_and_with_results(admin: TestClient, board: Dashboard) -> None:
    assert "No experiments" in admin.get("/dashboard/experiments?platform=shop").text
    exp = ab_experiment(board.services, "ab-shop")
    results = board.services.experiments.results("ab-shop", exp.experiment_id)
    html = admin.get("/dashboard/experiments?platform=ab-shop").text
    assert "popular-vs-knn" in html and exp.experiment_id[:8] in html and "running" in html
    for v in results.variants:  # the service's figures, as percentages with their intervals
        ctr, (low, high) = v.ctr.value, v.ctr.ci95
        assert f"<td>{v.name}</td>" in html and f"{100 * ctr:.2f}% [{100 * low:.2f}, {100 * high:.2f}]" in html
    assert results.variants[1].clicks > 0
    assert "CTR with 95% interval" in html and "Conversion with 95% interval" in html
    before = [v.impressions for v in results.variants]
    user_page = admin.get("/dashboard/users?platform=ab-shop&user_id=u00001").text
    assert re.search(r'id="variant">(control|knn)<', user_page)  # the list of the user's variant...
    after = [v.impressions for v in board.services.experiments.results("ab-shop", exp.experiment_id).variants]
    assert after == before  # ...but an operator's look is no impression


def test_pages_are_self_contained_with_a_strict_csp(admin: TestClient) -> None:
    for path in ("/dashboard?platform=shop", "/dashboard/models?platform=shop", "/dashboard/users?platform=shop"):
        r = admin.get(path)
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert not re.search(r'(src|href)="(https?:)?//', r.text)  # nothing from another host: works offline
    assert admin.get("/dashboard/static/dashboard.css").status_code == 200
    assert admin.get("/dashboard/static/dashboard.js").status_code == 200
