"""The built-in brain: a GGUF chat model run in-process by llama.cpp (llama-cpp-python), no server needed.

Why in-process rather than a managed `llama_cpp.server` child reached over HTTP (benchmarks/brain.py
--compare-server, README "Backends"): llama.cpp runs at the same speed either way (first token, tokens/s and
first audio agreed within the noise of a shared 2-core machine), while in-process loads faster (0.37 vs
0.82 s until the server answers), uses less memory (580 vs 660 MB), needs no port and no child process to
supervise, and knows without asking that a plain GGUF chat model reads no pictures.

Every llama.cpp call runs on one worker thread (a `Llama` is not thread-safe): requests queue behind each
other. Tokens cross to the event loop through an asyncio queue; closing the stream (a cancelled turn) sets a
flag the worker checks between tokens, so generation stops within one token. The prompt evaluation before
the first token cannot be interrupted, but llama.cpp reuses the cached prefix (persona and history), so it is
short after the first reply.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from digihuman.config import LLMSettings
from digihuman.errors import MissingExtraError, UserError
from digihuman.llm.base import LLMError, Message, RequestRefused, Usage
from digihuman.llm.guard import ReplyGuard
from digihuman.llm.transport import next_chunk

if TYPE_CHECKING:
    from llama_cpp import Llama

logger = logging.getLogger(__name__)

# The model used when llm.model is left at its (Ollama) default: small, Apache-2.0, good English and Chinese.
DEFAULT_MODEL = "qwen2.5-0.5b-instruct"


def readiness(settings: LLMSettings) -> tuple[bool, str, str]:
    """For `digihuman doctor`: whether the built-in brain can start now, what it would run, and the fix."""
    import importlib.util

    from digihuman import models
    from digihuman.errors import BackendError

    spec = model_spec(settings)
    if importlib.util.find_spec("llama_cpp") is None:
        return False, "llama-cpp-python is not installed", ".venv/bin/pip install 'digihuman[llamacpp]'"
    try:
        path = models.resolve(spec, kind="llm", download=False)
    except BackendError as exc:  # not downloaded yet: it will be on first use
        return False, f"model {spec} is not downloaded yet (it downloads on first use)", str(exc)
    except UserError as exc:
        return False, str(exc), "set llm.model to a .gguf path or a model name"
    threads = thread_count(settings)
    return True, f"{path} ({threads} thread{'s' * (threads > 1)}, context {settings.n_ctx})", ""


def model_spec(settings: LLMSettings) -> str:
    """What llm.model names for this backend: the default Ollama tag means "the built-in default"."""
    default = LLMSettings.model_fields["model"].default
    return DEFAULT_MODEL if settings.model == default else settings.model


def thread_count(settings: LLMSettings) -> int:
    """llm.n_threads, or half the cores. llama.cpp's threads meet at a barrier after every step, so when one
    is preempted (by the voice, the face or the event loop) the others spin: on 2 cores, 2 threads streamed
    5 tokens/s during a spoken turn against 30 with 1 thread (benchmarks/brain.py --threads)."""
    return settings.n_threads or max(1, (os.cpu_count() or 2) // 2)


def first_sentence_threads(settings: LLMSettings) -> int:
    """Threads until the reply's first sentence is out. Nothing speaks yet, so nothing preempts them, and the
    first sentence is what the user waits for (on 2 cores: 39 tokens/s with both, 26 with one). An explicit
    llm.n_threads holds throughout."""
    return settings.n_threads or (os.cpu_count() or 2)


_SENTENCE_END = re.compile(r"[.!?。！？\n]")
_FIRST_SENTENCE_TOKENS = 32  # a longer first sentence is cut by the splitter anyway


class _End:
    """The worker's last item: how many tokens the context holds (prompt + reply), for Usage."""

    def __init__(self, n_tokens: int) -> None:
        self.n_tokens = n_tokens


