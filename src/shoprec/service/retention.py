"""The retention schedule inside `shoprec serve`: purge events older than SHOPREC_RETENTION_DAYS at start-up
and then at most once an hour, in a daemon thread (a failed purge is logged and retried next time).

Every worker runs one; purging is idempotent, so several workers only repeat a cheap DELETE.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shoprec.errors import ShoprecError

if TYPE_CHECKING:
    from shoprec.service import Services

log = logging.getLogger(__name__)
INTERVAL_S = 3600.0


class RetentionSchedule:
    """Calls `purge()` now and then every `interval_s` seconds until `stop()`."""

    def __init__(self, purge: Callable[[], Any], interval_s: float = INTERVAL_S) -> None:
        self.purge, self.interval_s = purge, interval_s
        self.runs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shoprec-retention", daemon=True)

    def start(self) -> RetentionSchedule:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.purge()
            except ShoprecError as exc:  # the database is down: try again at the next interval
                log.error("retention purge failed: %s", exc)
            self.runs += 1
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


def start_retention(services: Services, interval_s: float = INTERVAL_S) -> RetentionSchedule | None:
    """The running schedule for `services`, or None without a retention setting."""
    if services.settings.retention_days is None:
        return None
    return RetentionSchedule(services.privacy.purge, interval_s).start()
