"""Ollama's native chat API (`POST /api/chat`, NDJSON streaming) through the official `ollama` client.

The official AsyncClient covers the protocol (NDJSON parsing, plain-base64 images, `think`, `options`,
`keep_alive`, mid-stream `{"error": ...}` lines as ResponseError). What it leaves to us is what a voice
needs on top: a deadline for the first spoken token, retries while the server is busy, one-line errors that
name the fix, and the reply guard (reasoning never spoken, loops cut).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import ollama
from pydantic import ValidationError

from digihuman.config import LLMSettings
from digihuman.llm.base import LLMError, Message, RequestRefused, Usage
from digihuman.llm.guard import ReplyGuard
from digihuman.llm.transport import (
    ServerBusy,
    close_iterator,
    first_deadline,
    http_timeout,
    next_chunk,
    preload_within,
    retry_busy,
)

logger = logging.getLogger(__name__)

_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def keep_alive_value(setting: str) -> str | float:
    """Ollama takes a duration ("10m", "-1h") or a number of seconds (negative = forever, 0 = unload)."""
    setting = setting.strip()
    if _NUMBER.fullmatch(setting):
        number = float(setting)
        return int(number) if number.is_integer() else number
    return setting


def wire_message(message: Message) -> dict[str, Any]:
    """A chat message as the client takes it; JPEG bytes go out as plain base64 (no data: prefix)."""
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.images:
        wire["images"] = list(message.images)
    return wire


class OllamaLLM:
    """An LLM/VLM served by Ollama."""

    name = "ollama"
    accepts_images: bool | None = None  # from /api/show's capabilities, read by preload (None: unknown)

    def __init__(self, settings: LLMSettings, *, busy_backoff_s: float = 0.5) -> None:
        self.model = settings.model
        self.settings = settings
        self.url = settings.url.rstrip("/")
        self._busy_backoff_s = busy_backoff_s
        self._client = ollama.AsyncClient(host=self.url, timeout=http_timeout(settings.request_timeout_s))
        self._silent_since: float | None = None  # a preload got no answer: the first reply's wait began then

    async def stream(self, messages: Sequence[Message], usage: Usage | None = None) -> AsyncIterator[str]:
        usage = usage if usage is not None else Usage()
        usage.images = sum(len(m.images) for m in messages)
        started = time.monotonic()
        guard = ReplyGuard(usage, model=self.model, token_budget=self.settings.num_predict, started=started)
        request: dict[str, Any] = {
            "model": self.model,
            "messages": [wire_message(m) for m in messages],
            "stream": True,
            # Thinking would be discarded anyway; asking for none saves the whole think time.
            "think": False,
            "options": {"num_predict": self.settings.num_predict, "temperature": self.settings.temperature},
            "keep_alive": keep_alive_value(self.settings.keep_alive),
        }
        limit = self.settings.first_token_timeout_s
        waiting_since = self._silent_since if self._silent_since is not None else started
        deadline = first_deadline(started, limit, self._silent_since)
        self._silent_since = None
        attempts = 0

        async def open_stream() -> tuple[AsyncIterator[ollama.ChatResponse], ollama.ChatResponse | None]:
            nonlocal deadline, waiting_since, attempts
            attempts += 1
            if attempts > 1:  # the server answered "busy": a fresh wait for this try
                waiting_since = time.monotonic()
                deadline = waiting_since + limit
            chunks = await self._client.chat(**request)
            try:
                return chunks, await self._next(chunks, guard, deadline, waiting_since)
            except BaseException:
                await close_iterator(chunks)
                raise

        chunks, chunk = await retry_busy(
            open_stream,
            retries=self.settings.busy_retries,
            base_delay_s=self._busy_backoff_s,
            server=self._where,
        )
        final: ollama.ChatResponse | None = None
        received = 0  # content and thinking chunks: about one token each
        try:
            while chunk is not None:
                message = chunk.message
                if message is not None:
                    received += bool(message.content or message.thinking)
                    guard.thinking(message.thinking or "")
                    if message.content and (text := guard.content(message.content)):
                        yield text
                if guard.stopped:
                    break  # closing the stream below makes Ollama stop generating
                if chunk.done:
                    final = chunk
                    break
                chunk = await self._next(chunks, guard, deadline, waiting_since)
        finally:
            await close_iterator(chunks)
            # Also when the round fails mid-stream: the tokens it streamed were spent and are counted.
            self._fill_usage(usage, final, started, received)
        if final is None and not guard.stopped:
            logger.warning("Ollama at %s ended the stream without a final 'done' object", self.url)
        if tail := guard.finish(self._done_reason(final)):
            yield tail

    async def preload(self, system: str = "") -> None:
        """Load the model now (a chat request with no messages answers done_reason "load")."""

        async def load() -> ollama.ChatResponse:
            try:
                return await self._client.chat(
                    model=self.model, messages=[], keep_alive=keep_alive_value(self.settings.keep_alive)
                )
            except Exception as exc:
                raise self._error(exc) from None

        started = time.monotonic()
        try:
            # Bounded by the first-token limit: the request timeout would let a hung server cost both.
            reply = await preload_within(
                lambda: retry_busy(
                    load,
                    retries=self.settings.busy_retries,
                    base_delay_s=self._busy_backoff_s,
                    server=self._where,
                ),
                self.settings.first_token_timeout_s,
                self._where,
            )
        except LLMError:
            self._silent_since = started
            raise
        self._silent_since = None
        logger.info(
            "Ollama loaded %s in %.1f s (done_reason=%s)",
            self.model,
            time.monotonic() - started,
            reply.done_reason,
        )
        self.accepts_images = await self._reads_images()

    async def _reads_images(self) -> bool | None:
        """Whether the model takes pictures: "vision" among /api/show's capabilities (None: not listed)."""
        try:
            shown = await self._client.show(self.model)
        except Exception as exc:  # an older server; the first request with pictures will tell instead
            logger.info("%s: /api/show failed for %s (%s)", self._where, self.model, exc)
            return None
        return None if shown.capabilities is None else "vision" in shown.capabilities

    async def aclose(self) -> None:
        await self._client.close()

    @property
    def _where(self) -> str:
        return f"Ollama at {self.url}"

    async def _next(
        self,
        chunks: AsyncIterator[ollama.ChatResponse],
        guard: ReplyGuard,
        deadline: float,
        waiting_since: float,
    ) -> ollama.ChatResponse | None:
        return await next_chunk(
            chunks,
            guard,
            deadline=deadline,
            first_token_timeout_s=self.settings.first_token_timeout_s,
            to_error=self._error,
            waiting_since=waiting_since,
        )

    def _error(self, exc: Exception) -> LLMError:
        """One line that says what went wrong and what to do about it."""
        if isinstance(exc, LLMError):
            return exc
        if isinstance(exc, ollama.ResponseError):
            status, text = exc.status_code, str(exc.error).strip()
            if status == 404 and "model" in text.lower():
                return LLMError(
                    f"Ollama has no model '{self.model}': run `ollama pull {self.model}` ({text})"
                )
            if status == 404:
                return LLMError(f"{self.url} does not serve Ollama's /api/chat (404): check llm.url")
            if status in (429, 503):
                return ServerBusy(f"{status}: {text}")
            if status == -1:  # an {"error": ...} line inside a 200 stream
                return LLMError(f"Ollama failed mid-reply with {self.model}: {text}")
            return RequestRefused(f"{self._where} answered HTTP {status} for {self.model}: {text}")
        if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, ConnectionError)):
            return LLMError(
                f"cannot reach Ollama at {self.url}: start it with `ollama serve` (or set llm.url)"
            )
        if isinstance(exc, httpx.TimeoutException):
            return LLMError(
                f"Ollama sent nothing for {self.settings.request_timeout_s:g} s (llm.request_timeout_s)"
            )
        if isinstance(exc, httpx.HTTPError):
            return LLMError(f"the connection to {self._where} broke: {str(exc) or type(exc).__name__}")
        if isinstance(exc, (json.JSONDecodeError, ValidationError)):
            return LLMError(f"{self._where} sent a malformed stream line: {str(exc).splitlines()[0]}")
        raise exc

    def _done_reason(self, final: ollama.ChatResponse | None) -> str:
        return (final.done_reason or "stop") if final is not None else "incomplete"

    def _fill_usage(
        self, usage: Usage, final: ollama.ChatResponse | None, started: float, received: int
    ) -> None:
        """Counts and durations from the final object (nanoseconds), else from our own clock."""
        elapsed = time.monotonic() - started
        if final is None:
            usage.completion_tokens = received
            usage.duration_s = elapsed
        else:
            usage.prompt_tokens = final.prompt_eval_count or 0
            usage.completion_tokens = final.eval_count or received
            usage.duration_s = final.total_duration / 1e9 if final.total_duration else elapsed
            if final.eval_count and final.eval_duration:
                usage.tokens_per_s = final.eval_count / (final.eval_duration / 1e9)
        if not usage.tokens_per_s and usage.first_token_s is not None and elapsed > usage.first_token_s:
            usage.tokens_per_s = usage.completion_tokens / (elapsed - usage.first_token_s)
