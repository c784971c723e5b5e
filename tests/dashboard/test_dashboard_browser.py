"""The dashboard in a real headless Chromium (Debian's chromium + chromedriver, driven by Selenium; no
browser download): log in through the form, open every page, click through to a user's recommendations
and an item, activate a model, switch platform, read an experiment's results, and save a screenshot
of each page.

Screenshots go to $SHOPREC_ARTIFACTS/dashboard (CI keeps them) or to the test's tmp_path; the path is
printed. Skipped, saying why, when /usr/bin/chromium, /usr/bin/chromedriver or selenium is missing
(`apt-get install -y chromium chromium-driver`, as .ci/run does).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from dashhelpers import Dashboard, ab_experiment

from shoprec.api import create_app

CHROMIUM = Path(os.environ.get("SHOPREC_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("SHOPREC_CHROMEDRIVER", "/usr/bin/chromedriver"))
selenium = pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[dev]')")
if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip(f"headless browser test needs {CHROMIUM} and {CHROMEDRIVER} "
                "(apt-get install -y chromium chromium-driver)", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(board: Dashboard) -> Iterator[str]:
    """The app over the board's services, served by uvicorn in a thread; yields its base URL."""
    app = create_app(board.services.settings, board.services.config, services=board.services)
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start within 30 s")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1000", "--lang=en-US"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = os.environ.get("SHOPREC_ARTIFACTS")
    path = Path(root) / "dashboard" if root else tmp_path_factory.mktemp("dashboard-screenshots")
    path.mkdir(parents=True, exist_ok=True)
    print(f"\ndashboard screenshots: {path}")
    return path


class Pages:
    """Small helpers over the driver: wait for an element, read visible text, take a full-page screenshot."""

    def __init__(self, driver: WebDriver, base: str, artifacts: Path) -> None:
        self.driver, self.base, self.artifacts = driver, base, artifacts

    def wait(self, css: str, timeout: float = 30) -> Any:
        return WebDriverWait(self.driver, timeout).until(
            expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, css)))

    def text(self, css: str = "main") -> str:
        return str(self.driver.find_element(By.CSS_SELECTOR, css).text)

    def shot(self, name: str) -> Path:
        height = int(self.driver.execute_script("return document.documentElement.scrollHeight"))
        self.driver.set_window_size(1280, min(max(height + 40, 800), 6000))
        path = self.artifacts / f"{name}.png"
        self.driver.save_screenshot(str(path))
        assert path.stat().st_size > 10_000, f"screenshot {path} looks empty"
        return path


def test_dashboard_in_headless_chromium(server: str, browser: WebDriver, artifacts: Path, board: Dashboard) -> None:
    pages = Pages(browser, server, artifacts)
    browser.get(f"{server}/dashboard/models?platform=shop")
    assert "/dashboard/login" in browser.current_url  # no session yet: the login page
    pages.wait("#key").send_keys(board.admin_key)
    pages.shot("01-login")
    browser.find_element(By.ID, "login").click()

    pages.wait("#models")  # back where we wanted to go
    assert "itemknn" in pages.text("#models") and "mf" in pages.text("#models")
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.chart polyline")) >= 1  # mf's training curve
    pages.shot("02-models")

    browser.find_element(By.CSS_SELECTOR, f'button.activate[data-model="{board.mf_id}"]').click()
    assert "is now active" in pages.wait(".notice").text
    assert board.services.store.active("shop")[0] == board.mf_id  # type: ignore[index]
    board.services.models.activate("shop", board.knn_id)

    browser.find_element(By.LINK_TEXT, "Overview").click()
    assert pages.wait("#n-users").text == str(len(board.shop.user_ids))
    assert "Events per type over time" in pages.text()
    pages.shot("03-overview")

    browser.find_element(By.LINK_TEXT, "Experiments").click()
    assert "No experiments" in pages.wait("#no-experiments").text
    pages.shot("04-experiments")

    browser.find_element(By.LINK_TEXT, "Users").click()
    first = pages.wait("#suggestions a")
    user = first.text
    first.click()  # click through to the user's recommendations
    recs = pages.wait("#recommendations")
    items = recs.find_elements(By.CSS_SELECTOR, "li")
    assert len(items) == 10 and "Recommendations for " + user in pages.text()
    assert all(li.find_element(By.CSS_SELECTOR, ".why").text for li in items)  # every item says why
    assert "<script>" in pages.text("#history")  # the markup title is shown as text, not run
    pages.shot("05-user")

    title = items[0].find_element(By.TAG_NAME, "a").text
    items[0].find_element(By.TAG_NAME, "a").click()
    assert pages.wait("#item-title").text == title
    assert len(pages.wait("#similar").find_elements(By.CSS_SELECTOR, "li")) == 10
    pages.shot("06-item")

    ab_experiment(board.services, "ab-browser")
    browser.find_element(By.LINK_TEXT, "Experiments").click()
    Select(pages.wait("#platform")).select_by_visible_text("ab-browser")  # the selector submits itself
    WebDriverWait(browser, 30).until(lambda d: "platform=ab-browser" in d.current_url)
    experiment = pages.wait(".experiment")
    assert "popular-vs-knn" in experiment.text and "running" in experiment.text
    assert len(experiment.find_elements(By.CSS_SELECTOR, "svg.chart circle")) == 4  # 2 variants x CTR, conv.
    pages.shot("07-experiment")

    browser.find_element(By.CSS_SELECTOR, ".logout button").click()
    pages.wait("#key")
    browser.get(f"{server}/dashboard")
    assert "/dashboard/login" in browser.current_url  # logged out

