"""The process tree of `shoprec serve`: a supervisor and its children, API workers (each with its OWN listening
socket on the same address, SO_REUSEPORT) and any extra managed process (the embedded job worker).

With uvicorn's own workers (one socket shared by every worker) the first worker to wake accepts every
pending connection: a burst of keep-alive connections (a load balancer's pool, a benchmark) can all land
on one worker while the other idles. Here each worker binds its own socket with SO_REUSEPORT, so the
kernel spreads new connections over the workers' accept queues by a hash of the client address.

- Settings travel to the children as an object (spawn pickles it): nothing is written to the environment
  for them, and they do not read the environment again.
- The supervisor restarts a child that dies after it started (a worker that fails at startup stops the
  server, as uvicorn does: the next one would fail the same way), and on SIGINT / SIGTERM asks every child to
  finish (uvicorn answers the requests in flight) and waits for them.
- A child exits when its supervisor dies, even by SIGKILL: PR_SET_PDEATHSIG (Linux) sends it SIGTERM, and a
  watchdog thread that sees its parent change does the same elsewhere (and kills it if it does not finish).
- Metrics: every child runs in prometheus_client's multiprocess mode over one directory ([metrics]
  multiprocess_dir, else a temporary one the supervisor removes), set in the child's own environment before
  anything imports prometheus_client; a dead child's live gauges are dropped (mark_process_dead).
- Connections: a request's headers must arrive within [serving] header_timeout_s of the connection opening
  (or of its previous request), an idle keep-alive connection is closed after keep_alive_s, and a worker
  answers 503 beyond max_connections (uvicorn's limit_concurrency). uvicorn itself has no header timeout: a
  connection that sends part of its headers and stalls is kept forever, so the protocol is extended here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from shoprec.errors import ConfigError

if TYPE_CHECKING:
    from shoprec.settings import Settings

log = logging.getLogger(__name__)
STARTUP_FAILURE = 3  # uvicorn's exit code for a worker whose app did not start
STOP_GRACE_S = 30.0  # time each child has to finish its requests on shutdown
PR_SET_PDEATHSIG = 1
CRASH_LOOP_S = 5.0  # a child that dies sooner than this after starting is restarted after a growing delay
MAX_RESTART_DELAY_S = 30.0
WATCHDOG_S = 0.5  # how often a child checks that its supervisor is alive (where PDEATHSIG is missing)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's variable (shoprec.service.telemetry)


def reuse_port_supported() -> bool:
    return hasattr(socket, "SO_REUSEPORT")


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _bind(host: str, port: int, reuse_port: bool) -> socket.socket:
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


@dataclass(frozen=True)
class Child:
    """A managed process: target(*args) runs in it (both picklable: a module-level function)."""

    name: str
    target: Callable[..., Any]
    args: tuple[Any, ...] = ()


# ---------------------------------------------------------------- in the child


def _die_with_parent(parent: int) -> None:
    """SIGTERM this process when `parent` dies: PR_SET_PDEATHSIG where there is one (Linux), and a watchdog
    thread everywhere (it also catches a parent that died before the prctl call)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no libc prctl: the watchdog alone
            pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCHDOG_S)
        log.warning("supervisor %s is gone; stopping", parent)
        os.kill(os.getpid(), signal.SIGTERM)  # uvicorn finishes its requests in flight
        time.sleep(STOP_GRACE_S + 5)
        os._exit(1)  # still here: it did not stop

    threading.Thread(target=watch, name="shoprec-parent-watchdog", daemon=True).start()
    if os.getppid() != parent:  # died before the prctl call
        os.kill(os.getpid(), signal.SIGTERM)


def _bootstrap(child: Child, parent: int, metrics_dir: str | None, settings: Settings) -> None:
    """A child's first code: die with the supervisor, share metrics, take the supervisor's settings as the
    process's, log as configured, then run the target."""
    _die_with_parent(parent)
    if metrics_dir is not None:  # before anything imports prometheus_client in this process
        os.environ[MULTIPROC_ENV] = metrics_dir  # this child's own environment, read by prometheus_client
        values = sys.modules.get("prometheus_client.values")
        if values is not None:  # imported already (a target's module): labelled metrics get their values later
            values.ValueClass = values.MultiProcessValue()  # type: ignore[attr-defined]
    from shoprec.logs import configure_logging
    from shoprec.settings import use_settings

    use_settings(settings)  # what library code without settings passed to it reads (process_settings())
    configure_logging(settings.logging)
    child.target(*child.args)


