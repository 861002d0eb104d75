"""Any OpenAI-compatible chat server (llama.cpp, vLLM, LM Studio, Ollama's /v1) via the `openai` client.

SSE streaming with a final usage chunk, images as data-URL parts, thinking switched off through the chat
template where the server supports it, and reasoning fields (`reasoning_content` from llama.cpp, `reasoning`
from vLLM and Ollama) counted but never spoken.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import openai
from openai.types.chat import ChatCompletionChunk
from openai.types.chat.chat_completion_chunk import ChoiceDelta

from digihuman.config import LLMSettings
from digihuman.llm.base import LLMError, Message, RequestRefused, Usage
from digihuman.llm.guard import ReplyGuard
from digihuman.llm.transport import ServerBusy, first_deadline, next_chunk, preload_within, retry_busy

logger = logging.getLogger(__name__)


def wire_message(message: Message) -> dict[str, Any]:
    """Plain text stays a string; with images the content becomes text and image_url parts."""
    if not message.images:
        return {"role": message.role, "content": message.content}
    parts: list[dict[str, Any]] = [{"type": "text", "text": message.content}]
    for image in message.images:
        data_url = "data:image/jpeg;base64," + base64.b64encode(image).decode("ascii")
        parts.append({"type": "image_url", "image_url": {"url": data_url}})
    return {"role": message.role, "content": parts}


def _loop_time(deadline: float) -> float:
    """A time.monotonic() deadline on the event loop's clock (asyncio.timeout_at takes that)."""
    return asyncio.get_running_loop().time() + (deadline - time.monotonic())


def _error_text(exc: openai.APIError) -> str:
    """The server's own message, on one line."""
    body: Any = exc.body
    if isinstance(body, dict):
        body = body.get("error", body)
    if isinstance(body, dict):
        body = body.get("message") or body.get("detail") or body
    text = str(body if body else exc.message).strip()
    return (text.splitlines() or [""])[0][:300]


class StreamDropped(LLMError):
    """The server closed a reply stream it had begun (not the same as a server that cannot be reached)."""


