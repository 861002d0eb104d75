"""The real server for the server tests: uvicorn on a free port in a thread, its LLM the stand-in Ollama."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn

from digihuman.config import LLMSettings, ServerSettings, Settings
from digihuman.server.app import WS_MAX_BYTES, Guard, create_app
from digihuman.server.sessions import SessionManager
from tests.llm.ollama_server import OllamaTestServer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    app: Guard
    url: str
    ws_url: str
    token: str
    _server: uvicorn.Server
    _thread: threading.Thread

    @property
    def manager(self) -> SessionManager:
        assert self.app.api is not None
        manager: SessionManager = self.app.api.state.manager
        return manager

    def client(self, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.Client(base_url=self.url, timeout=60, headers=headers, **kwargs)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(15)


def start_server(settings: Settings, token: str = "") -> RunningServer:
    app = create_app(settings, token)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, ws_max_size=WS_MAX_BYTES, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    return RunningServer(app, url, f"ws://127.0.0.1:{port}", token, server, thread)


def server_settings(ollama_url: str, model: str = "ok", **server: Any) -> Settings:
    return Settings(
        llm=LLMSettings(backend="ollama", url=ollama_url, model=model),
        server=ServerSettings(**server),
    )


@pytest.fixture(scope="session")
def ollama() -> Iterator[OllamaTestServer]:
    with OllamaTestServer() as server:
        yield server


@pytest.fixture(scope="module")
def server(ollama: OllamaTestServer) -> Iterator[RunningServer]:
    """One server for a module (sessions are independent, so tests share it); at most 3 sessions."""
    running = start_server(server_settings(ollama.url, max_sessions=3))
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def _no_leftover_sessions(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test starts with no open sessions on a shared server (a test's sessions do not leak)."""
    yield
    if "server" in request.fixturenames:
        running: RunningServer = request.getfixturevalue("server")
        with running.client() as client:
            for session_id in list(running.manager.sessions):
                client.delete(f"/v1/sessions/{session_id}")
