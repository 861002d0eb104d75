"""One sentence of a reply on its way to the sinks: its text, and its audio as the voice produces it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from operator import attrgetter

from digihuman.media import AudioChunk, Timing, VideoFrame


class Sentence:
    """One sentence on its way: the shown and spoken text, and its audio as the TTS produces it."""

    def __init__(self, index: int, shown: str, spoken: str) -> None:
        self.index = index
        self.shown = shown
        self.spoken = spoken
        self.chunks: list[AudioChunk] = []
        self.done = False
        self.error: BaseException | None = None
        self.offset_s = 0.0  # where it starts on the turn timeline
        self.duration_s = 0.0  # audio delivered so far
        self.render: asyncio.Task[list[VideoFrame]] | None = None
        self.skip_render = False
        self.announced = False  # Stage.on_sentence was called
        self._changed = asyncio.Event()

    def add(self, chunk: AudioChunk) -> None:
        self.chunks.append(chunk)
        self._changed.set()

    def finish(self, error: BaseException | None = None) -> None:
        self.done, self.error = True, error
        self._changed.set()

    async def stream(self) -> AsyncIterator[AudioChunk]:
        """The audio so far, then the rest as it arrives; re-raises the TTS failure."""
        index = 0
        while True:
            while index < len(self.chunks):
                yield self.chunks[index]
                index += 1
            if self.error is not None:
                raise self.error
            if self.done:
                return
            self._changed.clear()
            await self._changed.wait()

    async def wait_done(self) -> None:
        while not self.done:
            self._changed.clear()
            await self._changed.wait()

    def timings(self) -> tuple[list[Timing], list[Timing]]:
        words: dict[tuple[str, float], Timing] = {}
        phonemes: dict[tuple[str, float], Timing] = {}
        for chunk in self.chunks:
            words.update(((t.label, t.start_s), t) for t in chunk.words)
            phonemes.update(((t.label, t.start_s), t) for t in chunk.phonemes)
        by_start = attrgetter("start_s")
        return sorted(words.values(), key=by_start), sorted(phonemes.values(), key=by_start)
