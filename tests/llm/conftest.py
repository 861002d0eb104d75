"""Fixtures for the LLM adapter tests: the stand-in Ollama server and settings pointing at it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from digihuman.config import LLMSettings
from tests.llm.ollama_server import OllamaTestServer


@pytest.fixture
def ollama_server() -> Iterator[OllamaTestServer]:
    with OllamaTestServer(slow_first_token_s=3.0) as server:
        yield server


def settings_for(url: str, model: str, **overrides: Any) -> LLMSettings:
    """Settings for a test: generous first-token time (CI machines are busy) unless a test sets its own."""
    values: dict[str, Any] = {"url": url, "model": model, "first_token_timeout_s": 10.0, "busy_retries": 2}
    values.update(overrides)
    return LLMSettings(**values)


def free_port() -> int:
    """A port nothing listens on (bound and released: a refused connection)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
