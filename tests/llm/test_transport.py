"""Timeouts that tell the truth, and tokens of a failed round that still count (both HTTP adapters)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from digihuman.llm import make_llm
from digihuman.llm.base import LLMError, Message, Usage
from digihuman.llm.transport import GRACE_S, first_deadline
from tests.llm.conftest import settings_for
from tests.llm.ollama_server import OllamaTestServer

HELLO = [Message("user", "Hi there")]
LIMIT_S = 0.6


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A server that accepts connections and never answers a byte."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def test_a_preload_that_got_no_answer_uses_up_the_first_wait() -> None:
    assert first_deadline(100.0, 60.0, None) == 160.0
    assert first_deadline(100.0, 60.0, 40.0) == 105.0  # 60 s since the preload began, plus the grace
    assert first_deadline(100.0, 60.0, 90.0) == 150.0
    assert first_deadline(100.0, 1.0, 0.0) == 101.0  # the grace never exceeds the limit itself
    assert GRACE_S <= 5.0


@pytest.mark.parametrize("backend", ["ollama", "openai"])
async def test_a_silent_server_costs_the_first_token_limit_not_the_request_timeout(
    silent_url: str, backend: str
) -> None:
    url = silent_url + ("/v1" if backend == "openai" else "")
    settings = settings_for(url, "m", backend=backend, first_token_timeout_s=LIMIT_S, request_timeout_s=30)
    llm = make_llm(settings)
    began = time.monotonic()
    with pytest.raises(LLMError, match=r"within 0.6 s \(llm.first_token_timeout_s\)"):
        await llm.preload()
    with pytest.raises(LLMError, match=r"no reply from m within 1 s, the preload included") as error:
        async for _ in llm.stream(HELLO):
            pass
    waited = time.monotonic() - began
    assert waited < 2 * LIMIT_S + 1.0, waited  # the limit plus the grace, not 30 s + 0.6 s
    assert "\n" not in str(error.value)
    await llm.aclose()


@pytest.mark.parametrize("backend", ["ollama", "openai"])
async def test_a_round_failing_mid_stream_still_counts_its_tokens(
    ollama_server: OllamaTestServer, backend: str
) -> None:
    url = ollama_server.url + ("/v1" if backend == "openai" else "")
    llm = make_llm(settings_for(url, "mid-error", backend=backend))
    usage = Usage()
    with pytest.raises(LLMError, match="failed mid-reply"):
        async for _ in llm.stream(HELLO, usage):
            pass
    assert usage.completion_tokens >= 2  # "Hello there, " was streamed before the error
    await llm.aclose()
