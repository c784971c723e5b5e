"""The Jobs page: a platform's durable jobs (training) with status, attempts, worker, times and error, and a
Cancel button for queued and running ones (JobService.cancel, audited as the admin)."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from shoprec.dashboard.auth import CsrfError
from shoprec.dashboard.routes import AccessDep, AuthDep, _form, error_page, page_context, render, services_of
from shoprec.errors import ShoprecError
from shoprec.service.errors import NotFound
from shoprec.service.platform import ADMIN_ACTOR

router = APIRouter(prefix="/dashboard", include_in_schema=False)
SHOWN = 100  # newest jobs listed
STATUSES = ("", "queued", "running", "succeeded", "failed", "cancelled")  # the filter's choices ("": all)


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request, access: AccessDep, platform: str | None = None, status: str = "",
              message: str = "") -> HTMLResponse:
    try:
        ctx = page_context(request, access, "jobs", platform)
        chosen = status.strip().lower()
        rows = (services_of(request).jobs.list_jobs(ctx["platform"], chosen or None, SHOWN)
                if ctx["platform"] else [])
    except ShoprecError as exc:
        return error_page(request, exc)
    return render(request, "jobs.html", **ctx, jobs=rows, shown_status=chosen, statuses=STATUSES, message=message[:200])


@router.post("/jobs/{job_id}/cancel")
async def cancel_job(request: Request, job_id: str, auth: AuthDep, access: AccessDep,
                     platform: str | None = None) -> Response:
    form = await _form(request)
    try:
        auth.check_csrf(access, form.get("csrf"))
        ctx = await run_in_threadpool(page_context, request, access, "jobs", platform)
        if ctx["platform"] is None:
            raise NotFound("no platform to cancel a job on")
        job = await run_in_threadpool(services_of(request).jobs.cancel, ctx["platform"], job_id, ADMIN_ACTOR)
    except (ShoprecError, CsrfError) as exc:
        return error_page(request, exc)
    note = (f"Job {job_id} cancelled." if job.status == "cancelled"
            else f"Job {job_id} is running: its worker stops it within a few seconds.")
    return RedirectResponse(f"/dashboard/jobs?platform={quote(ctx['platform'], safe='')}"
                            f"&message={quote(note, safe='')}", status_code=303)
