"""End to end: `shoprec serve --workers 2` on loopback. Events change the next list whichever worker
answers, activation switches every worker without a failed request, and the CLI prints JSON on stdout."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from shoprec.service.testing import local_services, synthetic_platform

pytestmark = pytest.mark.slow
REDIS_URL = "redis://127.0.0.1:6379/0"


def _shoprec(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", "from shoprec.cli.main import main; main()", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)


def _redis_up() -> bool:
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except Exception:
        return False
    return True


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, list[str], dict[str, str]]]:
    root = tmp_path_factory.mktemp("served")
    svc = local_services(root)
    shop = synthetic_platform(svc, "shop", users=60, items=40, model=None)
    svc.close()
    env = {**os.environ, "SHOPREC_DATABASE_URL": f"sqlite:///{root / 'shoprec.db'}",
           "SHOPREC_MODEL_DIR": str(root / "models")}
    env.pop("SHOPREC_REDIS_URL", None)
    if _redis_up():  # the workers share histories through Redis, under a key prefix of their own
        env["SHOPREC_REDIS_URL"] = REDIS_URL
        env["SHOPREC_REDIS_PREFIX"] = f"shoprec-test-{uuid.uuid4().hex[:10]}:"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-c", "from shoprec.cli.main import main; main()", "serve", "--port", str(port),
           "--workers", "2"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/v1/health/live", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        else:
            pytest.fail("shoprec serve did not start")
        yield base, shop.api_key, shop.item_ids, env
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_cli_train_prints_json_and_the_served_list_follows(server: tuple[str, str, list[str], dict[str, str]]) -> None:
    base, key, items, env = server
    created = _shoprec("platform", "create", "second", "--json", env=env)
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["platform"] == "second"
    first = _shoprec("train", "--platform", "shop", "--model", "popular", "--activate", env=env)
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    assert result["model"] == "popular" and "NDCG@10" in result["metrics"]
    assert "reading platform" in first.stderr  # progress on stderr, JSON alone on stdout
    headers = {"X-API-Key": key}
    with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
        deadline = time.monotonic() + 10
        while client.get("/v1/users/nobody/recommendations").json()["model"] != "popular":
            assert time.monotonic() < deadline, "workers did not pick up the activated model"
            time.sleep(0.1)
        second = _shoprec("train", "--platform", "shop", "--model", "itemknn", env=env)
        new_id = json.loads(second.stdout)["model_id"]
        user = f"visitor-{uuid.uuid4().hex[:6]}"
        statuses, models = [], set()
        assert client.post(f"/v1/models/{new_id}/activate").status_code == 200
        for _ in range(60):  # requests spread over both workers while they switch
            resp = client.get(f"/v1/users/{user}/recommendations")
            statuses.append(resp.status_code)
            models.add(resp.json()["model"])
            time.sleep(0.02)
        assert set(statuses) == {200} and "itemknn" in models
        before = [i["item_id"] for i in client.get(f"/v1/users/{user}/recommendations").json()["items"]]
        assert client.post("/v1/events", json=[{"user_id": user, "item_id": items[3], "type": "view"}]
                           ).status_code == 200
        t0 = time.monotonic()
        while True:
            answer = client.get(f"/v1/users/{user}/recommendations").json()
            if [i["item_id"] for i in answer["items"]] != before:
                break
            assert time.monotonic() - t0 < 1.0, "an event did not change the list within 1 s"
            time.sleep(0.01)
        assert answer["items"][0]["reason"]["level"] == "session"
