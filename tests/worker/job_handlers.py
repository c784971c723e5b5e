"""Job kinds for the worker tests (module-level: a job's child process imports them by name)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Mapping
from typing import Any

from shoprec.errors import DataError
from shoprec.service import Services


def sleep_job(services: Services, platform: str, params: dict[str, Any], progress: Callable[[str], None]
              ) -> dict[str, Any]:
    """Sleep `steps` x `step_s` seconds, reporting each step."""
    steps = int(params.get("steps", 10))
    for i in range(steps):
        progress(f"step {i + 1}/{steps}")
        time.sleep(float(params.get("step_s", 0.1)))
    return {"steps": steps, "pid": os.getpid()}


def crash_job(services: Services, platform: str, params: dict[str, Any], progress: Callable[[str], None]
              ) -> dict[str, Any]:
    """Die the way the OOM killer kills."""
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


def fail_job(services: Services, platform: str, params: dict[str, Any], progress: Callable[[str], None]
             ) -> dict[str, Any]:
    raise DataError("platform has no events of type 'purchase'")


HANDLERS = {"sleep": sleep_job, "crash": crash_job, "fail": fail_job}


def accept(params: Mapping[str, Any], limits: Mapping[str, float]) -> dict[str, Any]:
    return dict(params)


def register(services: Services) -> None:
    for kind in HANDLERS:
        services.jobs.register_kind(kind, accept)
