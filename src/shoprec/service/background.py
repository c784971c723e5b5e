"""Background threads of a server worker (catalog refresh, list log writer, model loading) run at a lower CPU
priority than the thread serving requests: on Linux a thread has its own nice value, so a burst of background
work (a catalog reload is ~0.35 s of CPU on Beauty) yields the core to the requests instead of stalling them."""

from __future__ import annotations

import os
import sys
import threading

BACKGROUND_NICE = 10


def lower_priority() -> None:
    """Give the calling thread nice BACKGROUND_NICE (Linux; elsewhere, or when it is already nicer, nothing)."""
    if sys.platform != "linux":
        return
    tid = threading.get_native_id()
    try:
        if os.getpriority(os.PRIO_PROCESS, tid) < BACKGROUND_NICE:
            os.setpriority(os.PRIO_PROCESS, tid, BACKGROUND_NICE)
    except OSError:  # not permitted (a sandbox): run at the normal priority
        pass
