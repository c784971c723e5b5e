"""The storefront tracker (/static/shoprec-tracker.js) in a real headless Chromium: a page served by a tiny
HTTP server of another origin loads it from the live API, sends a page view, an impression of a served list,
a click, an add-to-cart and a purchase with a key that holds only the `events` scope; the first batch's answer
is lost on the way back (DroppingProxy) and the tracker sends it again with the same Idempotency-Key and
event_ids: each event is in the database once. A page whose API is unreachable goes on working.

Skipped, saying why, without /usr/bin/chromium, /usr/bin/chromedriver or selenium (as the dashboard's browser
test: `apt-get install -y chromium chromium-driver`)."""

from __future__ import annotations

import functools
import http.server
import json
import os
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from clienthelpers import DroppingProxy, Live, free_port

from shoprec.client import Client

CHROMIUM = Path(os.environ.get("SHOPREC_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("SHOPREC_CHROMEDRIVER", "/usr/bin/chromedriver"))
selenium = pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[dev]')")
if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip(f"the tracker's browser test needs {CHROMIUM} and {CHROMEDRIVER} "
                "(apt-get install -y chromium chromium-driver)", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

PAGE = """<!doctype html><html><head><title>shop</title>
<script>
window.shoprecQueue = window.shoprecQueue || [];
function shoprec() { shoprecQueue.push(arguments); }
window.trackerErrors = [];
shoprec("init", {endpoint: %(endpoint)s, apiKey: %(key)s, userId: %(user)s, flushMs: 100, backoffMs: 100,
                 maxRetries: %(retries)s, onError: function (e) { window.trackerErrors.push(String(e)); }});
if (%(send)s) {
  shoprec("pageView", %(viewed)s);
  shoprec("impression", %(rec)s, %(shown)s);
  shoprec("click", %(clicked)s, {recommendationId: %(rec)s});
  shoprec("addToCart", %(clicked)s);
  shoprec("purchase", %(clicked)s, {value: 19.9});
}
</script>
<script src="%(api)s/static/shoprec-tracker.js" async></script>
</head><body><p id="after">the page's own script ran</p>
<script>document.title = "ready";</script></body></html>"""


@pytest.fixture(scope="module")
def pages(live: Live, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A static HTTP server on live.page_port (the origin the API's CORS setting allows) serving a folder."""
    root = tmp_path_factory.mktemp("pages")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", live.page_port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root
    server.shutdown()


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _page(root: Path, name: str, send: bool = True, **values: Any) -> str:
    values = {"send": send, "viewed": "i", "rec": "r", "shown": ["a", "b"], "clicked": "a", **values}
    text = PAGE % {k: (v if k in ("api", "retries") else json.dumps(v)) for k, v in values.items()}
    (root / name).write_text(text)
    return name


def _export(live: Live, user: str) -> Counter[tuple[str, str]]:
    with Client(live.base, live.api_key) as api:
        return Counter((e["item_id"], e["type"]) for e in api.export_user(user)["events"])


def _stats(browser: WebDriver) -> dict[str, int]:
    stats: dict[str, int] = browser.execute_script(
        "return window.shoprecTracker && window.shoprecTracker.tracker ? window.shoprecTracker.tracker.stats : {}")
    return stats


def test_tracker_events_arrive_once_each_after_a_lost_answer(live: Live, pages: Path, browser: WebDriver) -> None:
    proxy = DroppingProxy(urlparse(live.base).port or 80, b"POST /v1/events", drops=1)
    user = f"visitor-{uuid.uuid4().hex[:8]}"
    with Client(live.base, live.api_key) as api:
        served = api.recommend(live.user_ids[1], k=3)
        shown = [i.item_id for i in served.items]
        key = api.create_key(["events"], name="tracker-test").api_key
        name = _page(pages, "shop.html", endpoint=proxy.url, key=key, user=user, retries=5, viewed=live.item_ids[9],
                     rec=served.recommendation_id, shown=shown, clicked=shown[0], api=live.base)
        try:
            browser.get(f"http://127.0.0.1:{live.page_port}/{name}")
            assert browser.title == "ready"
            WebDriverWait(browser, 30).until(lambda d: _stats(d).get("sent") == 7)
        finally:
            proxy.close()
        stats = _stats(browser)
        assert proxy.dropped == 1 and stats["retries"] >= 1, stats  # the first answer was lost, the batch resent
        assert stats["failed"] == 0 and stats["rejected"] == 0
        events = api.export_user(user)["events"]
    got = Counter((e["item_id"], e["type"]) for e in events)
    expected = Counter({(live.item_ids[9], "view"): 1, (shown[0], "click"): 1, (shown[0], "cart"): 1,
                        (shown[0], "purchase"): 1, **{(i, "impression"): 1 for i in shown}})
    assert got == expected
    impressions = [e for e in events if e["type"] == "impression"]
    assert {json.loads(e["context"])["recommendation_id"] if isinstance(e["context"], str)
            else e["context"]["recommendation_id"] for e in impressions} == {served.recommendation_id}


def test_an_unreachable_api_never_breaks_the_page(live: Live, pages: Path, browser: WebDriver) -> None:
    name = _page(pages, "offline.html", endpoint=f"http://127.0.0.1:{free_port()}", key="sk_x", user="someone",
                 retries=1, api=live.base)
    browser.get(f"http://127.0.0.1:{live.page_port}/{name}")
    assert browser.title == "ready"
    WebDriverWait(browser, 30).until(lambda d: _stats(d).get("failed") == 6)
    assert browser.find_element("id", "after").text == "the page's own script ran"
    assert browser.execute_script("return window.trackerErrors.length") >= 1  # counted, passed to onError
    logs = [e for e in browser.get_log("browser") if "Uncaught" in e.get("message", "")]
    assert logs == []


def test_a_batch_left_unsent_is_sent_by_the_next_page(live: Live, pages: Path, browser: WebDriver) -> None:
    """Page A cannot reach its endpoint (nothing listens there yet): its batch stays in localStorage. Page B,
    once the endpoint answers, sends it again with the same key and event_ids; page C finds nothing left."""
    port, user = free_port(), f"visitor-{uuid.uuid4().hex[:8]}"
    with Client(live.base, live.api_key) as api:
        key = api.create_key(["events"], name="tracker-resend").api_key
    common = {"endpoint": f"http://127.0.0.1:{port}", "key": key, "user": user, "api": live.base,
              "viewed": live.item_ids[5], "shown": live.item_ids[6:8], "clicked": live.item_ids[6]}
    browser.get(f"http://127.0.0.1:{live.page_port}/{_page(pages, 'a.html', retries=0, **common)}")
    WebDriverWait(browser, 30).until(lambda d: _stats(d).get("failed") == 6)
    kept = browser.execute_script("return JSON.parse(localStorage.getItem('shoprec_unsent'))")
    assert [len(b["events"]) for b in kept if b["endpoint"] == common["endpoint"]] == [6]
    proxy = DroppingProxy(urlparse(live.base).port or 80, b"-", drops=0, port=port)  # the endpoint answers now
    try:
        browser.get(f"http://127.0.0.1:{live.page_port}/{_page(pages, 'b.html', send=False, retries=3, **common)}")
        WebDriverWait(browser, 30).until(lambda d: _stats(d).get("sent") == 6)
        left = browser.execute_script("return JSON.parse(localStorage.getItem('shoprec_unsent'))")
        assert [b for b in left if b["endpoint"] == common["endpoint"]] == []  # answered: forgotten
        browser.get(f"http://127.0.0.1:{live.page_port}/{_page(pages, 'c.html', send=False, retries=3, **common)}")
        assert browser.title == "ready" and _stats(browser).get("queued") == 0
    finally:
        proxy.close()
    expected = Counter({(live.item_ids[5], "view"): 1, (live.item_ids[6], "click"): 1, (live.item_ids[6], "cart"): 1,
                        (live.item_ids[6], "purchase"): 1, (live.item_ids[6], "impression"): 1,
                        (live.item_ids[7], "impression"): 1})
    assert _export(live, user) == expected
