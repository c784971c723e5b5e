"""Errors the services raise for the API to turn into 4xx answers (never a 5xx)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shoprec.errors import DataError, ShoprecError


@dataclass(frozen=True)
class RecordError:
    """One bad record of a batch: its index in the request, the field, a reason code and a message."""

    index: int | None
    field: str | None
    reason: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "reason": self.reason, "message": self.message}


class RecordErrors(DataError):
    """A batch was refused as a whole (nothing written) because of these records."""

    def __init__(self, errors: list[RecordError]) -> None:
        self.errors = errors
        first = errors[0]
        where = f"record {first.index}" if first.index is not None else "request"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"{where}, field {first.field}: {first.message}{more}")


class NotFound(ShoprecError):
    """The named user, item, model, job or recommendation does not exist on this platform."""


class TooLarge(DataError):
    """A batch has more records than allowed."""


class Forbidden(ShoprecError):
    """The caller's key may not act on what it asked for."""


class ArtifactError(DataError):
    """A model's artifact cannot be stored or loaded (missing, corrupt, unreadable, store unreachable): the
    message names the model (or the artifact) and why. The API answers 422."""


class QueueFull(ShoprecError):
    """A platform has as many jobs queued or running as the deployment allows (settings jobs.max_queued): the
    API answers 429 with Retry-After."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


class Conflict(ShoprecError):
    """The request does not fit the current state (e.g. cancelling a job that has finished): 409."""
