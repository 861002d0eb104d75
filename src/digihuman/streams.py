"""Small helpers for the async streams a turn is made of."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from typing import TypeVar

T = TypeVar("T")
logger = logging.getLogger(__name__)


async def once(item: T) -> AsyncIterator[T]:
    yield item


async def iterate(items: Sequence[T]) -> AsyncIterator[T]:
    for item in items:
        yield item


async def drain(queue: asyncio.Queue[T | None]) -> AsyncIterator[T]:
    """The queue's items until a None."""
    while (item := await queue.get()) is not None:
        yield item


async def close_stream(stream: object) -> None:
    """Close an async generator early so its `finally` (an HTTP stream, a worker) runs now."""
    close = getattr(stream, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:
            logger.debug("closing a stream failed", exc_info=True)