def api_worker(settings: Settings, host: str, port: int) -> None:  # pragma: no cover - runs in a child
    """One API worker: its own SO_REUSEPORT socket, uvicorn over server_app(settings)."""
    import uvicorn

    from shoprec.api.app import server_app

    try:
        sock = _bind(host, port, reuse_port=reuse_port_supported())
    except ConfigError as exc:
        log.error("%s", exc)
        sys.exit(STARTUP_FAILURE)
    serving = settings.serving
    config = uvicorn.Config(lambda: server_app(settings), factory=True, log_config=None,
                            log_level=settings.logging.level, access_log=False,
                            http=guarded_protocol(serving.header_timeout_s),
                            timeout_keep_alive=max(1, round(serving.keep_alive_s)),
                            # uvicorn refuses a request when it has >= limit connections, its own included
                            limit_concurrency=None if serving.max_connections is None else serving.max_connections + 1,
                            timeout_graceful_shutdown=int(STOP_GRACE_S))
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def anonymous_body(url: bytes, headers: Sequence[tuple[bytes, bytes]]) -> bool:
    """Whether a request (its raw URL and lower-cased headers, as httptools gives them) announces a body to a
    route that needs a key, without an X-API-Key: AuthFirst would answer it 401 without reading the body."""
    has_body, keyed = False, False
    for name, value in headers:
        if name == b"x-api-key" and value.strip():
            keyed = True
        elif (name == b"content-length" and value.strip() not in (b"", b"0")) or name == b"transfer-encoding":
            has_body = True
    if keyed or not has_body:
        return False
    path = url.split(b"?", 1)[0].decode("latin-1")
    from shoprec.api.auth import needs_key

    return needs_key(unquote(path) if "%" in path else path)


