"""The process a job runs in (multiprocessing "spawn": a fresh interpreter, no state shared with the worker).

It dies with its parent: Linux delivers SIGKILL when the parent dies (prctl PR_SET_PDEATHSIG), and a watchdog
thread exits when the parent pid changes (other systems, and the moment between start and prctl). It talks to
the worker over a one-way pipe: ("progress", text)* then ("ok", result) or ("error", message).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from shoprec.errors import ShoprecError
from shoprec.logs import bind_context, configure_logging
from shoprec.settings import Settings, use_settings

PR_SET_PDEATHSIG = 1
WATCHDOG_S = 0.5


def die_with_parent(parent_pid: int, on_orphan: Callable[[], None] | None = None, *,
                    signum: int = signal.SIGKILL) -> None:
    """Leave when process `parent_pid` (this process's parent) is gone: the kernel sends `signum` (Linux),
    and a watchdog thread calls `on_orphan` (default: exit at once) when the parent pid changes."""
    leave = on_orphan or (lambda: os._exit(1))
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no libc prctl: the watchdog alone
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl
        leave()

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(WATCHDOG_S)
        leave()

    threading.Thread(target=watch, name="shoprec-parent-watchdog", daemon=True).start()


def _logging(settings: Settings, platform: str, job_id: str) -> None:
    """The process's logs as configured ([logging]: text or JSON), every line carrying platform= and job_id=."""
    configure_logging(settings.logging)
    bind_context(platform=platform, job_id=job_id)


def job_main(settings: Settings, handler: Any, platform: str, job_id: str, params: dict[str, Any],
             conn: Connection, parent_pid: int) -> None:
    """The child's entry point: run `handler` and send its outcome to the worker."""
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the worker decides
    _logging(settings, platform, job_id)
    log = logging.getLogger("shoprec.worker.job")
    from shoprec.service import build_services

    def progress(text: str) -> None:
        log.info("%s", text)
        conn.send(("progress", str(text)))

    services = None
    use_settings(settings)  # library code without settings passed (text cache, thread default) reads these
    if settings.jobs.nice and hasattr(os, "nice"):
        with contextlib.suppress(OSError):  # not permitted: the normal priority
            os.nice(settings.jobs.nice)  # training yields the CPU to API processes on the same machine
    try:
        if settings.torch_threads:
            import torch

            torch.set_num_threads(settings.torch_threads)
        services = build_services(settings, settings.serving)
        result = handler(services, platform, params, progress)
        conn.send(("ok", result if isinstance(result, dict) else {"result": result}))
    except ShoprecError as exc:
        log.warning("failed: %s", exc)
        conn.send(("error", str(exc)))
    except Exception as exc:  # the job fails with the reason; the worker goes on
        log.exception("failed")
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()
        if services is not None:
            services.close()
