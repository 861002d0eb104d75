"""Servers for the end-to-end tests: the stand-in Ollama server (in a thread) and a real llama.cpp server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.llm.ollama_server import OllamaTestServer

# The real llama.cpp server fixture (tiny random GGUF, `python -m llama_cpp.server`; skips when missing).
from tests.llm.test_openai_compat import llama_server  # noqa: F401


@pytest.fixture(scope="session")
def ollama() -> Iterator[OllamaTestServer]:
    """The stand-in Ollama server speaking the real protocol; tests may read `ollama.requests`."""
    with OllamaTestServer() as server:
        yield server