def guarded_protocol(header_timeout_s: float) -> Any:
    """uvicorn's httptools protocol, closing a connection whose request headers are not complete within
    header_timeout_s of it opening or of its previous response ("auto" where httptools is missing).

    It also answers a request that announces a body to a keyed route (shoprec.api.auth.needs_key) without an
    X-API-Key at once, at the connection: the same 401 AuthFirst would give, then the connection is closed, without
    an ASGI task, the middleware stack or reading the body. Anonymous bodies are an attack's cheapest weapon (a
    flood of them cost 4x the normal p99 when each went through the app); with a key, or without a body, requests
    go to the app as usual (AuthFirst checks the key before the body there)."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - uvicorn[standard] brings httptools
        log.warning("httptools is not installed: no header read timeout")
        return "auto"
    from shoprec.api.auth import UNAUTHORIZED
    from shoprec.api.metrics import access_log, valid_request_id
    from shoprec.logs import request_context
    from shoprec.service.telemetry import REFUSED_ANONYMOUS_BODIES

    refused = REFUSED_ANONYMOUS_BODIES.labels(reason="no_key")
    body = json.dumps({"error": "unauthorized", "message": UNAUTHORIZED, "errors": []}, separators=(",", ":")).encode()
    head = (b"HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\nconnection: close\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\nx-request-id: ")

    class HeaderTimeoutProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(header_timeout_s, self._header_timeout)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _header_timeout(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                log.info("closing a connection from %s: no complete request headers within %.1f s",
                         self.client, header_timeout_s)
                self.transport.close()

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:  # the first bytes of a request (a kept-alive connection's next)
            super().on_message_begin()
            if self._header_timer is None:
                self._arm()

        _refused = False  # this request was answered 401 here: its body (and the connection) are dropped

        def on_headers_complete(self) -> None:
            self._disarm()
            if anonymous_body(self.url, self.headers):
                self._refused = True
                refused.inc()
                given = next((v.decode("latin-1") for n, v in self.headers if n == b"x-request-id"), None)
                request_id = given if given is not None and valid_request_id(given) else uuid.uuid4().hex
                self.transport.write(head + request_id.encode() + b"\r\n\r\n" + body)
                if access_log.isEnabledFor(logging.INFO):  # the access line the app would have written
                    method = self.parser.get_method().decode("latin-1")
                    path = self.url.split(b"?", 1)[0].decode("latin-1")
                    with request_context(request_id):
                        access_log.info("%s %s 401 0.0 ms", method, path, extra={
                            "method": method, "route": path, "status": 401, "duration_ms": 0.0,
                            "refused_by": "connection"})
                self.transport.close()
                return
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            if not self._refused:
                super().on_body(body)

        def on_message_complete(self) -> None:
            if not self._refused:
                super().on_message_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeaderTimeoutProtocol


# ---------------------------------------------------------------- the supervisor


class Supervisor:
    """Starts `workers` API workers (and the `extra` children), restarts them (one that keeps dying soon after it
    started is restarted after 1, 2, 4 ... 30 s), stops them."""

    def __init__(self, settings: Settings, host: str, port: int, workers: int,
                 extra: Sequence[Child | tuple[str, Callable[..., Any], tuple[Any, ...]]] = ()) -> None:
        from shoprec.settings import check_admin_key

        check_admin_key(settings.serving)  # a weak admin key: one clear error before anything starts
        if workers > 1 and not reuse_port_supported():
            raise ConfigError(f"--workers {workers} needs SO_REUSEPORT, which this platform lacks; use --workers 1 "
                              "and several servers behind a load balancer")
        self.settings, self.host, self.port, self.n = settings, host, port, workers
        self.children = [Child("shoprec-api", api_worker, (settings, host, port)) for _ in range(workers)]
        self.children += [c if isinstance(c, Child) else Child(*c) for c in extra]
        self._ctx = multiprocessing.get_context("spawn")
        self._stop = threading.Event()
        self.processes: list[BaseProcess] = []
        self.exit_code = 0
        self.metrics_dir: str | None = None
        self._own_metrics_dir = False
        self._started: dict[int, float] = {}  # slot -> when its process started
        self._delay: dict[int, float] = {}  # slot -> its current restart delay (a crash loop backs off)
        self._restart_at: dict[int, float] = {}  # slot -> when its dead process is restarted

    def _start(self, child: Child) -> BaseProcess:
        proc: BaseProcess = self._ctx.Process(target=_bootstrap, name=child.name,
                                              args=(child, os.getpid(), self.metrics_dir, self.settings))
        proc.start()
        return proc

    def _prepare_metrics_dir(self) -> None:
        configured = self.settings.metrics.multiprocess_dir
        if configured is None:
            self.metrics_dir, self._own_metrics_dir = tempfile.mkdtemp(prefix="shoprec-metrics-"), True
            return
        path = Path(configured).absolute()
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):  # an earlier server's values (prometheus_client wants an empty one)
            stale.unlink()
        self.metrics_dir = str(path)

    def run(self) -> int:
        """Serve until SIGINT / SIGTERM (or a child failing at startup); returns the exit code."""
        _bind(self.host, self.port, reuse_port=False).close()  # the port is free (else a clear error, now)
        main = threading.current_thread() is threading.main_thread()  # else: stop() ends it
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)} if main else {}
        self._prepare_metrics_dir()
        try:
            self.processes = [self._start_slot(i) for i in range(len(self.children))]
            while not self._stop.wait(0.5):
                self._keep_alive()
        finally:
            self._shutdown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self._own_metrics_dir and self.metrics_dir:
                shutil.rmtree(self.metrics_dir, ignore_errors=True)
        return self.exit_code

    def stop(self) -> None:
        """Ask run() to stop its children and return (from another thread)."""
        self._stop.set()

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._stop.set()

    def _mark_dead(self, proc: BaseProcess) -> None:
        if self.metrics_dir and proc.pid is not None:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(proc.pid, self.metrics_dir)

    def _keep_alive(self) -> None:
        now = time.monotonic()
        for i, proc in enumerate(self.processes):
            if proc.is_alive():
                continue
            if i not in self._restart_at:  # seen dead for the first time
                self._mark_dead(proc)
                if proc.exitcode == STARTUP_FAILURE:
                    log.error("%s %s failed to start; stopping", proc.name, proc.pid)
                    self.exit_code = STARTUP_FAILURE
                    self._stop.set()
                    return
                quick = now - self._started[i] < CRASH_LOOP_S  # a crash loop: back off 1, 2, 4 ... 30 s
                self._delay[i] = min(MAX_RESTART_DELAY_S, max(1.0, 2 * self._delay.get(i, 0.0))) if quick else 0.0
                self._restart_at[i] = now + self._delay[i]
                log.warning("%s %s exited (code %s); starting another%s", proc.name, proc.pid, proc.exitcode,
                            f" in {self._delay[i]:.0f} s" if self._delay[i] else "")
            if now >= self._restart_at[i]:
                del self._restart_at[i]
                self.processes[i] = self._start_slot(i)

    def _start_slot(self, i: int) -> BaseProcess:
        self._started[i] = time.monotonic()
        return self._start(self.children[i])

    def _shutdown(self) -> None:
        for proc in self.processes:
            if proc.is_alive() and proc.pid is not None:
                proc.terminate()  # SIGTERM: uvicorn finishes the requests in flight, then exits
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in self.processes:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()
            self._mark_dead(proc)


def serve(settings: Settings, host: str, port: int, workers: int = 1,
          extra: Sequence[Child | tuple[str, Callable[..., Any], tuple[Any, ...]]] = ()) -> int:
    """Run a Supervisor until it is stopped; returns its exit code."""
    return Supervisor(settings, host, port, workers, extra).run()

