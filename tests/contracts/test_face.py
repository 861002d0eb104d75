"""The Face contract, for every face in backends.FACE_BACKENDS.

Frames for one utterance come in order at the face's fps: `pts_s` = index / fps from 0 on the utterance
timeline, RGB uint8 images of one shape, covering all of the audio. The idle frame has the same shape.
Closing the frame stream mid-way (or cancelling while a slow face renders) stops the work: no frame after
it, no task, thread or child process left. A failing backend raises BackendError.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import numpy as np
import pytest

from digihuman.errors import BackendError
from digihuman.face.base import Face
from digihuman.media import AudioChunk, VideoFrame
from tests.contracts.backends import FACE_BACKENDS, Backend, Factory, build, failure_params
from tests.contracts.leaks import Snapshot, child_pids

RATE = 16000
TURN = 7


@pytest.fixture(params=[backend.param() for backend in FACE_BACKENDS])
def backend(request: pytest.FixtureRequest) -> Backend[Face]:
    backend = request.param
    backend.note_gaps(request)
    return backend


def speech(seconds: float) -> np.ndarray:
    """A loud syllable rhythm: every face opens its mouth with loudness."""
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.5 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32)


async def utterance(seconds: float, chunk_s: float = 0.2) -> AsyncIterator[AudioChunk]:
    pcm, step = speech(seconds), int(chunk_s * RATE)
    for start in range(0, len(pcm), step):
        await asyncio.sleep(0)
        yield AudioChunk(pcm[start : start + step], RATE, start_s=start / RATE, turn_id=TURN)


async def frames_for(face: Face, seconds: float) -> list[VideoFrame]:
    return [frame async for frame in face.animate(utterance(seconds))]


async def test_frames_are_ordered_timed_and_cover_the_audio(
    backend: Backend[Face], request: pytest.FixtureRequest
) -> None:
    face = await build(backend.make, request)
    try:
        seconds = 1.0
        frames = await frames_for(face, seconds)
        idle = face.idle_frame(0.5)
    finally:
        await face.aclose()
    assert face.fps > 0 and face.size > 0
    assert frames, "no frames"
    assert [f.pts_s for f in frames] == pytest.approx([i / face.fps for i in range(len(frames))])
    assert len(frames) / face.fps >= seconds - 1 / face.fps, "frames must cover the audio"
    shape = frames[0].image.shape
    assert len(shape) == 3 and shape[2] == 3
    for frame in frames:
        assert frame.image.dtype == np.uint8 and frame.image.shape == shape
    assert idle.dtype == np.uint8 and idle.shape == shape, "the idle face matches the talking one"


async def test_closing_the_stream_stops_the_work(
    backend: Backend[Face], request: pytest.FixtureRequest
) -> None:
    face = await build(backend.make, request)
    try:
        await frames_for(face, 0.4)  # warm up: workers a face keeps for its lifetime are its own
        before = Snapshot.take()
        stream = face.animate(utterance(2.0))
        first = await anext(stream)
        assert first.pts_s == 0.0
        await stream.aclose()  # async generators have it; the turn engine calls it
        with pytest.raises(StopAsyncIteration):
            await anext(stream)
        await before.assert_nothing_left()
    finally:
        await face.aclose()


async def test_cancelling_before_the_first_frame_stops_the_work(
    backend: Backend[Face], request: pytest.FixtureRequest
) -> None:
    """What a barge-in does to a slow face still rendering: the task waiting for a frame is cancelled."""
    face = await build(backend.make, request)
    try:
        face.idle_frame(0.0)  # warm up: workers a face keeps for its lifetime are its own
        await frames_for(face, 0.2)
        before = Snapshot.take()
        stream = face.animate(utterance(2.0))
        waiting = asyncio.ensure_future(anext(stream))
        # A subprocess face is rendering once its tool runs; a real-time one may have a frame already.
        for _ in range(100):
            if waiting.done() or child_pids() - before.children:
                break
            await asyncio.sleep(0.02)
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        await stream.aclose()
        await before.assert_nothing_left()
    finally:
        await face.aclose()


@pytest.mark.parametrize("failing", failure_params(FACE_BACKENDS))
async def test_a_failing_backend_raises_backend_error(
    failing: Factory, request: pytest.FixtureRequest
) -> None:
    face = await build(failing, request)
    try:
        with pytest.raises(BackendError):
            await frames_for(face, 0.6)
    finally:
        await face.aclose()
