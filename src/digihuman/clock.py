"""Time for the orchestration core: the event loop's clock, and a virtual loop that jumps over idle waits.

Everything that schedules (turns, the director, metrics) reads time through a `Clock`. The default reads
`loop.time()`, so the same code runs on real time or on `VirtualEventLoop`, where `asyncio.sleep`, timeouts
and `loop.time()` are virtual: whenever every task is waiting on a timer, the loop jumps straight to the
next one. An hour of camera input then simulates in a second, and timing assertions are exact.
"""

from __future__ import annotations

import asyncio
import selectors
import time
from collections.abc import Coroutine
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic clock (only differences mean anything)."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class LoopClock:
    """The running event loop's clock: real time normally, virtual time on a `VirtualEventLoop`."""

    def now(self) -> float:
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:  # no loop running: the default loop's clock is time.monotonic()
            return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class _JumpingSelector(selectors.DefaultSelector):
    """Polls real I/O without blocking; when nothing is ready, jumps the virtual clock instead of waiting."""

    def __init__(self) -> None:
        super().__init__()
        self.virtual_now = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)
        if events or timeout == 0:
            return events
        if timeout is None:
            # No timer is pending: only real I/O (a worker thread finishing) can wake the loop.
            return super().select(None)
        self.virtual_now += timeout
        return []


class VirtualEventLoop(asyncio.SelectorEventLoop):
    """An event loop whose time is virtual and starts at 0.

    Work done in threads (asyncio.to_thread) takes no virtual time; use it with in-process fakes.
    """

    def __init__(self) -> None:
        self._jumping = _JumpingSelector()
        super().__init__(selector=self._jumping)

    def time(self) -> float:
        return self._jumping.virtual_now


def run_virtual(main: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a fresh `VirtualEventLoop` (the `asyncio.run` of virtual time)."""
    with asyncio.Runner(loop_factory=VirtualEventLoop) as runner:
        return runner.run(main)
