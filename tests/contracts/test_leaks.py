"""The leak check itself: it must see a thread, a busy executor job, a child process or a task left over."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time

import pytest

from tests.contracts.leaks import Snapshot


async def test_sees_a_thread() -> None:
    s = Snapshot.take()
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, args=(10,), name="leaky")
    thread.start()
    with pytest.raises(AssertionError, match="leaky"):
        await s.assert_nothing_left(0.3)
    stop.set()


async def test_sees_a_busy_executor() -> None:
    s = Snapshot.take()
    loop = asyncio.get_running_loop()
    fut = loop.run_in_executor(None, time.sleep, 0.6)
    with pytest.raises(AssertionError, match="executor"):
        await s.assert_nothing_left(0.3)
    await fut


async def test_sees_a_child_process() -> None:
    s = Snapshot.take()
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    with pytest.raises(AssertionError, match="child"):
        await s.assert_nothing_left(0.3)
    p.kill()
    p.wait()


async def test_sees_a_task() -> None:
    s = Snapshot.take()
    t = asyncio.create_task(asyncio.sleep(5))
    with pytest.raises(AssertionError, match="tasks"):
        await s.assert_nothing_left(0.3)
    t.cancel()


async def test_passes_when_all_is_done() -> None:
    s = Snapshot.take()
    await asyncio.to_thread(time.sleep, 0.01)
    await s.assert_nothing_left(0.5)
