"""Servers the contract suite shares: the stand-in Ollama and GPT-SoVITS servers (threads in this process)
and the real llama.cpp server with the tiny GGUF (a subprocess; skipped where llama-cpp-python is missing)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.llm.ollama_server import OllamaTestServer

# The module-scoped real llama.cpp server fixture, started once for the LLM contract module.
from tests.llm.test_openai_compat import llama_server  # noqa: F401

# Real models cached on this machine (skips naming the fix where absent): the Piper voice.
from tests.real_models import piper_joe  # noqa: F401


@pytest.fixture(scope="module")
def ollama_contract_server() -> Iterator[OllamaTestServer]:
    with OllamaTestServer() as server:
        yield server


@pytest.fixture(scope="module")
def gpt_sovits_server() -> Iterator[Any]:
    from tests.tts.gpt_sovits_server import Running, StandIn

    with Running(StandIn()) as server:
        yield server
