"""Reading ahead of the writer (shoprec.ingest.ahead): in a thread and in a process of its own, the same items in
the same order, the source's error at its position, and no reader left behind when the consumer stops, fails or
is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shoprec.errors import DataError
from shoprec.ingest.ahead import prefetched, read_apart
from shoprec.service import file_import
from shoprec.service.file_import import ingest_file
from shoprec.storage import create_db


def numbers(n: int, fail_at: int | None = None) -> Iterator[int]:
    for k in range(n):
        if k == fail_at:
            raise OSError(f"read failed at {k}")
        yield k


class Unpicklable(Exception):
    def __init__(self, code: int, why: str) -> None:  # two arguments: pickle cannot rebuild it from args
        super().__init__(f"code {code}: {why}")


def fails_oddly() -> Iterator[int]:
    yield 1
    raise Unpicklable(7, "odd")


def dies(n: int) -> Iterator[int]:
    for k in range(n):
        time.sleep(0.06)  # longer than CHUNK_SECONDS: each item is sent before the next is read
        yield k
    os.kill(os.getpid(), signal.SIGKILL)
    yield n


def noisy() -> Iterator[int]:
    print("a print of the task's code")  # stdout: it must not reach the items' pipe
    os.write(1, b"and a raw write to fd 1\n")
    yield from range(5)


def garbles() -> Iterator[int]:
    time.sleep(0.06)  # longer than CHUNK_SECONDS: the item is sent before the garbage
    yield 1
    os.write(int(sys.argv[1]), b"not a pickle")  # the child's own pipe to the importer
    time.sleep(5)
    yield 2


def endless() -> Iterator[int]:
    k = 0
    while True:
        yield k
        k += 1


def until_error(items: Iterator[int], error: type[BaseException], match: str) -> list[int]:
    """The items read before `items` raised `error` (whose message matches `match`)."""
    got: list[int] = []
    with pytest.raises(error, match=match):
        for k in items:
            got.append(k)
    return got


@pytest.mark.parametrize("ahead", ["thread", "process"])
def test_same_items_in_order_and_the_error_at_its_position(ahead: str) -> None:
    def read(n: int, fail_at: int | None = None) -> Iterator[int]:
        return prefetched(numbers(n, fail_at)) if ahead == "thread" else read_apart(numbers, n, fail_at)

    assert list(read(5000)) == list(range(5000))
    # every item before the error, none after
    assert until_error(read(5000, fail_at=2500), OSError, "read failed at 2500") == list(range(2500))


def test_an_error_that_cannot_cross_processes_keeps_its_type_and_message() -> None:
    assert until_error(read_apart(fails_oddly), DataError, "Unpicklable: code 7: odd") == [1]


def test_a_reader_process_that_dies_is_an_error_after_what_it_sent() -> None:
    assert until_error(read_apart(dies, 10), DataError, "reader process ended unexpectedly") == list(range(10))


def test_the_childs_prints_and_the_working_directory_stay_out(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Prints of the task's code go to stdout, not into the items' pipe, and a module in the working directory
    does not shadow one the child imports (`python -P`)."""
    (tmp_path / "pickle.py").write_text("raise ImportError('the working directory was searched')\n")
    monkeypatch.chdir(tmp_path)
    assert list(read_apart(noisy)) == [0, 1, 2, 3, 4]


def test_a_stream_that_does_not_unpickle_is_an_error_after_the_items_before() -> None:
    assert until_error(read_apart(garbles), DataError, "reader process sent unreadable data") == [1]
    assert readers() == []


def readers(parent: int | None = None) -> list[int]:
    """The reader processes (`python -m shoprec.ingest.ahead`) whose parent is `parent` (this process)."""
    parent = os.getpid() if parent is None else parent
    out = []
    for proc in Path("/proc").iterdir():
        try:
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            command = (proc / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if int(stat[1]) == parent and stat[0] != "Z" and b"shoprec.ingest.ahead" in command:
            out.append(int(proc.name))
    return out


def alive(pid: int) -> bool:
    try:
        return (Path(f"/proc/{pid}") / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_stopping_early_ends_the_reader_process() -> None:
    items = read_apart(endless)
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    assert len(readers()) == 1
    items.close()  # type: ignore[attr-defined]
    assert readers() == []


KILLED_PARENT = """
import time
from shoprec.ingest.ahead import read_apart
from test_ingest_ahead import endless, readers
items = read_apart(endless)
next(items)
print(readers()[0], flush=True)
time.sleep(60)
"""


def test_a_reader_process_ends_when_its_importer_is_killed() -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), *sys.path]))
    proc = subprocess.Popen([sys.executable, "-c", KILLED_PARENT], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        child = int(proc.stdout.readline())
        assert alive(child)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    deadline = time.monotonic() + 30
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(child)


def test_a_large_file_imports_through_the_reader_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same report and rows as the thread's path; BLOCK as the importing process sets it."""
    header = "user_id,item_id,event_type,timestamp,value,session_id,event_id"
    lines = [f"u{k % 97},i{k % 31},{'view' if k % 5 else 'purchase'},{1600000000 + k},{'' if k % 5 else 2},,"
             for k in range(3000)]
    lines[100] = "u1,i1,bogus,1600000000,,,"  # a rejected line among the blocks
    lines[2000] = lines[1999]  # a duplicate
    path = tmp_path / "events.csv"
    path.write_text("\n".join([header, *lines]) + "\n")
    monkeypatch.setattr(file_import, "BLOCK", 250)
    engine = create_db(f"sqlite:///{tmp_path / 'db.sqlite'}")
    progress: dict[str, list[int]] = {"a": [], "b": []}
    try:
        thread = ingest_file(engine, "a", "events-csv", path, now=1.7e9, batch_size=400,
                             progress=progress["a"].append)
        monkeypatch.setattr(file_import, "PROCESS_MIN_BYTES", 0)
        apart = ingest_file(engine, "b", "events-csv", path, now=1.7e9, batch_size=400,
                            progress=progress["b"].append)
    finally:
        engine.dispose()
    assert apart.rejected == thread.rejected == {"bad_event_type": 1, "duplicate": 1}
    assert apart.accepted == thread.accepted == 2998
    assert apart.stored_total("events") == thread.stored_total("events") == 2998
    assert apart.to_dict()["examples"] == thread.to_dict()["examples"]
    assert progress["b"] == progress["a"]  # written in the same slices: blocks of 250 lines in both
    assert progress["a"][0] == 250  # one block of 3,000 lines would be written 400 at a time
    assert readers() == []
