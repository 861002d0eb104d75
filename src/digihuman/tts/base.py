"""The TTS interface: text in, audio chunks (with optional phoneme and word timings) out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from digihuman.media import AudioChunk


class TTS(Protocol):
    """A voice. `synthesize` yields chunks in order; cancelling the iteration stops the work."""

    @property
    def name(self) -> str:  # read-only: a class constant or an attribute satisfies it
        ...

    def synthesize(self, text: str, language: str) -> AsyncIterator[AudioChunk]: ...

    async def aclose(self) -> None: ...
