"""The Jobs page: a platform's jobs with status, attempts, worker, times and error; Cancel needs the CSRF token."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from dashhelpers import Dashboard
from fastapi.testclient import TestClient

from shoprec.api import create_app

HTML = {"Accept": "text/html,application/xhtml+xml"}


@pytest.fixture
def client(board: Dashboard) -> Iterator[TestClient]:
    app = create_app(board.services.settings, board.services.config, services=board.services)
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as c:
        yield c


def test_jobs_page_lists_jobs_and_cancels_with_csrf(client: TestClient, board: Dashboard) -> None:
    jobs = board.services.jobs
    job = jobs.submit_training("shop", "popular", {}, activate=False, actor="test")
    assert client.get("/dashboard/jobs?platform=shop", headers=HTML).status_code == 303  # login first
    client.post("/dashboard/login", data={"key": board.admin_key, "next": "/dashboard/jobs"})
    page = client.get("/dashboard/jobs?platform=shop", headers=HTML)
    assert page.status_code == 200 and 'href="/dashboard/jobs' in page.text
    row = re.search(rf'<tr class="job status-queued" data-job="{job.job_id}">(.*?)</tr>', page.text, re.S)
    assert row and "popular" in row.group(1) and 'class="cancel"' in row.group(1)
    url = f"/dashboard/jobs/{job.job_id}/cancel?platform=shop"
    refused = client.post(url, data={"csrf": "stale"}, headers=HTML)
    assert refused.status_code == 422 and "CSRF" in refused.text
    assert jobs.get("shop", job.job_id).status == "queued"
    token = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert token
    done = client.post(url, data={"csrf": token.group(1)}, headers=HTML)
    assert done.status_code == 303 and jobs.get("shop", job.job_id).status == "cancelled"
    after = client.get(done.headers["location"], headers=HTML).text
    assert f"Job {job.job_id} cancelled." in after
    assert re.search(rf'data-job="{job.job_id}">.*?status-cancelled.*?</tr>', after, re.S)
    filtered = client.get("/dashboard/jobs?platform=shop&status=queued", headers=HTML).text
    assert job.job_id not in filtered
    again = client.post(url, data={"csrf": token.group(1)}, headers=HTML)
    assert again.status_code == 422 and "cancelled already" in again.text
    assert client.get("/dashboard/jobs?platform=nowhere", headers=HTML).status_code == 404
    assert client.get("/dashboard/jobs?platform=shop&status=%3Cb%3E", headers=HTML).status_code == 422
