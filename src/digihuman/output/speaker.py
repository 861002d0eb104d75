"""The voice alone, on the speakers: a Sink for conversations without a window (`talk --no-window`).

It plays at real-time pace (on a virtual device when there is no sound card), so its clock paces the turn as
a listener hears it, and talking over the character interrupts what is actually being said.
"""

from __future__ import annotations

import asyncio

from digihuman.audio.player import AudioOutput
from digihuman.media import AudioChunk, VideoFrame


class SpeakerSink:
    def __init__(self, audio: AudioOutput | None = None) -> None:
        self.audio = audio if audio is not None else AudioOutput()

    async def start(self) -> None:
        await asyncio.to_thread(self.audio.start)

    def begin_turn(self, turn_id: int) -> None:
        self.audio.begin_turn(turn_id)

    async def write_audio(self, chunk: AudioChunk) -> None:
        self.audio.enqueue(chunk)

    async def write_frame(self, frame: VideoFrame) -> None:
        return None  # no picture

    async def end_turn(self, turn_id: int) -> None:
        self.audio.finish_turn(turn_id)
        await self.audio.wait_played(turn_id)

    def cancel_turn(self, turn_id: int) -> float:
        return self.audio.clear(turn_id)

    def played_s(self, turn_id: int) -> float:
        return self.audio.position_s(turn_id)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.audio.close)
