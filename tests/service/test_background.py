"""Background threads run at a lower CPU priority than the thread that calls them (Linux)."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from shoprec.service.background import BACKGROUND_NICE, lower_priority


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice values are a Linux feature")
def test_lower_priority_changes_the_calling_thread_only() -> None:
    main_before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen: list[int] = []

    def background() -> None:
        lower_priority()
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        lower_priority()  # already nicer: unchanged
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    thread = threading.Thread(target=background)
    thread.start()
    thread.join()
    assert seen == [max(BACKGROUND_NICE, main_before)] * 2
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_before
