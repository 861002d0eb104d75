"""The built-in brain (llm.backend = "llamacpp"): a real GGUF chat model run in-process.

The answers come from real weights (Qwen2.5-Coder-0.5B-Instruct, assembled by scripts/fetch_test_models.py;
the tests skip with the command when it is absent), so they check the script and the shape of a reply, not
its words. Replies are kept short (num_predict 24-48, n_ctx 1024) so the file runs in seconds.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from digihuman.config import LLMSettings
from digihuman.errors import MissingExtraError, UserError
from digihuman.llm import llamacpp, make_llm
from digihuman.llm.base import LLMError, Message, RequestRefused, Usage
from digihuman.llm.llamacpp import DEFAULT_MODEL, LlamaCppLLM, model_spec, readiness
from digihuman.llm.no_brain import GuessedOllama
from digihuman.llm.ollama import OllamaLLM
from digihuman.llm.scene_words import ask as ask_with_scene
from tests.llm.conftest import free_port
from tests.real_models import real_model_path

HAN = re.compile(r"[\u4e00-\u9fff]")
LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
SYSTEM = Message("system", "You are Ada, a friendly companion. Answer in one short sentence.")


class Hidden:
    """A wrapper that passes requests through but says nothing about pictures."""

    name = "hidden"

    def __init__(self, llm: LlamaCppLLM) -> None:
        self._llm, self.model = llm, llm.model

    def stream(self, messages: Sequence[Message], usage: Usage | None = None) -> AsyncIterator[str]:
        return self._llm.stream(messages, usage)


def brain(model: Path | str, **overrides: object) -> LlamaCppLLM:
    values: dict[str, object] = {"backend": "llamacpp", "model": str(model), "n_ctx": 1024, "num_predict": 32}
    values.update(overrides)
    llm = make_llm(LLMSettings(**values))  # type: ignore[arg-type]
    assert isinstance(llm, LlamaCppLLM)
    return llm


@pytest.fixture
def qwen() -> Path:
    pytest.importorskip("llama_cpp", reason="the built-in brain needs: pip install 'digihuman[llamacpp]'")
    return real_model_path("qwen-gguf")


async def ask(llm: LlamaCppLLM, question: str, usage: Usage | None = None) -> str:
    return "".join([d async for d in llm.stream([SYSTEM, Message("user", question)], usage)])


async def test_answers_in_english_with_usage(qwen: Path) -> None:
    llm = brain(qwen)
    try:
        usage = Usage()
        answer = await ask(llm, "What is the capital of France?", usage)
    finally:
        await llm.aclose()
    assert LATIN_WORD.search(answer) and not HAN.search(answer), answer
    assert usage.first_token_s is not None and 0 < usage.first_token_s < usage.duration_s
    assert usage.prompt_tokens > 10 and 0 < usage.completion_tokens <= 32
    assert usage.done_reason in ("stop", "length") and usage.images == 0
    assert llm.load_s is not None and llm.path == qwen.resolve()


async def test_answers_in_chinese(qwen: Path) -> None:
    llm = brain(qwen)
    try:
        answer = await ask(llm, "请用一句话介绍一下北京。")
    finally:
        await llm.aclose()
    assert len(HAN.findall(answer)) >= 4, answer


async def test_closing_the_stream_stops_generation_within_a_token(qwen: Path) -> None:
    llm = brain(qwen, num_predict=400, temperature=0.0)
    try:
        await llm.preload()
        stream = llm.stream([SYSTEM, Message("user", "Count from one to two hundred in words.")])
        deltas = [await anext(stream) for _ in range(3)]
        await stream.aclose()  # a cancelled turn closes the stream like this
        closed = time.monotonic()
        usage = Usage()
        assert await ask(llm, "Say hello.", usage)  # served at once: nothing still generates
        waited = time.monotonic() - closed
    finally:
        await llm.aclose()
    assert len(deltas) == 3
    assert usage.first_token_s is not None
    # The old reply would have taken ~10 s more; the new one waits at most a token or two for it.
    assert waited - usage.duration_s < 1.0, (waited, usage)


async def test_preload_with_the_system_prompt_leaves_it_in_the_cache(qwen: Path) -> None:
    llm = brain(qwen)
    try:
        await llm.preload()
        assert llm._llama is not None and llm._llama.n_tokens == 0  # loaded, nothing evaluated
        await llm.preload(SYSTEM.content)
        primed = list(llm._llama.eval_tokens)
        persona = len(llm._llama.tokenize(SYSTEM.content.encode(), add_bos=False))
        assert len(primed) > persona  # the persona, in the chat template
        assert await ask(llm, "Say hello.")
        turn = list(llm._llama.eval_tokens)
        shared = next(i for i, (a, b) in enumerate(zip(primed, turn, strict=False)) if a != b)
        assert shared > persona  # the turn's prompt began with what was evaluated ahead
    finally:
        await llm.aclose()


async def test_the_first_sentence_gets_every_core_then_the_steady_count(
    qwen: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(llamacpp.os, "cpu_count", lambda: 4)
    calls: list[int] = []
    monkeypatch.setattr(llamacpp, "_set_threads", lambda llama, threads: calls.append(threads))
    prompt = [SYSTEM, Message("user", "Tell me two short facts about cats.")]
    llm = brain(qwen, num_predict=48, temperature=0.0)
    try:
        reply = "".join([d async for d in llm.stream(prompt)])
    finally:
        await llm.aclose()
    assert re.search(r"[.!?]", reply), reply
    assert calls == [4, 2, 2]  # all cores; half once the first sentence ended; half after the reply
    calls.clear()
    llm = brain(qwen, num_predict=16, n_threads=3)
    try:
        assert [d async for d in llm.stream(prompt)]
    finally:
        await llm.aclose()
    assert calls == [3, 3]  # an explicit llm.n_threads holds throughout


async def test_a_request_with_pictures_is_refused_so_the_caller_can_use_words(qwen: Path) -> None:
    llm = brain(qwen, num_predict=16)
    assert llm.accepts_images is False
    with pytest.raises(RequestRefused, match="reads no pictures"):
        await anext(llm.stream([Message("user", "Hi!", images=(b"\xff\xd8",))]))
    assert llm.load_s is None  # refused before anything was loaded
    # Behind a wrapper that hides `accepts_images` (the web server shares one model), words still arrive.
    usage = Usage()
    text = "".join(
        [
            d
            async for d in ask_with_scene(
                Hidden(llm),
                [Message("user", "Hi!", images=(b"\xff\xd8",))],
                usage,
                lambda: "Camera report: nobody is in view.",
            )
        ]
    )
    await llm.aclose()
    assert text and usage.images == 0


async def test_a_conversation_longer_than_the_context_says_which_key_to_raise(qwen: Path) -> None:
    llm = brain(qwen, n_ctx=512)
    try:
        with pytest.raises(LLMError, match=r"raise llm\.n_ctx \(now 512\)"):
            await ask(llm, "hello " * 700)
    finally:
        await llm.aclose()


async def test_a_missing_model_file_is_a_user_error(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    llm = brain(tmp_path / "nope.gguf")
    with pytest.raises(UserError, match="does not exist"):
        await llm.preload()
    await llm.aclose()


async def test_a_file_that_is_not_a_model_says_so(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a model")
    llm = brain(junk)
    with pytest.raises(LLMError, match=r"cannot load .*junk\.gguf"):
        await llm.preload()
    await llm.aclose()


async def test_without_the_extra_it_names_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import fails as when it is not installed
    llm = brain(tmp_path / "model.gguf")
    with pytest.raises(MissingExtraError, match=r"digihuman\[llamacpp\]"):
        await llm.preload()
    await llm.aclose()


def test_the_default_model_is_the_small_multilingual_one() -> None:
    assert model_spec(LLMSettings(backend="llamacpp")) == DEFAULT_MODEL
    assert model_spec(LLMSettings(backend="llamacpp", model="~/m.gguf")) == "~/m.gguf"


async def test_with_nothing_configured_a_missing_ollama_names_all_three_brains() -> None:
    settings = LLMSettings()
    assert isinstance(make_llm(settings), GuessedOllama)
    # The same settings, pointed at a closed port as if it were the default address.
    object.__setattr__(settings, "url", f"http://127.0.0.1:{free_port()}")
    llm = make_llm(settings)
    with pytest.raises(LLMError) as error:
        async for _ in llm.stream([Message("user", "hi")]):
            pass
    message = str(error.value)
    assert "no LLM is configured" in message
    for way in ("ollama serve", "--llm openai", "--llm llamacpp"):
        assert way in message
    await llm.aclose()


def test_a_configured_ollama_keeps_its_own_error() -> None:
    llm = make_llm(LLMSettings(url="http://127.0.0.1:11434"))
    assert type(llm) is OllamaLLM


def test_doctor_readiness_names_the_model_or_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    settings = LLMSettings(backend="llamacpp", model=str(model), n_threads=3)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: object())
    ok, detail, fix = readiness(settings)
    assert ok and str(model) in detail and "3 threads" in detail and not fix
    ok, detail, fix = readiness(LLMSettings(backend="llamacpp"))  # the default name, not downloaded here
    assert not ok and DEFAULT_MODEL in detail and "models pull" in fix
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    ok, detail, fix = readiness(settings)
    assert not ok and "digihuman[llamacpp]" in fix
