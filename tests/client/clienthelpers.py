"""Helpers of the client tests: the Live server's description, free_port, and DroppingProxy.

DroppingProxy: a TCP proxy in front of a live server that loses answers on purpose: for the first `drops` requests whose
first bytes match `prefix` (e.g. b"POST /v1/events"), the request reaches the server, which does the work,
and its answer is thrown away and the client's connection closed, as when a network drops a connection
after the request was sent. Real sockets, no mock: what the client and the server do is theirs."""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Live:
    base: str  # the API, e.g. http://127.0.0.1:PORT
    api_key: str  # shop's key with every scope
    admin_key: str
    item_ids: list[str]
    user_ids: list[str]
    popular_id: str  # a trained, inactive model of shop
    page_port: int  # the port the browser test's page server must use (the CORS origin allowed)
    root: Path


class DroppingProxy:
    def __init__(self, upstream_port: int, prefix: bytes, drops: int = 1, port: int = 0) -> None:
        self.upstream_port, self.prefix, self.drops = upstream_port, prefix, drops
        self.dropped = 0
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", port))
        self.port = int(self._server.getsockname()[1])
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._closed = True
        self._server.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        state = {"drop": False}

        def up() -> None:  # client -> server; marks the connection when a matching request starts
            try:
                while data := client.recv(65536):
                    if data.startswith(self.prefix):
                        with self._lock:
                            if self.dropped < self.drops:
                                self.dropped += 1
                                state["drop"] = True
                    upstream.sendall(data)
            except OSError:
                pass

        threading.Thread(target=up, daemon=True).start()
        try:
            while data := upstream.recv(65536):
                if state["drop"]:  # the server answered: lose the answer and the connection
                    break
                client.sendall(data)
        except OSError:
            pass
        finally:
            for s in (client, upstream):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
