"""The OpenAI-compatible adapter: against a real llama.cpp server running a tiny generated model, and
against the stand-in Ollama server's /v1 endpoint for the scripted cases (reasoning, loops, errors) that
random weights cannot produce."""

from __future__ import annotations

import base64
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from digihuman.llm import make_llm
from digihuman.llm.base import FailedRound, LLMError, Message, Usage
from digihuman.llm.openai_compat import OpenAICompatLLM
from tests.llm.conftest import free_port, settings_for
from tests.llm.ollama_server import MID_STREAM_ERROR, OllamaTestServer
from tests.real_models import serve_gguf

REPO = Path(__file__).resolve().parents[2]
JPEG = b"\xff\xd8\xff\xe0 a tiny stand-in for a camera frame \xff\xd9"
HELLO = [Message("system", "You are Ada."), Message("user", "Hi there")]
LOOK = [Message("user", "What do you see?", images=(JPEG,))]


def make(url: str, model: str, **overrides: object) -> OpenAICompatLLM:
    llm = make_llm(settings_for(url, model, backend="openai", **overrides))
    assert isinstance(llm, OpenAICompatLLM)
    llm._busy_backoff_s = 0.01
    return llm


async def collect(
    llm: OpenAICompatLLM, messages: list[Message] = HELLO, usage: Usage | None = None
) -> list[str]:
    return [delta async for delta in llm.stream(messages, usage)]


# --- against the stand-in's OpenAI-compatible endpoint ---


@pytest.fixture
def v1(ollama_server: OllamaTestServer) -> str:
    return f"{ollama_server.url}/v1"


async def test_the_request_follows_the_protocol(ollama_server: OllamaTestServer, v1: str) -> None:
    usage = Usage()
    text = "".join(await collect(make(v1, "ok", num_predict=99, temperature=0.2), LOOK, usage))
    assert text == "Hello! You said: What do you see. I can see 1 image. Nice to talk with you."
    (body,) = ollama_server.bodies("/v1/chat/completions")
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 99
    assert body["temperature"] == 0.2
    assert body["chat_template_kwargs"] == {"enable_thinking": False}
    text_part, image_part = body["messages"][0]["content"]
    assert text_part == {"type": "text", "text": "What do you see?"}
    assert image_part == {
        "type": "image_url",
        "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(JPEG).decode()},
    }
    assert usage.images == 1
    assert usage.done_reason == "stop"
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0  # from the usage chunk


@pytest.mark.parametrize("field", ["reasoning", "reasoning_content"])
async def test_reasoning_fields_are_counted_never_spoken(
    ollama_server: OllamaTestServer, v1: str, field: str
) -> None:
    ollama_server.reasoning_field = field
    usage = Usage()
    deltas = await collect(make(v1, "thinker"), usage=usage)
    assert "".join(deltas).startswith("Hello!")
    assert not any("greeted" in d for d in deltas)
    assert usage.thinking_chars == len("The user greeted me. I should answer warmly and briefly.")


async def test_think_tags_are_stripped(v1: str) -> None:
    assert "".join(await collect(make(v1, "think-tags"))) == "Hello from tags."


async def test_only_thinking_fails_the_round(v1: str) -> None:
    with pytest.raises(FailedRound, match="thinking only"):
        await collect(make(v1, "thinking-only"))
    with pytest.raises(FailedRound, match=r"whole token budget \(16"):
        await collect(make(v1, "think-forever", num_predict=16))


async def test_a_loop_is_cut(v1: str) -> None:
    usage = Usage()
    assert (
        "".join(await collect(make(v1, "loop-zh", num_predict=500), usage=usage))
        == "好的。我一直在这里陪着你。"
    )
    assert usage.done_reason == "loop"


async def test_an_error_event_mid_stream_raises_with_its_message(v1: str) -> None:
    with pytest.raises(LLMError, match="failed mid-reply") as error:
        await collect(make(v1, "mid-error"))
    assert MID_STREAM_ERROR in str(error.value)


async def test_a_missing_model_is_a_clear_error(v1: str) -> None:
    with pytest.raises(LLMError, match=r"has no model 'nope' \(404: .*check llm.model"):
        await collect(make(v1, "nope"))


async def test_a_bad_request_is_a_clear_error(v1: str) -> None:
    with pytest.raises(LLMError, match=r"rejected the request .*\(400: model is required\)") as error:
        await collect(make(v1, ""))
    assert "\n" not in str(error.value)


async def test_a_busy_server_is_retried(ollama_server: OllamaTestServer, v1: str) -> None:
    assert "".join(await collect(make(v1, "busy-then-ok", busy_retries=2))).startswith("Hello!")
    assert len(ollama_server.bodies("/v1/chat/completions")) == 3
    with pytest.raises(LLMError, match="still busy after 1 retries"):
        await collect(make(v1, "busy", busy_retries=1))


async def test_a_slow_first_token_times_out_naming_the_setting(v1: str) -> None:
    with pytest.raises(LLMError, match=r"llm\.first_token_timeout_s"):
        await collect(make(v1, "slow-first-token", first_token_timeout_s=0.3))


async def test_an_unreachable_server_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    llm = make(url, "ok")
    with pytest.raises(LLMError, match="cannot reach the OpenAI-compatible server") as error:
        await collect(llm)
    assert url in str(error.value) and "llm.url" in str(error.value)
    with pytest.raises(LLMError, match="cannot reach"):
        await llm.preload()


# --- against a real llama.cpp server ---


def _llama_server_missing() -> str | None:
    for module in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "gguf"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (needs: pip install 'llama-cpp-python[server]' gguf)"
    return None


def _load_gguf_builder():  # scripts/ is not a package: load the generator by path
    spec = importlib.util.spec_from_file_location("build_test_gguf", REPO / "scripts" / "build_test_gguf.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if reason := _llama_server_missing():
        pytest.skip(reason)
    model = _load_gguf_builder().cached_test_gguf()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with serve_gguf(model, log, n_ctx=512, alias="tiny", n_threads=1) as url:
        yield url


@pytest.mark.llamacpp
async def test_llamacpp_streams_deltas_with_usage_and_timing(llama_server: str) -> None:
    llm = make(llama_server, "tiny", num_predict=16)
    usage = Usage()
    deltas = await collect(llm, usage=usage)
    await llm.aclose()
    assert len(deltas) > 3  # random words, streamed one by one
    assert all(isinstance(d, str) and d for d in deltas)
    assert usage.done_reason == "length"  # the model never emits end-of-sequence: it runs to max_tokens
    # max_tokens respected. llama-cpp-python's server sends no usage chunk (llama-server does): the adapter
    # then counts the streamed content chunks, one per token.
    assert usage.completion_tokens == 16
    assert usage.first_token_s is not None and 0 < usage.first_token_s <= usage.duration_s
    assert usage.tokens_per_s > 0


@pytest.mark.llamacpp
async def test_llamacpp_accepts_image_parts_or_says_clearly_why_not(llama_server: str) -> None:
    usage = Usage()
    try:
        deltas = await collect(make(llama_server, "tiny", num_predict=16), LOOK, usage)
    except LLMError as error:  # a server without vision support must say so in one line
        assert "400" in str(error) and "\n" not in str(error)
    else:
        assert deltas and usage.images == 1


@pytest.mark.llamacpp
async def test_llamacpp_preload_checks_the_server(llama_server: str) -> None:
    await make(llama_server, "tiny").preload()
