"""The durable job queue: the `jobs` table as a queue that workers on any number of machines share.

Written by hand rather than with a queue library: procrastinate is PostgreSQL-only, rq / arq / dramatiq need
Redis or RabbitMQ, and none knows our rules (at most one running job per platform, a per-platform queue cap,
parameter caps, the tenant scoping of every row); this module needs nothing but the database the deployment
already has, and behaves the same on SQLite, PostgreSQL and MySQL/MariaDB.

How it stays correct across processes and machines:
- Every decision that depends on other jobs of a platform (submit under the cap, claim while no job of the
  platform runs) first *locks the platform*: a no-op UPDATE of its `platforms` row in the same transaction
  (`JobRepo.lock_platform`). On PostgreSQL and MySQL that is a row lock, so two workers deciding for the same
  platform take turns and the second one then sees the first one's committed claim; on SQLite it takes the
  database's single write lock before the transaction reads anything, so its reads are the newest.
- A claimed job is `running` under a lease (`lease_until`) its worker renews (`heartbeat`); every state change
  of a running job is conditional on `worker = this worker AND status = 'running'` (rowcount checked), so a
  worker that lost its job (its lease ran out and another worker took over) changes nothing.
- A running job whose lease ran out is requeued (attempts count the claims) or, after `max_attempts`, failed
  with the reason (`expire_leases`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any, cast

import sqlalchemy as sa

from shoprec.storage import tables as T
from shoprec.storage.repo import Executor, ScopedRepo

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
ACTIVE = ("queued", "running")  # what counts against a platform's queue cap
FINISHED = ("succeeded", "failed", "cancelled")
MAX_ERROR_LENGTH = 4000
MAX_PROGRESS_LENGTH = 500

_J = T.jobs
COLUMNS = [_J.c.job_id, _J.c.kind, _J.c.status, _J.c.params, _J.c.result, _J.c.error, _J.c.created_at,
           _J.c.updated_at, _J.c.attempts, _J.c.worker, _J.c.lease_until, _J.c.started_at, _J.c.finished_at,
           _J.c.cancel_requested, _J.c.progress, _J.c.actor]


def _clip(text: str | None, limit: int) -> str | None:
    return text if text is None or len(text) <= limit else text[:limit - 3] + "..."


def _count(conn: Executor, statement: sa.Update) -> int:
    """Rows an UPDATE changed (matched, on MySQL: SQLAlchemy asks for found rows)."""
    return int(cast("sa.CursorResult[Any]", conn.execute(statement)).rowcount)


def _plain(row: Any) -> dict[str, Any]:
    out = dict(row._mapping)
    out["cancel_requested"] = bool(out.get("cancel_requested"))
    out["attempts"] = int(out.get("attempts") or 0)
    return out


class JobRepo(ScopedRepo):
    """The jobs of ONE platform, over a connection (one transaction)."""

    def lock_platform(self) -> None:
        """Serialise this transaction with every other job decision of the platform (see the module doc)."""
        p = T.platforms
        self.conn.execute(sa.update(p).where(p.c.id == self.platform_id).values(name=p.c.name))

    def count_active(self) -> int:
        """Jobs queued or running."""
        return int(self.conn.execute(self._scope(_J, sa.func.count()).where(_J.c.status.in_(ACTIVE))).scalar() or 0)

    def add_job(self, job_id: str, kind: str, params: dict[str, Any], now: float, actor: str | None = None) -> None:
        self.conn.execute(sa.insert(_J), [{
            "platform_id": self.platform_id, "job_id": job_id, "kind": kind, "status": "queued", "params": params,
            "result": None, "error": None, "created_at": now, "updated_at": now, "attempts": 0, "worker": None,
            "lease_until": None, "started_at": None, "finished_at": None, "cancel_requested": False,
            "progress": None, "actor": actor}])

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        row = self.conn.execute(self._scope(_J, *COLUMNS).where(_J.c.job_id == job_id)).first()
        return None if row is None else _plain(row)

    def list_jobs(self, statuses: Iterable[str] | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The newest `limit` jobs (newest first), of these statuses when given."""
        query = self._scope(_J, *COLUMNS)
        if statuses is not None:
            query = query.where(_J.c.status.in_(sorted(statuses)))
        return [_plain(r) for r in self.conn.execute(query.order_by(_J.c.id.desc()).limit(limit))]

    def cancel(self, job_id: str, now: float) -> bool:
        """A queued job becomes cancelled at once; a running one is flagged for its worker to stop. False when
        the job is not queued or running (any more)."""
        cancelled = _count(self.conn, self._update(_J).where(_J.c.job_id == job_id, _J.c.status == "queued").values(
            status="cancelled", cancel_requested=True, finished_at=now, updated_at=now))
        if cancelled == 1:
            return True
        return _count(self.conn, self._update(_J).where(_J.c.job_id == job_id, _J.c.status == "running").values(
            cancel_requested=True, updated_at=now)) == 1

    def running_job(self) -> str | None:
        row = self.conn.execute(self._scope(_J, _J.c.job_id).where(_J.c.status == "running").limit(1)).first()
        return None if row is None else str(row[0])

    def claim(self, job_id: str, worker_id: str, now: float, lease_s: float) -> bool:
        """Take queued job `job_id` (call after lock_platform and running_job() is None)."""
        return _count(self.conn, self._update(_J).where(_J.c.job_id == job_id, _J.c.status == "queued").values(
            status="running", worker=worker_id, attempts=_J.c.attempts + 1, lease_until=now + lease_s,
            started_at=now, updated_at=now, progress=None)) == 1


