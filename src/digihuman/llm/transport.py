"""Transport helpers shared by the HTTP adapters: timeouts, a first-token deadline and busy retries."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import httpx

from digihuman.llm.base import LLMError
from digihuman.llm.guard import ReplyGuard

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A request after a preload that got no answer still gets this long: the server may have just come up.
GRACE_S = 5.0


class ServerBusy(LLMError):
    """The server answered "busy" (503 or 429): worth retrying after a pause."""


async def close_iterator(iterator: object) -> None:
    """Close a stream typed as a plain AsyncIterator (the clients return async generators) early."""
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()


def http_timeout(request_timeout_s: float) -> httpx.Timeout:
    """Connecting fails fast (a local server is up or it is not); reads may wait as long as a reply takes."""
    return httpx.Timeout(request_timeout_s, connect=min(10.0, request_timeout_s))


async def next_within(iterator: AsyncIterator[T], timeout_s: float | None) -> T:
    """`anext` with a time limit, awaited in the calling task.

    asyncio.wait_for would run it in another task, and an httpx stream must be read from the task that
    opened it.
    """
    if timeout_s is None:
        return await anext(iterator)
    async with asyncio.timeout(max(0.0, timeout_s)):
        return await anext(iterator)


def first_deadline(started: float, limit_s: float, silent_since: float | None) -> float:
    """When the first spoken token of a request started at `started` must have come.

    The limit bounds the whole wait for a reply to start: when the preload already waited in vain (since
    `silent_since`), that time counts, so a silent server costs `limit_s` (plus GRACE_S) in all, not the
    preload's timeout plus the reply's.
    """
    if silent_since is None:
        return started + limit_s
    return max(silent_since + limit_s, started + min(GRACE_S, limit_s))


async def preload_within(load: Callable[[], Awaitable[T]], limit_s: float, where: str) -> T:
    """Run a preload for at most `limit_s` (llm.first_token_timeout_s, not the longer request timeout)."""
    try:
        async with asyncio.timeout(limit_s):
            return await load()
    except TimeoutError:
        raise LLMError(
            f"{where} did not answer within {limit_s:g} s (llm.first_token_timeout_s); is the server "
            "overloaded or hung?"
        ) from None


async def next_chunk(
    chunks: AsyncIterator[T],
    guard: ReplyGuard,
    *,
    deadline: float,
    first_token_timeout_s: float,
    to_error: Callable[[Exception], LLMError],
    waiting_since: float | None = None,
) -> T | None:
    """The next stream chunk (None at the end); held to the first-token deadline until words flow."""
    timeout = None if guard.spoken else deadline - time.monotonic()
    try:
        return await next_within(chunks, timeout)
    except StopAsyncIteration:
        return None
    except TimeoutError:
        waited = time.monotonic() - waiting_since if waiting_since is not None else None
        raise guard.first_token_timeout(first_token_timeout_s, waited_s=waited) from None
    except Exception as exc:
        raise to_error(exc) from None


async def retry_busy(
    attempt: Callable[[], Awaitable[T]],
    *,
    retries: int,
    base_delay_s: float,
    server: str,
) -> T:
    """Run `attempt`, retrying with exponential backoff while it raises ServerBusy."""
    for tries in range(retries + 1):
        try:
            return await attempt()
        except ServerBusy as busy:
            if tries == retries:
                raise LLMError(
                    f"{server} is still busy after {retries} retries ({busy}); try again later or raise "
                    "llm.busy_retries"
                ) from None
            delay = base_delay_s * 2**tries
            logger.info("%s is busy (%s); retrying in %.1f s", server, busy, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")
