"""Reading ahead of the writer: a source's items produced in a thread (`prefetched`) or in a process of their own
(`read_apart`) while the import writes the items before them.

    for item in read_apart(rows_of_file, path, header):   # rows_of_file(path, header) runs in the child
        write(item)

Why a process: an import's writer and its reader take turns on one interpreter lock, so a thread reading ahead
overlaps only with the database's own work (SQLite's B-tree, PostgreSQL's server). Parsing and checking a large
file is a third of an import's CPU (docs/benchmarks.md, "Scale: bulk import", sixth round); in a process of its
own it runs on the other core. The child is a fresh interpreter (nothing of the importer's threads, connections
or locks is copied into it), which costs about a second of imports, so only large files take this path. The
items come back through a pipe as pickles, a few at a time.
"""

from __future__ import annotations

import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from shoprec.errors import DataError

__all__ = ["AHEAD", "prefetched", "read_apart"]

T = TypeVar("T")
AHEAD = 2  # items a thread has ready ahead of the consumer
CHUNK_ITEMS = 1000  # a process sends at most this many items at once ...
CHUNK_SECONDS = 0.05  # ... or what it produced in this time (a large item, e.g. a block of lines, goes alone)
READER_NAME = "shoprec-import-reader"


def prefetched(items: Iterator[T], ahead: int = AHEAD) -> Iterator[T]:
    """`items`, produced by a thread up to `ahead` items ahead of the caller. Same items in the same order; an
    error of the source is raised at the position where it happened (after the items before it). Closing the
    result (or an error of the caller) ends the thread and closes `items`."""
    if ahead < 1:
        yield from items
        return
    handoff: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def put(kind: str, value: object) -> bool:
        while not stop.is_set():
            try:
                handoff.put((kind, value), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put("item", item):
                    return
        except BaseException as exc:  # raised again in the caller's thread
            put("error", exc)
            return
        finally:
            if stop.is_set():
                close = getattr(items, "close", None)
                if close is not None:
                    close()
        put("end", None)

    thread = threading.Thread(target=produce, name=READER_NAME, daemon=True)
    thread.start()
    try:
        while True:
            kind, value = handoff.get()
            if kind == "end":
                return
            if kind == "error":
                assert isinstance(value, BaseException)
                raise value
            yield value  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()


def read_apart(produce: Callable[..., Iterator[T]], *args: Any) -> Iterator[T]:
    """The items of `produce(*args)`, run in a child process (`produce` and `args` must pickle: a module-level
    function). The same contract as `prefetched`: same items in order, the source's error raised at its
    position. A child that dies without saying why (killed, out of memory) is a DataError after the items it
    sent. Closing the result ends the child; a child whose importer died ends at its next write (a broken pipe).

    The child is `python -P -m shoprec.ingest.ahead FD` (not multiprocessing's "spawn", which runs the parent's
    main script again in the child: a script that imports at its top level would do so twice; `-P`: no module of
    the working directory shadows one it imports). It reads its task from stdin and writes pickled chunks of items
    to the pipe FD (not stdout, where anything it imports may print); the pipe's buffer and one chunk bound how
    far it reads ahead. Where this interpreter cannot start one (embedded, as in uWSGI), the thread of
    `prefetched` reads instead."""
    task = pickle.dumps((sys.path, produce, args))
    read_fd, write_fd = os.pipe()
    try:
        child = _start(write_fd)
    finally:
        os.close(write_fd)
    if child is None:
        os.close(read_fd)
        yield from prefetched(produce(*args))
        return
    stream = os.fdopen(read_fd, "rb")
    try:
        try:
            assert child.stdin is not None
            child.stdin.write(task)
            child.stdin.close()
        except OSError:  # it ended already: said below, with its exit code
            pass
        while True:
            message = _receive(stream, child)
            if message[0] == "end":
                return
            if message[0] == "error":
                raise message[1]
            yield from message[1]
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        stream.close()


def _start(write_fd: int) -> subprocess.Popen[bytes] | None:
    """The reader process, writing to `write_fd`; None where this interpreter cannot start one."""
    if not Path(sys.executable or "").name.lower().startswith(("python", "pypy")):
        return None
    try:
        return subprocess.Popen([sys.executable, "-P", "-m", __name__, str(write_fd)], stdin=subprocess.PIPE,
                                pass_fds=(write_fd,),
                                env=dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p)))
    except OSError:
        return None


def _receive(stream: BinaryIO, child: subprocess.Popen[bytes]) -> tuple[str, Any]:
    """The child's next message; a DataError when it ended without one, or sent what does not unpickle."""
    try:
        message: tuple[str, Any] = pickle.load(stream)  # our own child's pickle
        return message
    except Exception as exc:  # EOF, a truncated or foreign stream: the child is gone or broken
        if child.poll() is None:
            child.kill()
        code = child.wait()
        why = "ended unexpectedly" if isinstance(exc, EOFError) else f"sent unreadable data ({exc})"
        raise DataError(f"the import's reader process {why} (exit code {code})") from None


def _serve(fd: int) -> None:
    """The reader process (`python -P -m shoprec.ingest.ahead FD`): (sys.path, produce, args) from stdin; chunks
    of `produce(*args)` to the pipe FD as ("items", [...]), then ("end", None) or ("error", exc). Ctrl-C is the
    importer's to handle: it ends this process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = os.fdopen(fd, "wb")

    def send(message: tuple[str, Any]) -> None:
        pickle.dump(message, out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()

    chunk: list[Any] = []
    try:
        try:
            path, produce, args = pickle.loads(sys.stdin.buffer.read())  # our own parent's pickle
            sys.path[:] = path
            items = iter(produce(*args))
        except BaseException as exc:  # the task cannot start here (an import error...): the importer raises it
            send(("error", _portable(exc)))
            return
        sent = time.monotonic()
        while True:
            try:
                item = next(items)
            except StopIteration:
                end: tuple[str, Any] = ("end", None)
                break
            except BaseException as exc:  # the source's error: raised by the importer after the items before it
                end = ("error", _portable(exc))
                break
            chunk.append(item)
            if len(chunk) >= CHUNK_ITEMS or time.monotonic() - sent >= CHUNK_SECONDS:
                send(("items", chunk))
                chunk, sent = [], time.monotonic()
        if chunk:  # the items before the end (or before the error) first
            send(("items", chunk))
        send(end)
    except BrokenPipeError:  # the importer is gone (closed the result, or died)
        os._exit(1)


def _portable(exc: BaseException) -> BaseException:
    """`exc` when it survives a pickle round trip (its type and message reach the importer), else a DataError
    with its type and message."""
    try:
        back = pickle.loads(pickle.dumps(exc))
    except Exception:  # any failure to round-trip: sent as text
        back = None
    if type(back) is type(exc) and str(back) == str(exc):
        return exc
    return DataError(f"{type(exc).__name__}: {exc}")


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
