from __future__ import annotations

import asyncio

import numpy as np

from digihuman.asr.base import Transcript
from digihuman.asr.streaming import StreamingTranscriber, StreamParams
from digihuman.audio.source import SAMPLE_RATE


class CountingASR:
    """Answers with the audio's length in seconds, so each decode says what it covered."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.calls: list[tuple[float, str | None]] = []
        self.delay_s = delay_s

    async def transcribe(
        self, audio: np.ndarray, language: str | None = None, prompt: str | None = None
    ) -> Transcript:
        self.calls.append((len(audio) / SAMPLE_RATE, prompt))
        await asyncio.sleep(self.delay_s)
        return Transcript(f"{len(audio) / SAMPLE_RATE:.1f}s", "en", (), len(audio) / SAMPLE_RATE)

    async def aclose(self) -> None:
        pass


def second() -> np.ndarray:
    return np.zeros(SAMPLE_RATE, np.float32)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_partials_follow_the_growing_buffer() -> None:
    asr = CountingASR()
    stream = StreamingTranscriber(asr, params=StreamParams(partial_every_s=0.8))
    partials = []
    for _ in range(3):
        stream.add(second())
        await stream.maybe_partial()
        await settle()
        if (p := await stream.maybe_partial()) is not None:
            partials.append(p)
    assert partials == ["1.0s", "2.0s", "3.0s"]


async def test_a_speculative_final_is_reused_when_no_speech_follows() -> None:
    asr = CountingASR()
    stream = StreamingTranscriber(asr, params=StreamParams(partial_every_s=0))
    stream.add(second())
    stream.add(second())
    await stream.prepare_final(upto_s=1.5)  # the user paused after 1.5 s
    await settle()
    result = await stream.final(upto_s=1.5)
    assert result.text == "1.5s" and len(asr.calls) == 1


async def test_a_final_waits_for_the_pending_decode_instead_of_racing_it() -> None:
    asr = CountingASR(delay_s=0.05)
    stream = StreamingTranscriber(asr, params=StreamParams(partial_every_s=0.5))
    stream.add(second())
    await stream.maybe_partial()  # a partial of 1.0 s starts
    stream.add(second())
    await stream.prepare_final(upto_s=2.0)  # queued behind it
    result = await stream.final(upto_s=2.0)
    assert result.text == "2.0s"
    assert [c[0] for c in asr.calls] == [1.0, 2.0]


async def test_a_ten_minute_monologue_stays_bounded() -> None:
    asr = CountingASR()
    stream = StreamingTranscriber(asr, params=StreamParams(partial_every_s=0, window_s=20))
    most = 0.0
    for _ in range(600):
        stream.add(second())
        await stream.maybe_partial()
        await settle()
        most = max(most, stream.buffered_s)
    result = await stream.final()
    assert most <= 22  # never more than a window (+ what arrived during a decode)
    assert max(c[0] for c in asr.calls) <= 22
    assert result.text.startswith("21.0s 21.0s")  # committed windows joined, then the tail
    assert asr.calls[-1][1] is not None  # later windows are prompted with what was said before
