"""What sessions share: backends that cannot serve two at once are queued, one request at a time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import numpy as np

from digihuman.asr.base import Transcript
from digihuman.llm.base import Message, Usage
from digihuman.server.listening import QueuedASR
from digihuman.server.sessions import SharedLLM


class OneAtATime:
    """A backend that breaks if two requests overlap; it records the order of its work."""

    name = "fake"
    model = "fake"

    def __init__(self) -> None:
        self.busy = False
        self.log: list[str] = []
        self.closed = False
        self.accepts_images: bool | None = None

    async def _work(self, label: str) -> None:
        assert not self.busy, "two requests at once"
        self.busy = True
        self.log.append(f"{label} start")
        await asyncio.sleep(0.05)
        self.log.append(f"{label} end")
        self.busy = False

    async def stream(self, messages: Sequence[Message], usage: Usage | None = None) -> AsyncIterator[str]:
        await self._work(str(messages[-1].content))
        yield "ok"

    async def preload(self, system: str = "") -> None:
        await self._work("preload")

    async def transcribe(
        self, audio: np.ndarray, language: str | None = None, prompt: str | None = None
    ) -> Transcript:
        await self._work(f"asr {len(audio)}")
        return Transcript("hello", "en")

    async def aclose(self) -> None:
        self.closed = True


async def test_the_in_process_llm_serves_one_session_at_a_time() -> None:
    backend = OneAtATime()
    shared = SharedLLM(backend)  # type: ignore[arg-type]

    async def ask(text: str) -> str:
        return "".join([d async for d in shared.stream([Message("user", text)])])

    assert await asyncio.gather(ask("a"), ask("b"), shared.preload()) == ["ok", "ok", None]
    assert backend.log == ["a start", "a end", "b start", "b end", "preload start", "preload end"]
    assert shared.accepts_images is None  # the wrapped model's, read and learned through the wrapper
    shared.accepts_images = False
    assert backend.accepts_images is False
    await shared.aclose()  # one session letting go does not close the model for the others
    assert not backend.closed
    await shared.close_shared()
    assert backend.closed


async def test_speech_recognition_is_queued() -> None:
    backend = OneAtATime()
    queued = QueuedASR(backend)  # type: ignore[arg-type]
    results = await asyncio.gather(*(queued.transcribe(np.zeros(n, np.float32)) for n in (1, 2, 3)))
    assert [r.text for r in results] == ["hello"] * 3
    assert backend.log == ["asr 1 start", "asr 1 end", "asr 2 start", "asr 2 end", "asr 3 start", "asr 3 end"]
