"""The Sink contract, for every output in backends.SINK_BACKENDS (player window, MP4 recorders, fakes).

A sink takes one turn at a time on the turn's timeline (audio `start_s` and frame `pts_s` from 0):
`played_s` never runs backwards or ahead of what was written; `end_turn` returns once the turn is played
or saved; `cancel_turn` drops the rest at once and reports what was heard; writes for a turn that is not
the current one (late chunks of a cancelled turn) are dropped without an error; after `aclose` nothing
the sink started is still running.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from digihuman.media import AudioChunk, VideoFrame
from digihuman.output.base import Sink
from tests.contracts.backends import SINK_BACKENDS, SINK_FPS, SINK_SIZE, Backend, build
from tests.contracts.leaks import Snapshot

RATE = 24000
CHUNK_S = 0.2


@pytest.fixture(params=[backend.param() for backend in SINK_BACKENDS])
def backend(request: pytest.FixtureRequest) -> Backend[Sink]:
    backend = request.param
    backend.note_gaps(request)
    return backend


def audio(turn_id: int, start_s: float) -> AudioChunk:
    t = start_s + np.arange(round(CHUNK_S * RATE)) / RATE
    return AudioChunk((0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), RATE, start_s, turn_id=turn_id)


def frame(turn_id: int, index: int) -> VideoFrame:
    return VideoFrame(np.full((SINK_SIZE, SINK_SIZE, 3), index % 256, np.uint8), index / SINK_FPS, turn_id)


async def speak(sink: Sink, turn_id: int, seconds: float, played: list[float]) -> float:
    """Write `seconds` of the turn, chunk by chunk with its frames; record played_s as it goes."""
    written = 0.0
    for index in range(round(seconds / CHUNK_S)):
        start_s = index * CHUNK_S
        await sink.write_audio(audio(turn_id, start_s))
        for number in range(round(start_s * SINK_FPS), round((start_s + CHUNK_S) * SINK_FPS)):
            await sink.write_frame(frame(turn_id, number))
        written = start_s + CHUNK_S
        played.append(sink.played_s(turn_id))
        await asyncio.sleep(0.01)
    return written


def check_played(played: list[float], written: float) -> None:
    assert played == sorted(played), f"played_s ran backwards: {played}"
    assert all(0.0 <= p <= written + 0.05 for p in played), f"played_s ahead of the audio: {played}"


async def test_a_turn_plays_or_saves_in_full(backend: Backend[Sink], request: pytest.FixtureRequest) -> None:
    sink = await build(backend.make, request)
    before = Snapshot.take()
    try:
        sink.begin_turn(1)
        played: list[float] = []
        written = await speak(sink, 1, 1.0, played)
        started = time.monotonic()
        await asyncio.wait_for(sink.end_turn(1), 10)
        assert time.monotonic() - started < written + 2.0, "end_turn waits for playback, not more"
        check_played(played, written)
    finally:
        await sink.aclose()
    await before.assert_nothing_left()


async def test_cancel_drops_the_rest_at_once(backend: Backend[Sink], request: pytest.FixtureRequest) -> None:
    sink = await build(backend.make, request)
    before = Snapshot.take()
    try:
        sink.begin_turn(2)
        played: list[float] = []
        written = await speak(sink, 2, 0.6, played)
        heard = sink.cancel_turn(2)
        assert 0.0 <= heard <= written + 0.05
        await sink.write_audio(audio(2, written))  # a late chunk of the cut turn: dropped, no error
        await sink.write_frame(frame(2, round(written * SINK_FPS)))
        started = time.monotonic()
        await asyncio.wait_for(sink.end_turn(2), 5)
        assert time.monotonic() - started < 1.0, "nothing is left to play after a cancel"
        await asyncio.sleep(0.1)
        assert sink.played_s(2) <= heard + 0.05, "playback stopped at the cut"
        check_played(played, written)
    finally:
        await sink.aclose()
    await before.assert_nothing_left()


async def test_chunks_of_another_turn_are_dropped(
    backend: Backend[Sink], request: pytest.FixtureRequest
) -> None:
    sink = await build(backend.make, request)
    before = Snapshot.take()
    try:
        sink.begin_turn(3)
        await sink.write_audio(audio(99, 0.0))
        await sink.write_frame(frame(99, 0))
        assert sink.played_s(99) == 0.0
        played: list[float] = []
        written = await speak(sink, 3, 0.4, played)
        await asyncio.wait_for(sink.end_turn(3), 10)
        check_played(played, written)
    finally:
        await sink.aclose()
    await before.assert_nothing_left()
