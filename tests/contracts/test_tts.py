"""The TTS contract, for every voice in backends.TTS_BACKENDS.

A voice yields float32 mono chunks in order: one positive sample rate per stream, `start_s` from 0 on the
utterance timeline with no gaps or overlaps, timings inside the audio. Closing the stream mid-way stops
the work (no chunk after it, nothing left running), and a failing backend raises BackendError.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from digihuman.errors import BackendError
from digihuman.media import AudioChunk, Timing
from digihuman.tts.base import TTS
from tests.contracts.backends import TTS_BACKENDS, Backend, Factory, build, failure_params
from tests.contracts.leaks import Snapshot

SENTENCE = "Hello there, it is nice to see you again today."
LONG = " ".join([SENTENCE] * 4)


@pytest.fixture(params=[backend.param() for backend in TTS_BACKENDS])
def backend(request: pytest.FixtureRequest) -> Backend[TTS]:
    backend = request.param
    backend.note_gaps(request)
    return backend


async def speak(tts: TTS, text: str = SENTENCE) -> list[AudioChunk]:
    return [chunk async for chunk in tts.synthesize(text, "en")]


def check_timings(timings: tuple[Timing, ...], total_s: float) -> None:
    starts = [t.start_s for t in timings]
    assert starts == sorted(starts), "timings out of order"
    for timing in timings:
        assert 0.0 <= timing.start_s <= timing.end_s <= total_s + 0.05, timing


async def test_chunks_are_ordered_and_timed(backend: Backend[TTS], request: pytest.FixtureRequest) -> None:
    tts = await build(backend.make, request)
    try:
        chunks = await speak(tts)
    finally:
        await tts.aclose()
    assert chunks, "no audio"
    rates = {chunk.sample_rate for chunk in chunks}
    assert len(rates) == 1 and rates.pop() > 0, "one positive sample rate per stream"
    assert chunks[0].start_s == 0.0, "the utterance timeline starts at 0"
    for before, after in itertools.pairwise(chunks):
        gap = after.start_s - (before.start_s + before.duration_s)
        assert abs(gap) <= 1.5 / before.sample_rate, f"chunks must follow each other exactly (gap {gap} s)"
    total_s = chunks[-1].start_s + chunks[-1].duration_s
    assert total_s > 0.5, "a sentence of speech"
    for chunk in chunks:
        assert chunk.pcm.dtype == np.float32 and chunk.pcm.ndim == 1
        assert np.isfinite(chunk.pcm).all() and np.abs(chunk.pcm).max(initial=0.0) <= 1.0
        check_timings(chunk.phonemes, total_s)
        check_timings(chunk.words, total_s)


async def test_closing_the_stream_stops_the_work(
    backend: Backend[TTS], request: pytest.FixtureRequest
) -> None:
    tts = await build(backend.make, request)
    try:
        await speak(tts, "Warm up.")  # long-lived workers a voice starts once belong to it
        before = Snapshot.take()
        stream = tts.synthesize(LONG, "en")
        first = await anext(stream)
        assert first.start_s == 0.0
        await stream.aclose()  # async generators have it; the turn engine calls it
        with pytest.raises(StopAsyncIteration):
            await anext(stream)
        await before.assert_nothing_left()
    finally:
        await tts.aclose()


@pytest.mark.parametrize("failing", failure_params(TTS_BACKENDS))
async def test_a_failing_backend_raises_backend_error(
    failing: Factory, request: pytest.FixtureRequest
) -> None:
    tts = await build(failing, request)
    try:
        with pytest.raises(BackendError):
            await speak(tts)
    finally:
        await tts.aclose()
