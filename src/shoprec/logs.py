"""Logs: one configuration for the process (text or JSON lines on stderr, through structlog), and the context
every line carries (a request's id, a job's platform and id).

    configure_logging(settings.logging)              # once per process: the CLI, each server / worker child
    log = logging.getLogger(__name__)                # existing stdlib loggers keep working, rendered the same way
    with log_context(platform="shop", job_id="j1"):  # every line logged inside carries platform= and job_id=
        log.info("training started")
    bind_context(platform="shop")                    # the same without a block (a request's context ends with it)

structlog (not a hand-written formatter) because its contextvars binding, processor chain and JSON renderer are
what a structured log needs, and its ProcessorFormatter routes the stdlib loggers (ours, uvicorn's,
SQLAlchemy's) through the same chain, so the modules keep plain `logging.getLogger` calls.
Text lines keep the CLI's earlier shape, `LEVEL logger: message key=value ...` (keys sorted); JSON lines are one
object a line: {"event", "level", "logger", "timestamp", ...context}.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

import structlog

if TYPE_CHECKING:  # a sibling of settings in the layers: the type only
    from shoprec.settings import LogSettings

ACCESS_LOGGER = "shoprec.access"  # one line a request when [logging] access_log is on
_HANDLER_MARK = "_shoprec_handler"
# the current request's annotations (bind_context adds to it, the access log line reads it): a dict shared by
# the request's task and the threads it runs sync code in, since their contexts are copies that point at it
_REQUEST: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("shoprec_request", default=None)


def _text(logger: Any, method: str, event: MutableMapping[str, Any]) -> str:
    """`LEVEL logger: message key=value ...` (the earlier CLI format, plus the context)."""
    level = str(event.pop("level", method)).upper()
    name = event.pop("logger", "") or "root"
    message = event.pop("event", "")
    event.pop("timestamp", None)
    exc = event.pop("exception", None)
    extra = " ".join(f"{k}={v}" for k, v in sorted(event.items()))
    line = f"{level} {name}: {message}{' ' + extra if extra else ''}"
    return f"{line}\n{exc}" if exc else line


def _drop_formatted(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A record another handler formatted first has `message` / `asctime` attributes: not extra fields."""
    event.pop("message", None)
    event.pop("asctime", None)
    return event


def configure_logging(config: LogSettings, *, level: str | None = None, stream: TextIO | None = None) -> None:
    """Route every log record of this process through structlog onto `stream` (stderr), as text or JSON lines
    at config.level (or `level`). Replaces the handler an earlier call (or logging.basicConfig) installed on the
    root logger; handlers of other kinds (pytest's capture) are left alone. The access log, when on, is logged
    at info whatever the level."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any
    if config.format == "json":
        renderer = structlog.processors.JSONRenderer()
        final = [structlog.processors.dict_tracebacks, renderer]
    else:
        final = [structlog.processors.format_exc_info, _text]
    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, *shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), _drop_formatted, *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    )
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, _HANDLER_MARK, False) or type(old) is logging.StreamHandler:
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel((level or config.level).upper())
    access = logging.getLogger(ACCESS_LOGGER)
    access.setLevel(logging.INFO if config.access_log else logging.WARNING)


def get_logger(name: str) -> Any:
    """A structlog logger (keyword arguments become fields): `get_logger(__name__).info("loaded", model=m)`."""
    return structlog.stdlib.get_logger(name)


def bind_context(**fields: Any) -> None:
    """Add fields to every later log line of this context (a request, a job's thread); inside a request they
    also reach its access log line (e.g. platform=). Ends with the request, or use log_context for a block."""
    structlog.contextvars.bind_contextvars(**fields)
    annotations = _REQUEST.get()
    if annotations is not None:
        annotations.update(fields)


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Every line logged inside the block carries `fields` (e.g. platform=, job_id= of a job)."""
    with structlog.contextvars.bound_contextvars(**fields):
        yield


@contextmanager
def request_context(request_id: str) -> Iterator[dict[str, Any]]:
    """The context of one request (the API's middleware): its id on every line, and the annotations
    bind_context adds while it runs (yielded, read by the access log)."""
    annotations: dict[str, Any] = {}
    before = structlog.contextvars.get_contextvars()
    token = _REQUEST.set(annotations)
    structlog.contextvars.bind_contextvars(request_id=request_id)
    try:
        yield annotations
    finally:  # what the request bound in this task ends with it
        structlog.contextvars.unbind_contextvars(*(set(structlog.contextvars.get_contextvars()) - set(before)))
        if before:
            structlog.contextvars.bind_contextvars(**before)
        _REQUEST.reset(token)
