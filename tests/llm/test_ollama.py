"""The Ollama adapter against the stand-in server (a real HTTP server speaking Ollama's protocol)."""

from __future__ import annotations

import asyncio
import base64
import logging
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from digihuman.llm import make_llm
from digihuman.llm.base import FailedRound, LLMError, Message, Usage
from digihuman.llm.ollama import OllamaLLM
from tests.llm.conftest import free_port, settings_for
from tests.llm.ollama_server import MID_STREAM_ERROR, OllamaTestServer, tokens

JPEG = b"\xff\xd8\xff\xe0 a tiny stand-in for a camera frame \xff\xd9"
HELLO = [Message("system", "You are Ada."), Message("user", "Hi there", images=(JPEG,))]


async def collect(llm: OllamaLLM, messages: list[Message] = HELLO, usage: Usage | None = None) -> list[str]:
    return [delta async for delta in llm.stream(messages, usage)]


def make(server: OllamaTestServer, model: str, **overrides: object) -> OllamaLLM:
    llm = make_llm(settings_for(server.url, model, **overrides))
    assert isinstance(llm, OllamaLLM)
    llm._busy_backoff_s = 0.01  # the backoff doubling is what matters here, not the wall time
    return llm


async def test_a_reply_streams_as_deltas_with_usage(ollama_server: OllamaTestServer) -> None:
    ollama_server.token_delay_s = 0.005
    llm = make(ollama_server, "ok")
    usage = Usage()
    deltas = await collect(llm, usage=usage)
    await llm.aclose()

    assert len(deltas) > 5
    assert "".join(deltas) == "Hello! You said: Hi there. I can see 1 image. Nice to talk with you."
    assert usage.done_reason == "stop"
    assert usage.images == 1
    assert usage.completion_tokens == len(tokens("".join(deltas)))  # eval_count from the final object
    assert usage.prompt_tokens > 0
    assert usage.first_token_s is not None and 0 < usage.first_token_s < usage.duration_s
    # eval_count / eval_duration: bounded by the server's pace of one token per 5 ms
    assert 0 < usage.tokens_per_s <= 1 / 0.005 * 1.01
    assert usage.thinking_chars == 0 and usage.notes == []


async def test_the_request_follows_the_protocol(ollama_server: OllamaTestServer) -> None:
    llm = make(ollama_server, "ok", num_predict=77, temperature=0.3, keep_alive="30m")
    await collect(llm)
    (body,) = ollama_server.bodies()
    assert body["model"] == "ok"
    assert body["stream"] is True
    assert body["think"] is False
    assert body["options"] == {"num_predict": 77, "temperature": 0.3}
    assert body["keep_alive"] == "30m"
    assert body["messages"][0] == {"role": "system", "content": "You are Ada."}
    user = body["messages"][1]
    assert user["content"] == "Hi there"
    assert user["images"] == [base64.b64encode(JPEG).decode()]  # plain base64, no data: prefix


async def test_keep_alive_in_seconds_is_sent_as_a_number(ollama_server: OllamaTestServer) -> None:
    await collect(make(ollama_server, "ok", keep_alive="-1"))
    assert ollama_server.bodies()[0]["keep_alive"] == -1


async def test_a_thinking_model_is_asked_not_to_think(ollama_server: OllamaTestServer) -> None:
    usage = Usage()
    text = "".join(await collect(make(ollama_server, "thinker"), usage=usage))
    assert text.startswith("Hello!")
    assert usage.thinking_chars == 0  # the stand-in, like Ollama, thinks only when think is not false


