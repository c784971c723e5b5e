"""`shoprec serve --workers 2` with a listening socket per worker (shoprec.api.workers): a burst of keep-alive
connections lands on both workers, a worker that dies is replaced while the other keeps answering, counters
add up over the workers, a stalled request header is cut off, SIGTERM stops them all (answering the request in
flight), kill -9 of the supervisor takes its workers with it, extra managed children are restarted like
workers, and a port in use is a one-line error."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shoprec.api.workers import Supervisor, reuse_port_supported

pytestmark = pytest.mark.skipif(not reuse_port_supported() or not Path("/proc/net/tcp").exists(),
                                reason="needs SO_REUSEPORT and /proc (Linux)")
CMD = [sys.executable, "-c", "from shoprec.cli.main import main; main()", "serve", "--workers", "2"]
HEADER_TIMEOUT_S = 2.0


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


def _env(root: Path) -> dict[str, str]:
    env = {**os.environ, "SHOPREC_DATABASE_URL": f"sqlite:///{root / 'shoprec.db'}",
           "SHOPREC_MODEL_DIR": str(root / "models"),
           "SHOPREC_METRICS_MULTIPROCESS_DIR": str(root / "metrics"),  # not a temporary one a kill -9 leaves behind
           "SHOPREC_JOBS_EMBEDDED_WORKER": "0"}  # API workers only (the job worker: tests/worker/test_serve_embedded)
    env.pop("SHOPREC_REDIS_URL", None)
    return env


def _start(cmd: list[str], env: dict[str, str], port: int, workers: int, stderr: Any = subprocess.DEVNULL
           ) -> subprocess.Popen[bytes]:
    """A server (its own session, so a test can clean up its whole tree), once `workers` children listen."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
    _wait_live(f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 120  # every worker listening (the second may still be loading the app)
    while time.monotonic() < deadline:
        children = _children(proc.pid)
        if len([p for p in children if _sockets(p, port, "0A")]) >= workers:
            break
        time.sleep(0.2)
    return proc


def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def _port_free(port: int) -> bool:
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def metrics_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("metrics")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, metrics_dir: Path
           ) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    root = tmp_path_factory.mktemp("workers")
    env = {**_env(root), "SHOPREC_METRICS_MULTIPROCESS_DIR": str(metrics_dir),
           "SHOPREC_SERVING_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S), "SHOPREC_SERVING_KEEP_ALIVE_S": "30"}
    port = _free_port()
    proc = _start([*CMD, "--port", str(port)], env, port, 2)
    try:
        yield proc, port
    finally:
        if proc.poll() is None:
            _kill_tree(proc)


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


def _read_answer(s: socket.socket) -> bytes:
    """One whole HTTP answer (head and Content-Length body) from a socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = s.recv(4096)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def _metric(text: str, series: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None


def test_counters_add_up_over_the_workers(served: tuple[subprocess.Popen[bytes], int], metrics_dir: Path) -> None:
    """prometheus_client's multiprocess mode: every scrape, whichever worker answers it, reads all N requests."""
    _, port = served
    burst = [socket.create_connection(("127.0.0.1", port)) for _ in range(12)]  # spread over both workers
    n = 0
    try:
        for _ in range(3):
            for s in burst:
                s.sendall(b"GET /no-such-page HTTP/1.1\r\nHost: x\r\n\r\n")
                n += 1
            for s in burst:
                assert _read_answer(s).startswith(b"HTTP/1.1 404")
    finally:
        for s in burst:
            s.close()
    series = 'shoprec_request_seconds_count{method="GET",route="unmatched",status="404"}'
    seen = []
    for _ in range(8):  # new connections: both workers answer scrapes
        with httpx.Client(timeout=10) as client:
            seen.append(_metric(client.get(f"http://127.0.0.1:{port}/metrics").text, series))
    assert seen == [float(n)] * 8, seen
    files = {f.name for f in metrics_dir.glob("histogram_*.db")}  # a file per worker that answered
    assert len(files) >= 2, files


def _closed_after(s: socket.socket, start: float) -> tuple[bytes, float]:
    """What the server sends before it closes the connection, and the seconds from `start` to the close."""
    try:
        data = s.recv(4096)
    except ConnectionResetError:
        data = b""
    return data, time.monotonic() - start


def test_a_stalled_request_header_is_cut_off(served: tuple[subprocess.Popen[bytes], int]) -> None:
    """uvicorn keeps a connection that sent half its headers forever; the guard closes it after
    [serving] header_timeout_s, on a new connection and on a kept-alive one alike (keep_alive_s is longer)."""
    _, port = served
    start = time.monotonic()  # before the connection: the server's clock starts when it accepts it
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(HEADER_TIMEOUT_S + 30)
        s.sendall(b"GET / HTTP/1.1\r\nHost:")
        data, took = _closed_after(s, start)
        assert data == b"" and HEADER_TIMEOUT_S - 0.5 <= took < HEADER_TIMEOUT_S + 30, (data, took)
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(HEADER_TIMEOUT_S + 30)
        s.sendall(b"GET /v1/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_answer(s).endswith(b'{"status":"ok"}')
        start = time.monotonic()
        s.sendall(b"GET /v1/health/live HTTP/1.1\r\nHo")  # the next request stalls
        data, took = _closed_after(s, start)
        assert data == b"" and HEADER_TIMEOUT_S - 0.5 <= took < HEADER_TIMEOUT_S + 30, (data, took)


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


def test_kill_9_of_the_supervisor_takes_its_workers_and_frees_the_port(tmp_path: Path) -> None:
    port = _free_port()
    env = _env(tmp_path)
    proc = _start([*CMD, "--port", str(port)], env, port, 2)
    try:
        workers = _children(proc.pid)
        assert len(workers) == 2
        proc.kill()  # SIGKILL: no chance to stop them itself
        proc.wait(timeout=10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not (all(_state(p) in ("gone", "Z") for p in workers)
                                                   and _port_free(port)):
            time.sleep(0.1)
        assert all(_state(p) in ("gone", "Z") for p in workers)  # exited (a zombie until its new parent reaps it)
        assert _port_free(port)
    finally:
        _kill_tree(proc)
    again = _start([*CMD, "--port", str(port)], env, port, 2)  # a restart serves on the same port
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/v1/health/live", timeout=10).status_code == 200
    finally:
        _kill_tree(again)


def _connection_limit(port: int, limit: int) -> None:
    """[serving] max_connections: a request on a connection beyond the limit is answered 503 at once."""
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(limit)]
    try:
        with socket.create_connection(("127.0.0.1", port)) as extra:
            extra.settimeout(30)
            try:
                extra.sendall(b"GET /v1/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
                answer = _read_answer(extra)
            except (BrokenPipeError, ConnectionResetError):  # refused and closed before our request was written
                answer = b"closed"
            assert answer.startswith(b"HTTP/1.1 503") or answer == b"closed", answer
        held.pop().close()
        deadline = time.monotonic() + 20  # within the limit again once the server saw the close
        while True:  # a new connection each try: an idle held one may have been closed (keep-alive timeout)
            with socket.create_connection(("127.0.0.1", port)) as probe:
                probe.settimeout(30)
                try:
                    probe.sendall(b"GET /v1/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
                    answer = _read_answer(probe)
                except (BrokenPipeError, ConnectionResetError):
                    answer = b"closed"
            if answer.startswith(b"HTTP/1.1 200"):
                break
            assert time.monotonic() < deadline, "still refused within the limit"
            time.sleep(0.2)
    finally:
        for s in held:
            s.close()


def test_sigterm_answers_the_request_in_flight(tmp_path: Path) -> None:
    """A request whose body is still arriving when the supervisor gets SIGTERM is answered, then all exit.
    Beyond [serving] max_connections a request is refused with 503. The worker logs as the supervisor's
    settings say: JSON lines (the setting), at info (-v), with the access log (--access-log) carrying the
    request id."""
    port = _free_port()
    cmd = [*CMD[:3], "-v", "serve", "--workers", "1", "--access-log", "--port", str(port)]
    err = (tmp_path / "stderr").open("wb")
    env = {**_env(tmp_path), "SHOPREC_LOGGING_FORMAT": "json", "SHOPREC_SERVING_MAX_CONNECTIONS": "2"}
    proc = _start(cmd, env, port, 1, stderr=err)
    try:
        _connection_limit(port, 2)
        body = b'[{"user_id": "u", "item_id": "i", "type": "view"}]'
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.settimeout(60)
            s.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"X-Request-ID: in-flight-1\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n"
                      + body[:10])
            time.sleep(0.5)  # the request is in flight (its body half sent)
            proc.send_signal(signal.SIGTERM)
            time.sleep(1.0)
            s.sendall(body[10:])
            answer = _read_answer(s)
        assert answer.startswith(b"HTTP/1.1 401"), answer  # refused (no X-API-Key) before its body is read
        assert b"x-request-id: in-flight-1" in answer.lower()
        assert proc.wait(timeout=40) == 0
    finally:
        _kill_tree(proc)
        err.close()
    text = (tmp_path / "stderr").read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("logger") == "shoprec.access"]
    assert [(a["request_id"], a["status"], a["route"]) for a in access if a["method"] == "POST"] == [
        ("in-flight-1", 401, "/v1/events")]
    assert any(line.get("logger", "").startswith("uvicorn") and line["level"] == "info" for line in lines), text


EXTRA_SCRIPT = """
import sys, time
from shoprec.api.workers import Supervisor
from shoprec.settings import load_settings

code = Supervisor(load_settings(), "127.0.0.1", int(sys.argv[1]), 1, extra=[("extra", time.sleep, (3600,))]).run()
sys.exit(code)
"""


def test_an_extra_child_is_managed_like_a_worker(tmp_path: Path) -> None:
    """Supervisor(extra=[(name, target, args)]): started beside the API worker, restarted when it dies, and
    gone when the supervisor is killed."""
    port = _free_port()
    proc = _start([sys.executable, "-c", EXTRA_SCRIPT, str(port)], _env(tmp_path), port, 1)
    try:
        deadline = time.monotonic() + 60
        while len(_children(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        children = _children(proc.pid)
        extra = [p for p in children if not _sockets(p, port, "0A")]
        assert len(children) == 2 and len(extra) == 1
        os.kill(extra[0], signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = [p for p in _children(proc.pid) if not _sockets(p, port, "0A")]
            if now and extra[0] not in now:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the extra child was not restarted")
        children = _children(proc.pid)
        proc.kill()
        proc.wait(timeout=10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_state(p) not in ("gone", "Z") for p in children):
            time.sleep(0.1)
        assert all(_state(p) in ("gone", "Z") for p in children)
    finally:
        _kill_tree(proc)


def test_a_child_that_keeps_dying_is_restarted_after_a_growing_delay() -> None:
    from shoprec.settings import Settings

    starts: list[float] = []

    class Counting(Supervisor):
        def _start_slot(self, i: int) -> Any:
            starts.append(time.monotonic())
            return super()._start_slot(i)

    sup = Counting(Settings(), "127.0.0.1", _free_port(), 0, extra=[("dies", sys.exit, (0,))])
    runner = threading.Thread(target=sup.run)
    runner.start()
    try:
        deadline = time.monotonic() + 60
        while len(starts) < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        sup.stop()
        runner.join(60)
    assert len(starts) >= 4 and not runner.is_alive()
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps[1] >= 1.9 and gaps[2] >= 3.9, gaps  # 1, 2, 4 s after it died (and more to spawn it)