class OpenAICompatLLM:
    """An LLM/VLM behind an OpenAI-compatible `/v1/chat/completions` endpoint."""

    name = "openai"

    def __init__(self, settings: LLMSettings, *, busy_backoff_s: float = 0.5) -> None:
        self.model = settings.model
        self.settings = settings
        self.url = settings.url.rstrip("/")
        if not self.url.endswith("/v1"):
            logger.warning(
                "llm.url %s does not end with /v1; OpenAI-compatible servers usually serve there", self.url
            )
        self._busy_backoff_s = busy_backoff_s
        timeout = settings.request_timeout_s
        self._client = openai.AsyncOpenAI(
            base_url=self.url,
            api_key=settings.api_key or "not-needed",
            timeout=openai.Timeout(timeout, connect=min(10.0, timeout)),
            max_retries=0,  # busy retries are ours (same policy as Ollama); a refused connection fails fast
        )
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
            "stream_options": {"include_usage": True},
            "max_tokens": self.settings.num_predict,
            "temperature": self.settings.temperature,
            # Qwen3-style templates think unless told not to; servers without the switch ignore it.
            "extra_body": {"chat_template_kwargs": {"enable_thinking": False}},
        }
        limit = self.settings.first_token_timeout_s
        waiting_since = self._silent_since if self._silent_since is not None else started
        deadline = first_deadline(started, limit, self._silent_since)
        self._silent_since = None
        attempts = 0

        async def open_stream() -> tuple[Any, ChatCompletionChunk | None]:
            nonlocal deadline, waiting_since, attempts
            attempts += 1
            if attempts > 1:  # the server answered "busy": a fresh wait for this try
                waiting_since = time.monotonic()
                deadline = waiting_since + limit
            try:
                # Some servers send the response headers only with the first token: the deadline covers both.
                async with asyncio.timeout_at(_loop_time(deadline)):
                    chunks = await self._client.chat.completions.create(**request)
            except TimeoutError:
                waited = time.monotonic() - waiting_since
                raise guard.first_token_timeout(limit, waited_s=waited) from None
            except Exception as exc:
                raise self._error(exc, images=usage.images) from None
            try:
                return chunks, await self._next(chunks, guard, deadline, waiting_since)
            except BaseException:
                await chunks.close()
                raise

        try:
            chunks, chunk = await retry_busy(
                open_stream,
                retries=self.settings.busy_retries,
                base_delay_s=self._busy_backoff_s,
                server=self.url,
            )
        except StreamDropped:  # before its first chunk: the request failed, say why
            raise await self._failure_of(request, usage.images) from None
        if chunk is None:  # not even a role chunk: the request failed before the reply began
            await chunks.close()
            raise await self._failure_of(request, usage.images)
        finish_reason = ""
        received = 0  # content and reasoning chunks: about one token each
        server_timings: dict[str, Any] = {}
        try:
            while chunk is not None:
                if chunk.usage is not None:
                    usage.prompt_tokens = chunk.usage.prompt_tokens or 0
                    usage.completion_tokens = chunk.usage.completion_tokens or 0
                server_timings = (chunk.model_extra or {}).get("timings") or server_timings  # llama.cpp
                for choice in chunk.choices[:1]:
                    delta: ChoiceDelta | None = choice.delta  # typed as always there; servers differ
                    extra = (delta.model_extra or {}) if delta is not None else {}
                    reasoning = str(extra.get("reasoning_content") or extra.get("reasoning") or "")
                    received += bool(reasoning or (delta is not None and delta.content))
                    guard.thinking(reasoning)
                    if delta is not None and delta.content and (text := guard.content(delta.content)):
                        yield text
                    finish_reason = choice.finish_reason or finish_reason
                if guard.stopped:
                    break  # closing the stream below makes the server stop generating
                chunk = await self._next(chunks, guard, deadline, waiting_since)
        finally:
            await chunks.close()
            # Also when the round fails mid-stream: the tokens it streamed were spent and are counted.
            self._fill_usage(usage, started, received, server_timings)
        if tail := guard.finish(finish_reason or "incomplete"):
            yield tail

    async def preload(self, system: str = "") -> None:
        """These servers load their model at start: check that the server answers and lists the model."""
        started = time.monotonic()
        try:
            # Bounded by the first-token limit: the request timeout would let a hung server cost both.
            limit = self.settings.first_token_timeout_s
            page = await preload_within(self._client.models.list, limit, self.url)
        except LLMError:
            self._silent_since = started
            raise
        except openai.APIStatusError as exc:
            logger.info("%s has no model list (%s); skipping the check", self.url, _error_text(exc))
            return
        except Exception as exc:
            raise self._error(exc) from None
        served = [m.id for m in page.data]
        if served and self.model not in served:
            logger.warning(
                "%s does not list model %r (it serves %s)", self.url, self.model, ", ".join(served)
            )

    def _read_error(self, exc: Exception) -> LLMError:
        """An error while reading a stream the server began: a dropped connection is not "unreachable"."""
        if isinstance(exc, openai.APIConnectionError) and not isinstance(exc, openai.APITimeoutError):
            cause = exc.__cause__ or exc
            return StreamDropped(f"{self.url} dropped the reply stream for '{self.model}' ({cause})")
        return self._error(exc)

    async def _failure_of(self, request: dict[str, Any], images: int) -> LLMError:
        """The server's own error for a stream that ended before it began. llama_cpp.server, for one,
        reports such a failure (a text-only chat template given a picture) only in its log; asked again
        without streaming, it answers with the error."""
        once = {k: v for k, v in request.items() if k != "stream_options"} | {
            "stream": False,
            "max_tokens": 1,
        }
        for attempt in range(2):
            try:
                await self._client.chat.completions.create(**once)
            except openai.APIConnectionError as exc:
                if attempt == 0:  # the pooled connection the failed stream used may be dead: once more
                    continue
                return self._error(exc, images=images)
            except openai.APIError as exc:
                return self._error(exc, images=images)
            break
        return LLMError(f"{self.url} ended the reply to '{self.model}' before it began, without an error")

    async def aclose(self) -> None:
        await self._client.close()

    async def _next(
        self, chunks: Any, guard: ReplyGuard, deadline: float, waiting_since: float
    ) -> ChatCompletionChunk | None:
        return await next_chunk(
            chunks,
            guard,
            deadline=deadline,
            first_token_timeout_s=self.settings.first_token_timeout_s,
            to_error=self._read_error,
            waiting_since=waiting_since,
        )

    def _error(self, exc: Exception, *, images: int = 0) -> LLMError:
        """One line that says what went wrong and what to do about it."""
        if isinstance(exc, LLMError):
            return exc
        if isinstance(exc, openai.APITimeoutError):
            return LLMError(
                f"{self.url} sent nothing for {self.settings.request_timeout_s:g} s (llm.request_timeout_s)"
            )
        if isinstance(exc, openai.APIConnectionError):
            return LLMError(
                f"cannot reach the OpenAI-compatible server at {self.url}: start it (for example "
                "`llama-server -m MODEL.gguf --port 8080` or `vllm serve MODEL`) or set llm.url"
            )
        if isinstance(exc, openai.APIStatusError):
            status, text = exc.status_code, _error_text(exc)
            if status == 404:
                return LLMError(
                    f"{self.url} has no model '{self.model}' (404: {text}): check llm.model against "
                    f"{self.url}/models, and that llm.url ends with /v1"
                )
            if status in (401, 403):
                return LLMError(f"{self.url} refused the API key ({status}: {text}): set llm.api_key")
            if status in (429, 503):
                return ServerBusy(f"{status}: {text}")
            if status == 400:
                hint = " (the model may not accept images: load a vision model)" if images else ""
                return RequestRefused(
                    f"{self.url} rejected the request for '{self.model}' (400: {text}){hint}"
                )
            return RequestRefused(f"{self.url} answered HTTP {status} for '{self.model}': {text}")
        if isinstance(exc, openai.APIError):  # an error event inside a 200 stream
            return LLMError(f"{self.url} failed mid-reply with '{self.model}': {_error_text(exc)}")
        raise exc

    @staticmethod
    def _fill_usage(usage: Usage, started: float, received: int, server_timings: dict[str, Any]) -> None:
        elapsed = time.monotonic() - started
        usage.duration_s = elapsed
        if not usage.completion_tokens:
            usage.completion_tokens = received
        if per_second := server_timings.get("predicted_per_second"):
            usage.tokens_per_s = float(per_second)
        elif usage.first_token_s is not None and elapsed > usage.first_token_s:
            usage.tokens_per_s = usage.completion_tokens / (elapsed - usage.first_token_s)
