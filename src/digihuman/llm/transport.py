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


class ServerBusy(LLMError):
    """The server answered "busy" (503 or 429): worth retrying after a pause."""


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


async def next_chunk(
    chunks: AsyncIterator[T],
    guard: ReplyGuard,
    *,
    deadline: float,
    first_token_timeout_s: float,
    to_error: Callable[[Exception], LLMError],
) -> T | None:
    """The next stream chunk (None at the end); held to the first-token deadline until words flow."""
    timeout = None if guard.spoken else deadline - time.monotonic()
    try:
        return await next_within(chunks, timeout)
    except StopAsyncIteration:
        return None
    except TimeoutError:
        raise guard.first_token_timeout(first_token_timeout_s) from None
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
