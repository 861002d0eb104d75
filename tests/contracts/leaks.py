"""What a backend leaves behind: asyncio tasks, threads, child processes, and work still running in the
loop's default executor. A contract test snapshots these after warming a backend up (so its long-lived
workers count as its own) and checks, after cancelling, that nothing new is still there."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

# Per-connection handler threads of the in-process stand-in servers: the server's, not the backend's.
_SERVER_THREAD_MARKS = ("process_request_thread", "ollama-test-server")


def child_pids() -> set[int]:
    """Live (non-zombie) child processes of this process."""
    pids: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        try:
            pids.update(int(pid) for pid in (task / "children").read_text().split())
        except OSError:
            continue
    return {pid for pid in pids if _alive(pid)}


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _own_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if not any(mark in t.name for mark in _SERVER_THREAD_MARKS)}


def _other_tasks() -> set[asyncio.Task[object]]:
    current = asyncio.current_task()
    return {task for task in asyncio.all_tasks() if task is not current and not task.done()}


_EXECUTOR_PREFIX = "contract-executor"


@dataclass
class Snapshot:
    tasks: set[asyncio.Task[object]]
    threads: set[threading.Thread]
    children: set[int]
    executor: ThreadPoolExecutor = field(repr=False)

    @classmethod
    def take(cls) -> Snapshot:
        """Snapshot now; give the loop a fresh default executor whose jobs `assert_nothing_left` awaits."""
        executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix=_EXECUTOR_PREFIX)
        asyncio.get_running_loop().set_default_executor(executor)
        return cls(_other_tasks(), _own_threads(), child_pids(), executor)

    async def assert_nothing_left(self, timeout_s: float = 3.0) -> None:
        """Wait up to `timeout_s` for extra tasks, threads and processes to finish; fail if they don't.

        Also waits for the default executor's jobs: a blocking call that ignores cancellation (a synth
        that runs on after its stream was closed) keeps the executor busy and fails here.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            tasks = _other_tasks() - self.tasks
            threads = {
                t
                for t in _own_threads() - self.threads
                if t.is_alive() and not t.name.startswith(_EXECUTOR_PREFIX)
            }
            children = child_pids() - self.children
            if not (tasks or threads or children):
                break
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"left running after the stream was closed: tasks={tasks}, "
                    f"threads={sorted(t.name for t in threads)}, child processes={sorted(children)}"
                )
            await asyncio.sleep(0.02)
        # Shut the executor down from a plain thread (a job of its own could not wait for it).
        waiter = threading.Thread(target=self.executor.shutdown, kwargs={"wait": True}, daemon=True)
        waiter.start()
        while waiter.is_alive():
            if time.monotonic() > deadline:
                raise AssertionError("a blocking job was still running in the default executor")
            await asyncio.sleep(0.02)
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(thread_name_prefix="after-check"))
