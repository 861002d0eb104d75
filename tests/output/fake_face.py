"""A stand-in Face for sink tests: solid-colour frames that encode their own index, so a test can tell from
the pixels alone which frame (or the idle face) is on screen or in a file."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np

from digihuman.media import AudioChunk, VideoFrame

IDLE_COLOUR = (10, 250, 30)
TALKING_BLUE = 200
MAX_INDEX = 400


def frame_colour(index: int) -> tuple[int, int, int]:
    """A colour per index, distinct for 0..MAX_INDEX and far from the idle green."""
    return (index * 7 % 256, (index * 7 // 256) * 20, TALKING_BLUE)


def decode_index(pixel: np.ndarray, tolerance: int = 2) -> int | None:
    """The frame index painted into `pixel` (RGB), or None for anything else (the idle face)."""
    rgb = np.asarray(pixel[:3], dtype=int)
    for index in range(MAX_INDEX):
        if np.abs(rgb - frame_colour(index)).max() <= tolerance:
            return index
    return None


def solid(colour: tuple[int, int, int], size: int) -> np.ndarray:
    image = np.empty((size, size, 3), np.uint8)
    image[:] = colour
    return image


class FakeFace:
    """Implements the Face protocol: one solid frame per 1/fps of audio; idle is a fixed green."""

    name = "fake"
    realtime = True

    def __init__(self, fps: int = 25, size: int = 64) -> None:
        self.fps = fps
        self.size = size
        self.idle_calls = 0

    def frame(self, index: int, turn_id: int = 0, pts_offset_s: float = 0.0) -> VideoFrame:
        return VideoFrame(solid(frame_colour(index), self.size), pts_offset_s + index / self.fps, turn_id)

    async def animate(self, audio: AsyncIterator[AudioChunk]) -> AsyncIterator[VideoFrame]:
        total_s = 0.0
        turn_id = 0
        async for chunk in audio:
            total_s = max(total_s, chunk.start_s + chunk.duration_s)
            turn_id = chunk.turn_id
        for index in range(int(np.ceil(total_s * self.fps))):
            yield self.frame(index, turn_id)

    def idle_frame(self, t_s: float) -> np.ndarray:
        self.idle_calls += 1
        return solid(IDLE_COLOUR, self.size)

    async def aclose(self) -> None:
        pass
