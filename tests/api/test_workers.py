"""`shoprec serve --workers 2` with a listening socket per worker (shoprec.api.workers): a burst of keep-alive
connections lands on both workers, a worker that dies is replaced while the other keeps answering, SIGTERM
stops them all, and a port in use is a one-line error."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shoprec.api.workers import reuse_port_supported

pytestmark = pytest.mark.skipif(not reuse_port_supported() or not Path("/proc/net/tcp").exists(),
                                reason="needs SO_REUSEPORT and /proc (Linux)")
CMD = [sys.executable, "-c", "from shoprec.cli.main import main; main()", "serve", "--workers", "2"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    """The worker processes of supervisor `pid` (not multiprocessing's resource tracker)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if (int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid
                    and b"spawn_main" in (stat.parent / "cmdline").read_bytes()):
                out.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return out


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "gone"


def _sockets(pid: int, port: int, state: str) -> set[str]:
    """Inodes of the TCP sockets on local `port` in `state` (01 established, 0A listening) that `pid` holds."""
    inodes = set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:  # the process has just exited
        return set()
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == state and fields[9] in inodes:
            found.add(fields[9])
    return found


def _established(pid: int, port: int) -> int:
    return len(_sockets(pid, port, "01"))


def _wait_live(base: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/v1/health/live", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    pytest.fail("shoprec serve did not start")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    root = tmp_path_factory.mktemp("workers")
    env = {**os.environ, "SHOPREC_DATABASE_URL": f"sqlite:///{root / 'shoprec.db'}",
           "SHOPREC_MODEL_DIR": str(root / "models")}
    env.pop("SHOPREC_REDIS_URL", None)
    port = _free_port()
    proc = subprocess.Popen([*CMD, "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_live(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 120  # both workers listening (the second may still be loading the app)
        while time.monotonic() < deadline:
            workers = _children(proc.pid)
            if len(workers) == 2 and all(_sockets(p, port, "0A") for p in workers):
                break
            time.sleep(0.2)
        yield proc, port
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def test_each_worker_listens_on_a_socket_of_its_own(served: tuple[subprocess.Popen[bytes], int]) -> None:
    proc, port = served
    listening = [_sockets(p, port, "0A") for p in _children(proc.pid)]
    assert len(listening) == 2 and all(len(s) == 1 for s in listening)
    assert listening[0] != listening[1]  # uvicorn's workers share one socket: the same inode in both


def test_a_burst_of_keep_alive_connections_reaches_both_workers(served: tuple[subprocess.Popen[bytes], int]) -> None:
    proc, port = served
    burst = [socket.create_connection(("127.0.0.1", port)) for _ in range(16)]  # all queued before any accept
    try:
        for s in burst:  # each connection answers and stays open (keep-alive)
            s.sendall(b"GET /v1/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        for s in burst:
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
        per_worker = [_established(p, port) for p in _children(proc.pid)]
        assert sum(per_worker) == 16
        # uvicorn's shared socket: the first worker to wake accepts the whole queue (16, 0)
        assert sorted(per_worker)[-2] >= 2, per_worker
    finally:
        for s in burst:
            s.close()


def test_a_dead_worker_is_replaced_and_the_other_keeps_answering(served: tuple[subprocess.Popen[bytes], int]
                                                                 ) -> None:
    proc, port = served
    before = sorted(_children(proc.pid))
    os.kill(before[-1], signal.SIGKILL)
    deadline = time.monotonic() + 10  # reaped by the supervisor: every thread is gone, and with them its socket
    while _state(before[-1]) != "gone" and time.monotonic() < deadline:
        time.sleep(0.05)
    for _ in range(20):  # new connections while the replacement starts: the live worker answers them
        assert httpx.get(f"http://127.0.0.1:{port}/v1/health/live", timeout=5).status_code == 200
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = _children(proc.pid)
        if len(now) >= len(before) and before[-1] not in now:
            break
        time.sleep(0.3)
    else:
        pytest.fail(f"no replacement worker: {before} -> {_children(proc.pid)}")


def test_sigterm_stops_the_supervisor_and_its_workers(served: tuple[subprocess.Popen[bytes], int]) -> None:
    proc, _ = served
    workers = _children(proc.pid)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=40) == 0
    assert not [p for p in workers if Path(f"/proc/{p}").exists()]


def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    env = {**os.environ, "SHOPREC_DATABASE_URL": f"sqlite:///{tmp_path / 'shoprec.db'}"}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run([*CMD, "--port", str(port)], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in out.stderr and "Traceback" not in out.stderr
