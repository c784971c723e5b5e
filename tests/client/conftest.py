"""A live `shoprec serve` process for the client tests (one per test session of this folder): a SQLite
database with platform "shop" (synthetic data, an active itemknn model and a second, inactive popular model),
the admin key of shoprec.service.testing, and CORS open to the origin of the browser test's page server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from clienthelpers import Live, free_port

from shoprec.service.testing import TEST_ADMIN_KEY, local_services, synthetic_platform


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("client-live")
    svc = local_services(root)
    shop = synthetic_platform(svc, "shop", users=40, items=30)
    popular = svc.store.train("shop", "popular", None, activate=False, evaluate=False)
    svc.close()
    page_port, port = free_port(), free_port()
    env = {**os.environ, "SHOPREC_DATABASE_URL": f"sqlite:///{root / 'shoprec.db'}",
           "SHOPREC_MODEL_DIR": str(root / "models"), "SHOPREC_CACHE_DIR": str(root / "cache"),
           "SHOPREC_ADMIN_KEY": TEST_ADMIN_KEY, "SHOPREC_CORS_ORIGINS": f"http://127.0.0.1:{page_port}",
           "SHOPREC_JOBS_EMBEDDED_WORKER": "0"}  # no job worker: a queued job stays queued (the jobs test cancels it)
    env.pop("SHOPREC_REDIS_URL", None)
    env.pop("SHOPREC_CONFIG", None)
    cmd = [sys.executable, "-c", "from shoprec.cli.main import main; main()", "serve", "--port", str(port),
           "--workers", "1"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"shoprec serve exited: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                if httpx.get(base + "/v1/health/live", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        else:
            pytest.fail("shoprec serve did not start")
        yield Live(base, shop.api_key, TEST_ADMIN_KEY, shop.item_ids, shop.user_ids, popular.model_id, page_port,
                   root)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
