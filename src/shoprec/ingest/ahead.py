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
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

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

    The child is `python -m shoprec.ingest.ahead` (not multiprocessing's "spawn", which runs the parent's main
    script again in the child: a script that imports at its top level would do so twice). It reads its task from
    stdin and writes pickled chunks of items to stdout; the pipe's buffer and one chunk bound how far it reads
    ahead. Where no child can be started, the thread of `prefetched` reads instead."""
    task = pickle.dumps((sys.path, produce, args))
    try:
        child = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 env=dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p)))
    except OSError:
        yield from prefetched(produce(*args))
        return
    assert child.stdin is not None and child.stdout is not None
    try:
        child.stdin.write(task)
        child.stdin.close()
        while True:
            try:
                kind, value = pickle.load(child.stdout)
            except EOFError:
                raise DataError(f"the import's reader process ended unexpectedly (exit code {child.wait()})"
                                ) from None
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield from value
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        child.stdout.close()


def _serve() -> None:
    """The reader process (`python -m shoprec.ingest.ahead`): (sys.path, produce, args) from stdin; chunks of
    `produce(*args)` to stdout as ("items", [...]), then ("end", None) or ("error", exc)."""
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # a print of the task's code must not corrupt the stream
    path, produce, args = pickle.loads(sys.stdin.buffer.read())  # our own parent's pickle
    sys.path[:] = path
    chunk: list[Any] = []
    try:
        sent = time.monotonic()
        for item in produce(*args):
            chunk.append(item)
            if len(chunk) >= CHUNK_ITEMS or time.monotonic() - sent >= CHUNK_SECONDS:
                pickle.dump(("items", chunk), out, protocol=pickle.HIGHEST_PROTOCOL)
                out.flush()
                chunk, sent = [], time.monotonic()
        end: tuple[str, Any] = ("end", None)
    except BrokenPipeError:  # the importer is gone (closed the result, or died)
        return
    except BaseException as exc:  # every other error goes to the importer, which raises it there
        end = ("error", _portable(exc))
    try:
        if chunk:  # the items before the end (or before the error) first
            pickle.dump(("items", chunk), out, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.dump(end, out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()
    except BrokenPipeError:
        return


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
    _serve()
