"""A small protocol client for the tests and benchmarks: JSON events and media frames from a session."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.sync.client import ClientConnection, connect

from digihuman.server import protocol


@dataclass
class Received:
    events: list[dict[str, Any]] = field(default_factory=list)
    media: list[tuple[protocol.MediaFrame, float]] = field(default_factory=list)  # (frame, arrival time)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    def frames(self, kind: int, turn: int | None = None) -> list[protocol.MediaFrame]:
        return [m for m, _ in self.media if m.kind == kind and (turn is None or m.turn == turn)]


class SessionClient:
    def __init__(self, ws_url: str, session_id: str, token: str = "") -> None:
        query = f"?token={token}" if token else ""
        self._stack = contextlib.ExitStack()
        self.ws: ClientConnection = self._stack.enter_context(
            # max_queue=None: a test that stops reading must not stall the close handshake (flow control).
            connect(
                f"{ws_url}/v1/sessions/{session_id}/ws{query}",
                max_size=2**24,
                open_timeout=30,
                max_queue=None,
                close_timeout=2,
            )
        )
        self.got = Received()

    def send(self, message: dict[str, Any]) -> None:
        self.ws.send(json.dumps(message))

    def send_raw(self, data: str | bytes) -> None:
        self.ws.send(data)

    def pump(self, until: Callable[[Received], bool], timeout: float = 30.0) -> Received:
        """Read until `until(received)` holds; fail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not until(self.got):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                types = [e["type"] for e in self.got.events][-20:]
                raise AssertionError(f"timed out; last events: {types}")
            try:
                message = self.ws.recv(timeout=remaining)
            except TimeoutError:
                continue
            if isinstance(message, bytes):
                self.got.media.append((protocol.unpack(message), time.monotonic()))
            else:
                self.got.events.append(json.loads(message))
        return self.got

    def next_error(self, timeout: float = 10.0) -> str:
        seen = len(self.got.of("error"))
        self.pump(lambda r: len(r.of("error")) > seen, timeout)
        return str(self.got.of("error")[-1]["message"])

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> SessionClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def stalled_page(ws_url: str, session_id: str, text: str) -> socket.socket:
    """A page that sends `text` and then never reads: a raw WebSocket with a tiny receive buffer, so the
    server's sends to it block once the buffers are full."""
    host, port = ws_url.removeprefix("ws://").rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /v1/sessions/{session_id}/ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    assert b" 101 " in response.split(b"\r\n", 1)[0], response
    payload = json.dumps({"type": "user_text", "text": text}).encode()
    assert len(payload) < 126
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
    return sock
