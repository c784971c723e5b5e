"""The REST API: create_app(settings) factory, routes, schemas and authentication.

create_app is imported on first use, so that importing shoprec.api.workers (the supervisor, and the first code
of its child processes) loads neither FastAPI nor prometheus_client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shoprec.api.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from shoprec.api.app import create_app

        return create_app
    raise AttributeError(f"module 'shoprec.api' has no attribute {name!r}")
