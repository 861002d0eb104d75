"""The Sink interface: where a turn's timed audio and frames go (player window, MP4 recorder, web page).

Timestamps are on the turn's timeline: `AudioChunk.start_s` and `VideoFrame.pts_s` count seconds
from the start of the turn, so a sink never has to know about sentences.
"""

from __future__ import annotations

from typing import Protocol

from digihuman.media import AudioChunk, VideoFrame


class Sink(Protocol):
    def begin_turn(self, turn_id: int) -> None:
        """A new turn starts; its timeline starts at 0 s."""
        ...

    async def write_audio(self, chunk: AudioChunk) -> None: ...

    async def write_frame(self, frame: VideoFrame) -> None: ...

    async def end_turn(self, turn_id: int) -> None:
        """Everything for the turn has been written; returns once it has been played or saved."""
        ...

    def cancel_turn(self, turn_id: int) -> float:
        """Drop what is queued for the turn at once; return how many seconds of it were heard."""
        ...

    def played_s(self, turn_id: int) -> float:
        """Seconds of the turn heard so far (the playback clock)."""
        ...

    async def aclose(self) -> None: ...
