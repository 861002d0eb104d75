"""Run a front end's coroutine with SIGINT and SIGTERM handled alike: cancel it, let it clean up, report.

Systemd, Docker and `timeout` stop programs with SIGTERM, a terminal with Ctrl-C (SIGINT). Either cancels
the main task, so every `finally` runs: the turn in progress is cut and recorded, files are finished or
removed, and the cost line is printed. Then `Stopped` tells the CLI which signal it was.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(Exception):
    """The program was asked to stop by a signal; the exit code is 128 + its number (130, 143)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


def raise_stopped(signum: int, frame: object) -> None:
    """A signal handler for the time outside the event loop (start-up, shutdown)."""
    raise Stopped(signum)


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)`, raising `Stopped` when SIGINT or SIGTERM ended it."""
    received: list[int] = []

    async def guarded() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        previous = {sig: signal.getsignal(sig) for sig in SIGNALS}

        def on_signal(signum: int) -> None:
            received.append(signum)
            task.cancel()  # a second signal cancels the cleanup too: the user insists

        for sig in SIGNALS:
            loop.add_signal_handler(sig, on_signal, sig)
        try:
            return await main
        finally:
            for sig in SIGNALS:
                loop.remove_signal_handler(sig)
                signal.signal(sig, previous[sig])

    try:
        result = asyncio.run(guarded())
    except asyncio.CancelledError:
        if received:
            raise Stopped(received[0]) from None
        raise
    if received:
        raise Stopped(received[0])
    return result