async def test_a_reply_that_is_only_thinking_fails_the_round(
    ollama_server: OllamaTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    usage = Usage()
    deltas: list[str] = []
    with caplog.at_level(logging.WARNING), pytest.raises(FailedRound, match="thinking only"):
        async for delta in make(ollama_server, "thinking-only").stream(HELLO, usage):
            deltas.append(delta)
    assert deltas == []
    assert usage.thinking_chars > 0
    assert "failed round" in caplog.text


async def test_thinking_through_the_whole_budget_fails_the_round(ollama_server: OllamaTestServer) -> None:
    usage = Usage()
    with pytest.raises(FailedRound, match=r"whole token budget \(16, llm.num_predict\)"):
        await collect(make(ollama_server, "think-forever", num_predict=16), usage=usage)
    assert usage.done_reason == "length"
    assert usage.thinking_chars > 0


async def test_thinking_past_the_time_limit_fails_the_round(ollama_server: OllamaTestServer) -> None:
    started = time.monotonic()
    with pytest.raises(FailedRound, match="first_token_timeout_s"):
        await collect(make(ollama_server, "slow-thinker", num_predict=10_000, first_token_timeout_s=0.4))
    assert time.monotonic() - started < 3


async def test_think_tags_in_the_content_are_never_spoken(ollama_server: OllamaTestServer) -> None:
    usage = Usage()
    deltas = await collect(make(ollama_server, "think-tags"), usage=usage)
    assert "".join(deltas) == "Hello from tags."
    assert not any("think" in d or "user wants" in d for d in deltas)
    assert usage.thinking_chars == len("The user wants a greeting.")


async def test_an_error_line_mid_stream_raises_with_its_message(ollama_server: OllamaTestServer) -> None:
    deltas: list[str] = []
    with pytest.raises(LLMError, match="unexpected EOF") as error:
        async for delta in make(ollama_server, "mid-error").stream(HELLO):
            deltas.append(delta)
    assert MID_STREAM_ERROR in str(error.value)
    assert "".join(deltas).startswith("Hello")


async def test_a_missing_model_says_how_to_pull_it(ollama_server: OllamaTestServer) -> None:
    with pytest.raises(LLMError, match=r"run `ollama pull qwen9:1b`"):
        await collect(make(ollama_server, "qwen9:1b"))


async def test_an_unreachable_server_says_how_to_start_it() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    llm = make_llm(settings_for(url, "ok"))
    with pytest.raises(LLMError, match="ollama serve") as error:
        await collect(llm)  # type: ignore[arg-type]
    assert url in str(error.value)
    with pytest.raises(LLMError, match="ollama serve"):
        await llm.preload()


async def test_a_busy_server_is_retried_with_backoff(ollama_server: OllamaTestServer) -> None:
    ollama_server.busy_failures = 2
    text = "".join(await collect(make(ollama_server, "busy-then-ok", busy_retries=2)))
    assert text.startswith("Hello!")
    assert len(ollama_server.bodies()) == 3


async def test_a_server_that_stays_busy_gives_a_clear_error(
    ollama_server: OllamaTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    sleeps: list[float] = []
    real_sleep = asyncio.sleep

    async def record_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr("digihuman.llm.transport.asyncio.sleep", record_sleep)
    with pytest.raises(LLMError, match=r"still busy after 3 retries .*503.*llm.busy_retries"):
        await collect(make(ollama_server, "busy", busy_retries=3))
    assert len(ollama_server.bodies()) == 4
    assert sleeps == [0.01, 0.02, 0.04]  # exponential backoff


async def test_a_slow_first_token_times_out_naming_the_setting(ollama_server: OllamaTestServer) -> None:
    started = time.monotonic()
    with pytest.raises(LLMError, match=r"within 0.3 s: raise llm.first_token_timeout_s") as error:
        await collect(make(ollama_server, "slow-first-token", first_token_timeout_s=0.3))
    assert not isinstance(error.value, FailedRound)
    assert time.monotonic() - started < ollama_server.slow_first_token_s


@pytest.mark.parametrize(
    ("model", "spoken"),
    [("loop", "Sure. I am always here for you."), ("loop-zh", "好的。我一直在这里陪着你。")],
)
async def test_a_looping_reply_is_cut_to_its_first_copy(
    ollama_server: OllamaTestServer, model: str, spoken: str
) -> None:
    usage = Usage()
    deltas = await collect(make(ollama_server, model, num_predict=2000), usage=usage)
    assert "".join(deltas) == spoken
    assert usage.done_reason == "loop"
    assert any("loop" in note for note in usage.notes)


async def test_num_predict_caps_the_reply(ollama_server: OllamaTestServer) -> None:
    usage = Usage()
    deltas = await collect(make(ollama_server, "long", num_predict=20), usage=usage)
    assert len(deltas) > 10
    text = "".join(deltas)
    assert text.startswith("Thought 1 is about")
    assert len(tokens(text)) == 20
    assert usage.done_reason == "length"
    assert usage.completion_tokens == 20
    assert any("num_predict" in note for note in usage.notes)


async def test_stopping_early_closes_the_stream_cleanly(ollama_server: OllamaTestServer) -> None:
    llm = make(ollama_server, "long", num_predict=300)
    stream = llm.stream(HELLO)
    first = await anext(stream)
    await stream.aclose()  # what cancelling a turn does
    assert first.startswith("Thought")
    # The connection was released: the same client serves the next reply.
    assert "".join(await collect(llm, usage=Usage()))


async def test_preload_sends_an_empty_chat_with_keep_alive(ollama_server: OllamaTestServer) -> None:
    await make(ollama_server, "ok", keep_alive="1h").preload()
    (body,) = ollama_server.bodies()
    assert body["messages"] == []
    assert body["keep_alive"] == "1h"
    with pytest.raises(LLMError, match="ollama pull"):
        await make(ollama_server, "nope").preload()


# --- the stand-in itself behaves like Ollama ---


def test_the_stand_in_validates_requests_like_ollama(ollama_server: OllamaTestServer) -> None:
    chat = f"{ollama_server.url}/api/chat"
    with httpx.Client() as client:
        assert client.get(ollama_server.url).text == "Ollama is running"
        assert "version" in client.get(f"{ollama_server.url}/api/version").json()
        assert "ok" in [m["name"] for m in client.get(f"{ollama_server.url}/api/tags").json()["models"]]
        assert client.post(chat, content=b"{not json").status_code == 400
        assert client.post(chat, json={"messages": []}).json() == {"error": "model is required"}
        data_url = "data:image/jpeg;base64," + base64.b64encode(JPEG).decode()
        bad_image = {"model": "ok", "messages": [{"role": "user", "content": "x", "images": [data_url]}]}
        reply = client.post(chat, json=bad_image)
        assert reply.status_code == 400 and "illegal base64" in reply.json()["error"]
        thinking = client.post(chat, json={"model": "ok", "messages": HELLO_WIRE, "think": True})
        assert thinking.status_code == 400 and "does not support thinking" in thinking.json()["error"]
        bad_keep_alive = client.post(chat, json={"model": "ok", "messages": HELLO_WIRE, "keep_alive": "soon"})
        assert bad_keep_alive.status_code == 400
        whole = client.post(chat, json={"model": "ok", "messages": HELLO_WIRE, "stream": False}).json()
        assert whole["done"] is True and whole["message"]["content"].startswith("Hello!")


HELLO_WIRE = [{"role": "user", "content": "Hi"}]


def test_the_stand_in_runs_from_the_command_line() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.llm.ollama_server", "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert process.stdout is not None
        assert "listening on" in process.stdout.readline()
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text == "Ollama is running"
    finally:
        process.terminate()
        process.wait(timeout=5)
