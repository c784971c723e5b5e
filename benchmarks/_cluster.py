"""A shoprec deployment started as plain processes (no container runtime): API replicas (`shoprec serve`), each
from its own working directory with no shared model directory, and training workers (`shoprec worker`), all
reading one settings file. Used by the cluster test (tests/test_cluster.py) and benchmarks/operations.py.

    with Cluster(tmp, settings_toml) as c:
        c.cli("platform", "create", "shop", "--json")
        a = c.serve("a")                                  # http://127.0.0.1:<port>
        w = c.worker("w1")
        load = Load([a.url], key, users).start()
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

MAIN = "from shoprec.cli.main import main; main()"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def children(pid: int) -> list[int]:
    """Every live descendant of process `pid` (from /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    out, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, parent in parents.items() if parent == p]
        out += kids
        frontier += kids
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.popen.pid

    def kill9(self) -> list[int]:
        """SIGKILL this process alone (not its children); returns the children it had."""
        kids = children(self.pid)
        os.kill(self.pid, signal.SIGKILL)
        self.popen.wait(10)
        return kids

    def stop(self, timeout: float = 40) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                for pid in [*children(self.pid), self.pid]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                self.popen.wait(10)

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


@dataclass
class Cluster:
    root: Path
    config: Path
    procs: list[Proc] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith("SHOPREC_")}
        return {**keep, "SHOPREC_CONFIG": str(self.config)}

    def cli(self, *args: str, check: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        run = subprocess.run([sys.executable, "-c", MAIN, *args], capture_output=True, text=True, env=self.env(),
                             cwd=cwd or self.root, timeout=600)
        if check and run.returncode != 0:
            raise RuntimeError(f"shoprec {' '.join(args)} failed ({run.returncode}): {run.stderr[-2000:]}")
        return run

    def _start(self, name: str, args: list[str], port: int | None = None) -> Proc:
        cwd = self.root / name
        cwd.mkdir(parents=True, exist_ok=True)
        log = cwd / "process.log"
        handle = log.open("ab")
        popen = subprocess.Popen([sys.executable, "-c", MAIN, *args], cwd=cwd, env=self.env(), stdout=handle,
                                 stderr=subprocess.STDOUT)
        handle.close()
        proc = Proc(name, popen, log, port)
        self.procs.append(proc)
        return proc

    def serve(self, name: str, workers: int = 2, port: int | None = None, wait: bool = True) -> Proc:
        port = port or free_port()
        proc = self._start(name, ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
                           port)
        if wait:
            self.wait_live(proc)
        return proc

    def worker(self, name: str) -> Proc:
        return self._start(name, ["worker", "--id", name])

    def wait_live(self, proc: Proc, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                raise RuntimeError(f"{proc.name} exited ({proc.popen.returncode}):\n{proc.tail()}")
            try:
                if httpx.get(f"{proc.url}/v1/health/live", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{proc.name} did not come up in {timeout} s:\n{proc.tail()}")

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Sample:
    t: float  # monotonic time the answer came
    base: str
    status: int  # 0: no answer (connection error, timeout)
    seconds: float
    model_id: str | None


class Load:
    """Requests users' lists from every base URL in turn, in one thread, until stop(); keeps every answer."""

    def __init__(self, bases: Iterable[str], key: str, users: list[str], pause_s: float = 0.0) -> None:
        self.bases, self.key, self.users, self.pause_s = list(bases), key, users, pause_s
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Load:
        self._thread.start()
        return self

    def stop(self) -> list[Sample]:
        self._stop.set()
        self._thread.join(30)
        return self.samples

    def _run(self) -> None:
        clients = {b: httpx.Client(base_url=b, headers={"X-API-Key": self.key}, timeout=10) for b in self.bases}
        i = 0
        while not self._stop.is_set():
            base = self.bases[i % len(self.bases)]
            user = self.users[i % len(self.users)]
            i += 1
            start = time.perf_counter()
            try:
                r = clients[base].get(f"/v1/users/{user}/recommendations", params={"k": 10})
                model_id = served_model_id(r.json()) if r.status_code == 200 else None
                status = r.status_code
            except (httpx.HTTPError, json.JSONDecodeError):
                status, model_id = 0, None
            self.samples.append(Sample(time.monotonic(), base, status, time.perf_counter() - start, model_id))
            if self.pause_s:
                time.sleep(self.pause_s)
        for c in clients.values():
            c.close()


def served_model_id(answer: dict[str, Any]) -> str | None:
    """The model id a list was ranked by (the reasons of model-ranked items name it), else None."""
    for item in answer.get("items", ()):
        model_id = item.get("reason", {}).get("model_id")
        if model_id:
            return str(model_id)
    return None


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]
