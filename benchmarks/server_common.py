"""Shared by the server benchmarks: `digihuman serve` in its own process, its CPU time, a protocol client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets

from digihuman.server import protocol

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stand_in import REPO, free_port, ollama_stand_in

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass
class Server:
    url: str
    ws_url: str
    process: subprocess.Popen[bytes]

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120)

    def new_session(self, character: str = "ada") -> str:
        with self.http() as client:
            response = client.post("/v1/sessions", json={"character": character})
            response.raise_for_status()
            return str(response.json()["id"])


@contextmanager
def running_server(model: str = "long", max_sessions: int = 16, home: str | None = None) -> Iterator[Server]:
    """`digihuman serve` in a subprocess, its brain the stand-in Ollama server (scripted `model`)."""
    with ollama_stand_in() as ollama_url:
        port = free_port()
        env = dict(os.environ, DIGIHUMAN_HOME=home or str(Path("/tmp/digihuman-bench-home")))
        command = [
            str(REPO / ".venv/bin/digihuman"), "serve", "--port", str(port),
            "--max-sessions", str(max_sessions), "--llm", "ollama", "--llm-url", ollama_url, "--model", model,
        ]  # fmt: skip
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the server did not start: {process.stderr.read().decode() if process.stderr else ''}"
                )
            time.sleep(0.1)
        try:
            yield Server(url, f"ws://127.0.0.1:{port}", process)
        finally:
            process.terminate()
            process.wait(20)


@dataclass
class Client:
    """An asyncio protocol client that records what arrives and when (monotonic seconds)."""

    ws: Any
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    media: list[tuple[float, protocol.MediaFrame]] = field(default_factory=list)

    @classmethod
    async def connect(cls, server: Server, session_id: str) -> Client:
        ws = await websockets.connect(f"{server.ws_url}/v1/sessions/{session_id}/ws", max_size=2**24)
        return cls(ws)

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def run(self) -> None:
        try:
            async for message in self.ws:
                now = time.monotonic()
                if isinstance(message, bytes):
                    self.media.append((now, protocol.unpack(message)))
                else:
                    self.events.append((now, json.loads(message)))
        except websockets.ConnectionClosed:
            pass

    def video_due_between(self, start: float, end: float, turn: int = 1) -> int:
        """Frames due in [start, end) on a page that plays the turn in real time (from its first audio, like
        the page: `LEAD_S` later) and that arrived before they were due: what a viewer actually saw."""
        from digihuman.server.media import LEAD_S

        first = next((at for at, m in self.media if m.kind == protocol.AUDIO and m.turn == turn), None)
        if first is None:
            return 0
        origin = first + LEAD_S
        return sum(
            1
            for at, m in self.media
            if m.kind == protocol.VIDEO
            and m.turn == turn
            and start <= origin + m.t < end
            and at <= origin + m.t
        )

    def first(self, kind: int, after: float) -> float | None:
        return next((at for at, m in self.media if m.kind == kind and at >= after), None)