# ------------------------------------------------------------------------- the worker's side (every platform)
def queued_candidates(conn: Executor, limit: int = 20, kinds: Collection[str] | None = None
                      ) -> list[tuple[int, str, str]]:
    """(platform key, platform name, job id) of the oldest queued job (of `kinds`) of each platform with no
    running job, oldest first (a hint: the claim re-checks under the platform's lock)."""
    p = T.platforms
    running = sa.select(_J.c.platform_id).where(_J.c.status == "running")
    oldest = (sa.select(_J.c.platform_id, sa.func.min(_J.c.id).label("first_id"))
              .where(_J.c.status == "queued", _J.c.platform_id.not_in(running)))
    if kinds is not None:
        oldest = oldest.where(_J.c.kind.in_(sorted(kinds)))
    first = oldest.group_by(_J.c.platform_id).subquery()
    query = (sa.select(p.c.id, p.c.name, _J.c.job_id)
             .select_from(first.join(_J, _J.c.id == first.c.first_id).join(p, p.c.id == first.c.platform_id))
             .order_by(_J.c.id).limit(limit))
    return [(int(pid), str(name), str(job_id)) for pid, name, job_id in conn.execute(query)]


def expired_jobs(conn: Executor, now: float) -> list[tuple[int, str, str, int, str | None, bool]]:
    """(platform key, platform name, job id, attempts, worker, cancel requested) of running jobs whose lease
    ran out."""
    p = T.platforms
    query = (sa.select(p.c.id, p.c.name, _J.c.job_id, _J.c.attempts, _J.c.worker, _J.c.cancel_requested)
             .select_from(_J.join(p, p.c.id == _J.c.platform_id))
             .where(_J.c.status == "running", _J.c.lease_until < now))
    return [(int(a), str(b), str(c), int(d or 0), None if e is None else str(e), bool(f))
            for a, b, c, d, e, f in conn.execute(query)]


def take_over(conn: Executor, job_id: str, worker: str | None, now: float, *, status: str,
              error: str | None) -> bool:
    """Requeue (status 'queued') or end (failed / cancelled) a running job whose lease ran out, unless its
    worker renewed the lease meanwhile."""
    values: dict[str, Any] = {"status": status, "updated_at": now, "lease_until": None,
                              "error": _clip(error, MAX_ERROR_LENGTH)}
    if status != "queued":
        values["finished_at"] = now
    return _count(conn, sa.update(_J).where(_J.c.job_id == job_id, _J.c.status == "running",
                                            _J.c.lease_until < now, _J.c.worker == worker).values(**values)) == 1


def _mine(job_id: str, worker_id: str) -> sa.Update:
    return sa.update(_J).where(_J.c.job_id == job_id, _J.c.worker == worker_id, _J.c.status == "running")


def heartbeat(conn: Executor, job_id: str, worker_id: str, now: float, lease_s: float,
              progress: str | None = None) -> tuple[bool, bool]:
    """Renew the lease of a job this worker runs: (still this worker's, cancel requested)."""
    values: dict[str, Any] = {"lease_until": now + lease_s}
    if progress is not None:
        values["progress"] = _clip(progress, MAX_PROGRESS_LENGTH)
    if _count(conn, _mine(job_id, worker_id).values(**values)) != 1:
        return False, False
    flag = conn.execute(sa.select(_J.c.cancel_requested).where(_J.c.job_id == job_id)).scalar()
    return True, bool(flag)


def finish(conn: Executor, job_id: str, worker_id: str, now: float, status: str, *,
           result: dict[str, Any] | None = None, error: str | None = None) -> bool:
    """End a job this worker runs: succeeded (with its result), failed or cancelled (with the reason)."""
    assert status in FINISHED, status
    return _count(conn, _mine(job_id, worker_id).values(
        status=status, result=result, error=_clip(error, MAX_ERROR_LENGTH), finished_at=now, updated_at=now,
        lease_until=None)) == 1


def requeue(conn: Executor, job_id: str, worker_id: str, now: float, *, error: str | None = None,
            count_attempt: bool = True) -> bool:
    """Put a job this worker runs back in the queue: after a crashed attempt (`error`), or unstarted work
    given back on shutdown (count_attempt=False: the attempt is not counted)."""
    values: dict[str, Any] = {"status": "queued", "lease_until": None, "updated_at": now}
    if error is not None:
        values["error"] = _clip(error, MAX_ERROR_LENGTH)
    if not count_attempt:
        values["attempts"] = _J.c.attempts - 1
    return _count(conn, _mine(job_id, worker_id).values(**values)) == 1