class _Channel:
    """Chunks from the worker thread to the event loop, and a stop flag the other way."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self.stop = threading.Event()
        self.n_tokens: int | None = None

    def put(self, item: Any) -> None:  # worker thread
        if not self.stop.is_set():
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    async def items(self) -> AsyncGenerator[dict[str, Any], None]:
        while not isinstance(item := await self._queue.get(), _End):
            if isinstance(item, BaseException):
                raise item
            yield item
        self.n_tokens = item.n_tokens


class LlamaCppLLM:
    """A GGUF chat model loaded by llama-cpp-python in this process."""

    name = "llamacpp"
    # A plain GGUF chat model has no vision projector: camera frames must reach it in words.
    accepts_images: bool | None = False

    def __init__(self, settings: LLMSettings) -> None:
        self.settings = settings
        self.spec = model_spec(settings)
        self.model = Path(self.spec).name if os.sep in self.spec else self.spec
        self.path: Path | None = None
        self.load_s: float | None = None
        self._llama: Llama | None = None
        # One thread owns the model: loading, generating and freeing it never overlap.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llamacpp")
        self._loading: asyncio.Future[Llama] | None = None

    async def preload(self, system: str = "") -> None:
        """Find (or download) the model file and load it; later calls return at once. With `system`, the
        system prompt is evaluated too: llama.cpp keeps it in its cache, so the first turn only evaluates
        the user's words (on 2 cores a ~150-token persona costs ~0.5 s)."""
        llama = await self._loaded()
        if system:
            await asyncio.get_running_loop().run_in_executor(self._worker, self._prime, llama, system)

    async def stream(self, messages: Sequence[Message], usage: Usage | None = None) -> AsyncIterator[str]:
        usage = usage if usage is not None else Usage()
        if any(m.images for m in messages):
            # Refused like a text-only server would: a caller (scene_words.ask) then sends words instead.
            raise RequestRefused(
                f"{self.model} reads no pictures (a GGUF chat model without a vision projector)"
            )
        llama = await self._loaded()
        started = time.monotonic()
        guard = ReplyGuard(usage, model=self.model, token_budget=self.settings.num_predict, started=started)
        channel = _Channel(asyncio.get_running_loop())
        request = {
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "stream": True,
            "max_tokens": self.settings.num_predict,
            "temperature": self.settings.temperature,
        }
        self._worker.submit(self._generate, llama, request, channel)
        chunks = channel.items()
        deadline = started + self.settings.first_token_timeout_s
        finish_reason = ""
        received = 0
        try:
            while (chunk := await self._next(chunks, guard, deadline, started)) is not None:
                choice = chunk["choices"][0]
                text = choice.get("delta", {}).get("content") or ""
                received += bool(text)
                if text and (spoken := guard.content(text)):
                    yield spoken
                finish_reason = choice.get("finish_reason") or finish_reason
                if guard.stopped:
                    break
        finally:
            channel.stop.set()  # the worker stops at the next token (a cut reply, a cancelled turn)
            await chunks.aclose()
            self._fill_usage(usage, started, received, channel.n_tokens)
        if tail := guard.finish(finish_reason or "incomplete"):
            yield tail

    async def aclose(self) -> None:
        """Free the model once any running generation has stopped."""
        llama, self._llama = self._llama, None
        if llama is not None:
            await asyncio.get_running_loop().run_in_executor(self._worker, llama.close)
        self._worker.shutdown(wait=False)

    # -- internals ------------------------------------------------------------------------------------

    async def _loaded(self) -> Llama:
        if self._llama is not None:
            return self._llama
        if self._loading is None:
            self._loading = asyncio.get_running_loop().run_in_executor(self._worker, self._load)
        try:
            self._llama = await asyncio.shield(self._loading)
        except BaseException:
            if self._loading.done():
                self._loading = None  # a failed load is tried again by the next request
            raise
        return self._llama

    def _load(self) -> Llama:  # worker thread
        try:
            from llama_cpp import Llama
        except ImportError:
            raise MissingExtraError("llama-cpp-python", "llamacpp") from None
        from digihuman import models

        path = models.resolve(self.spec, kind="llm")
        if path.is_dir() or path.suffix.lower() != ".gguf":
            raise UserError(f"llm.model {path} is not a .gguf file: give a GGUF chat model (or a model name)")
        started = time.monotonic()
        try:
            llama = Llama(
                model_path=str(path),
                n_ctx=self.settings.n_ctx,
                n_threads=thread_count(self.settings),
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise LLMError(f"llama.cpp cannot load {path} ({exc}): is it a GGUF chat model?") from None
        self.path, self.load_s = path, time.monotonic() - started
        logger.info("llama.cpp loaded %s in %.1f s", path.name, self.load_s)
        return llama

    def _generate(self, llama: Llama, request: dict[str, Any], channel: _Channel) -> None:  # worker thread
        if channel.stop.is_set():
            return  # cancelled while queued
        steady, burst = thread_count(self.settings), first_sentence_threads(self.settings)
        first_sentence = burst != steady
        try:
            _set_threads(llama, burst)
            chunks = llama.create_chat_completion(**request)
            try:
                for index, chunk in enumerate(chunks):
                    if channel.stop.is_set():
                        break
                    channel.put(chunk)
                    choice: dict[str, Any] = chunk["choices"][0]  # type: ignore[index]  # a stream chunk
                    text = (choice.get("delta") or {}).get("content") or ""
                    if first_sentence and (_SENTENCE_END.search(text) or index >= _FIRST_SENTENCE_TOKENS):
                        _set_threads(llama, steady)  # the voice starts now: fewer threads spin less
                        first_sentence = False
            finally:
                chunks.close()  # type: ignore[union-attr]  # stream=True always returns a generator
                _set_threads(llama, steady)
            channel.put(_End(llama.n_tokens))
        except Exception as exc:
            channel.put(self._error(exc))

    def _prime(self, llama: Llama, system: str) -> None:  # worker thread
        try:
            # One token after an empty user message: the cache then holds the template up to the user's words.
            messages: Any = [{"role": "system", "content": system}, {"role": "user", "content": ""}]
            llama.create_chat_completion(messages=messages, max_tokens=1)
        except Exception as exc:  # the first turn evaluates it anyway and reports a real failure
            logger.info("could not evaluate the system prompt ahead: %s", exc)

    async def _next(
        self, chunks: AsyncIterator[dict[str, Any]], guard: ReplyGuard, deadline: float, started: float
    ) -> dict[str, Any] | None:
        return await next_chunk(
            chunks,
            guard,
            deadline=deadline,
            first_token_timeout_s=self.settings.first_token_timeout_s,
            to_error=self._error,
            waiting_since=started,
        )

    def _error(self, exc: Exception) -> LLMError:
        if isinstance(exc, LLMError):
            return exc
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "exceed context window" in text:
            return LLMError(
                f"the conversation no longer fits {self.model}'s context ({text}): raise llm.n_ctx "
                f"(now {self.settings.n_ctx})"
            )
        return LLMError(f"llama.cpp failed with {self.model}: {text}")

    @staticmethod
    def _fill_usage(usage: Usage, started: float, received: int, n_tokens: int | None) -> None:
        elapsed = time.monotonic() - started
        usage.duration_s = elapsed
        usage.images = 0  # none were sent
        # Streamed chunks carry one token each (a split multi-byte character waits for the rest).
        usage.completion_tokens = received
        if n_tokens is not None:  # the reply ran to its end: the context holds prompt + reply
            usage.prompt_tokens = max(0, n_tokens - received)
        if usage.first_token_s is not None and elapsed > usage.first_token_s and received > 1:
            usage.tokens_per_s = (received - 1) / (elapsed - usage.first_token_s)


def _set_threads(llama: Llama, threads: int) -> None:  # worker thread, between two decode steps
    import llama_cpp

    llama_cpp.llama_set_n_threads(llama.ctx, threads, llama.n_threads_batch)
