"""The LLM contract, for every adapter in backends.LLM_BACKENDS.

A stream yields non-empty text deltas and fills in `Usage` (first-token time, tokens, duration, why it
stopped). Closing it mid-way stops the request: no delta after it, nothing left running. A failing backend
(an error mid-stream, an unknown model, a refused connection) raises LLMError, never a raw exception.
"""

from __future__ import annotations

import pytest

from digihuman.llm.base import LLM, LLMError, Message, Usage
from tests.contracts.backends import LLM_BACKENDS, Backend, Factory, build, failure_params
from tests.contracts.leaks import Snapshot

HELLO = [Message("system", "You are Ada. Answer in one sentence."), Message("user", "Hi there")]


@pytest.fixture(params=[backend.param() for backend in LLM_BACKENDS])
def backend(request: pytest.FixtureRequest) -> Backend[LLM]:
    backend = request.param
    backend.note_gaps(request)
    return backend


async def test_deltas_and_usage(backend: Backend[LLM], request: pytest.FixtureRequest) -> None:
    llm = await build(backend.make, request)
    usage = Usage()
    try:
        deltas = [delta async for delta in llm.stream(HELLO, usage)]
    finally:
        await llm.aclose()
    assert llm.name and llm.model
    assert deltas and all(isinstance(d, str) and d for d in deltas), "non-empty text deltas"
    assert "".join(deltas).strip()
    # Not first_token_s <= duration_s: Ollama reports the server's own total_duration, on another clock.
    assert usage.first_token_s is not None and usage.first_token_s >= 0.0 and usage.duration_s > 0.0
    assert usage.completion_tokens > 0
    assert usage.done_reason in {"stop", "length"}


async def test_closing_the_stream_stops_the_request(
    backend: Backend[LLM], request: pytest.FixtureRequest
) -> None:
    llm = await build(backend.make, request)
    try:
        await llm.preload()
        before = Snapshot.take()
        stream = llm.stream(HELLO, Usage())
        assert await anext(stream)
        await stream.aclose()  # async generators have it; the turn engine calls it
        with pytest.raises(StopAsyncIteration):
            await anext(stream)
        await before.assert_nothing_left()
    finally:
        await llm.aclose()


@pytest.mark.parametrize("failing", failure_params(LLM_BACKENDS))
async def test_a_failing_backend_raises_llm_error(failing: Factory, request: pytest.FixtureRequest) -> None:
    llm = await build(failing, request)
    try:
        with pytest.raises(LLMError):
            async for _ in llm.stream(HELLO, Usage()):
                pass
    finally:
        await llm.aclose()
