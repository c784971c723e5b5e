"""Several API worker processes, each with its OWN listening socket on the same address (SO_REUSEPORT).

With uvicorn's own workers (one socket shared by every worker) the first worker to wake accepts every
pending connection: a burst of keep-alive connections (a load balancer's pool, a benchmark) can all land
on one worker while the other idles. Here each worker binds its own socket with SO_REUSEPORT, so the
kernel spreads new connections over the workers' accept queues by a hash of the client address.

The supervisor starts the workers, restarts one that dies after it started serving (a worker that
fails at startup stops the server, as uvicorn does: the next one would fail the same way), and on
SIGINT / SIGTERM asks every worker to finish its requests and waits for them. Used by `shoprec serve
--workers N` where the platform has SO_REUSEPORT (Linux, BSD, macOS); elsewhere uvicorn's workers.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import sys
import threading
import time
from multiprocessing.process import BaseProcess
from typing import Any

from shoprec.errors import ConfigError

log = logging.getLogger(__name__)
APP = "shoprec.api.app:app_from_env"
STARTUP_FAILURE = 3  # uvicorn's exit code for a worker whose app did not start
STOP_GRACE_S = 30.0  # time each worker has to finish its requests on shutdown


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


def _worker(host: str, port: int, log_level: str) -> None:  # pragma: no cover - runs in the worker process
    import uvicorn

    try:
        sock = _bind(host, port, reuse_port=True)
    except ConfigError as exc:
        log.error("%s", exc)
        sys.exit(STARTUP_FAILURE)
    server = uvicorn.Server(uvicorn.Config(APP, factory=True, log_level=log_level, access_log=False))
    server.run(sockets=[sock])
    if not server.started:
        sys.exit(STARTUP_FAILURE)


class Supervisor:
    def __init__(self, host: str, port: int, workers: int, log_level: str = "warning") -> None:
        self.host, self.port, self.n, self.log_level = host, port, workers, log_level
        self._ctx = multiprocessing.get_context("spawn")
        self._stop = threading.Event()
        self.processes: list[BaseProcess] = []
        self.exit_code = 0

    def _start(self) -> BaseProcess:
        proc: BaseProcess = self._ctx.Process(target=_worker, args=(self.host, self.port, self.log_level),
                                              name="shoprec-worker")
        proc.start()
        return proc

    def run(self) -> int:
        """Serve until SIGINT / SIGTERM (or a worker failing at startup); returns the exit code."""
        _bind(self.host, self.port, reuse_port=False).close()  # the port is free (else a clear error, now)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.processes = [self._start() for _ in range(self.n)]
            while not self._stop.wait(0.5):
                self._keep_alive()
        finally:
            self._shutdown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self.exit_code

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._stop.set()

    def _keep_alive(self) -> None:
        for i, proc in enumerate(self.processes):
            if proc.is_alive():
                continue
            if proc.exitcode == STARTUP_FAILURE:
                log.error("worker %s failed to start; stopping", proc.pid)
                self.exit_code = STARTUP_FAILURE
                self._stop.set()
                return
            log.warning("worker %s exited (code %s); starting another", proc.pid, proc.exitcode)
            self.processes[i] = self._start()

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


def serve_workers(host: str, port: int, workers: int, log_level: str = "warning") -> int:
    return Supervisor(host, port, workers, log_level).run()
