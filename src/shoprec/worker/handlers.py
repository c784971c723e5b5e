"""The jobs a worker knows how to run: kind -> handler(services, platform, params, progress) -> result.

A handler runs in the job's child process (so it is a module-level function: spawn pickles it by name) with
services of its own; `progress(text)` reports a line the job's row shows while it runs. What it returns is the
job's `result` (JSON); a ShoprecError it raises fails the job with its message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shoprec.service import Services

Progress = Callable[[str], None]


def train(services: Services, platform: str, params: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """Train, evaluate and register a model ({model, params, activate}); activated when asked (the servers
    pick the new active model up by polling)."""
    trained = services.store.train(platform, params["model"], params.get("params") or {},
                                   activate=bool(params.get("activate")), progress=progress)
    answer = trained.to_json()
    answer.pop("path", None)  # where the artifact lies is the deployment's business
    return answer
