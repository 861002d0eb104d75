"""Measured lip sync: an independent detector (MediaPipe FaceMesh, run on the rendered frames) sees the
mouth open with the voice and close in its pauses, with espeak's phoneme timings and with audio alone."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest

from digihuman.face.animator import PortraitAnimator
from digihuman.face.rig import Rig
from digihuman.media import AudioChunk, Timing
from tests.face.lipsync import MouthMeter, loudness_envelope, pauses, pearson

FPS = 25
MIN_CORRELATION = 0.6
# Opening (inner-lip gap over face height) that still counts as a closed mouth: the closed rest pose
# measures about 0.015, speech 0.08 to 0.12.
CLOSED_BELOW = 0.035
SENTENCES = (
    "Good morning! The sun is up, the sky is blue, and the birds are singing. "
    "Well, let me think about it for a moment. Yes, I believe you are right."
)


@pytest.fixture(scope="module")
def meter() -> MouthMeter:
    pytest.importorskip("mediapipe", reason="the lip-sync check measures frames with mediapipe")
    return MouthMeter()


async def speak(text: str, voice: str, language: str) -> list[AudioChunk]:
    try:
        from digihuman.tts.espeak import EspeakTTS
    except ImportError as exc:
        pytest.skip(f"the espeak voice is not available ({exc})")
    tts = EspeakTTS(voice=voice)
    try:
        return [chunk async for chunk in tts.synthesize(text, language)]
    finally:
        await tts.aclose()


@pytest.fixture(scope="module")
def espeak_speech() -> list[AudioChunk]:
    import asyncio

    return asyncio.run(speak(SENTENCES, "en-us", "en"))


async def replay(chunks: list[AudioChunk], with_timings: bool) -> AsyncIterator[AudioChunk]:
    for chunk in chunks:
        yield chunk if with_timings else AudioChunk(chunk.pcm, chunk.sample_rate, chunk.start_s)


async def measure(
    rig: Rig, meter: MouthMeter, chunks: list[AudioChunk], with_timings: bool
) -> tuple[float, np.ndarray, np.ndarray]:
    animator = PortraitAnimator(rig, seed=5)
    frames = [frame async for frame in animator.animate(replay(chunks, with_timings))]
    await animator.aclose()
    pcm = np.concatenate([c.pcm for c in chunks])
    envelope = loudness_envelope(pcm, chunks[0].sample_rate, FPS, len(frames))
    opening = np.array([meter.opening(frame.image) for frame in frames])
    assert np.isnan(opening).mean() < 0.02  # the detector finds the face in the rendered frames
    return pearson(opening, envelope), opening, envelope


@pytest.mark.parametrize("with_timings", [True, False], ids=["phoneme-timings", "audio-only"])
async def test_espeak_lip_sync(
    rig: Rig, meter: MouthMeter, espeak_speech: list[AudioChunk], with_timings: bool
) -> None:
    assert any(chunk.phonemes for chunk in espeak_speech)  # espeak reports its phonemes
    correlation, opening, envelope = await measure(rig, meter, espeak_speech, with_timings)
    print(f"lip sync ({'phonemes' if with_timings else 'audio'}): r = {correlation:.3f}")
    assert correlation >= MIN_CORRELATION
    quiet = pauses(envelope)
    assert quiet.sum() >= 5  # the commas and full stops leave pauses
    assert np.nanmax(opening[quiet]) < CLOSED_BELOW
    assert np.nanmean(opening[envelope > 0.5]) > 2 * CLOSED_BELOW


async def test_mandarin_lip_sync_on_the_shipped_character(meter: MouthMeter) -> None:
    from digihuman.character import find_character

    chunks = await speak("你好，我叫小美。今天天气很好，我们出去走走吧。你觉得怎么样？", "cmn", "zh")
    rig = Rig.load(find_character("xiaomei").rig_path)
    correlation, opening, envelope = await measure(rig, meter, chunks, with_timings=True)
    print(f"Mandarin lip sync (phonemes): r = {correlation:.3f}")
    assert correlation >= MIN_CORRELATION
    assert np.nanmax(opening[pauses(envelope)]) < CLOSED_BELOW


def synthetic_speech(rate: int = 16000) -> tuple[np.ndarray, tuple[Timing, ...]]:
    """Voiced syllables with silent gaps, and made-up timings for them (no espeak needed)."""
    rng = np.random.default_rng(2)
    plan = [
        ("_", 0.3), ("h", 0.06), ("@", 0.14), ("l", 0.06), ("oU", 0.22), ("_", 0.4), ("m", 0.08),
        ("a", 0.22), ("t", 0.06), ("i:", 0.16), ("_", 0.45), ("s", 0.1), ("O:", 0.25), ("k", 0.06),
        ("u:", 0.2), ("_", 0.4),
    ]  # fmt: skip
    pieces, timings, at = [], [], 0.0
    for label, length in plan:
        n = int(length * rate)
        t = np.arange(n) / rate
        if label == "_":
            piece = np.zeros(n)
        else:
            vowel = label in {"@", "oU", "a", "i:", "O:", "u:"}
            envelope = np.sin(np.pi * t / length) ** 0.5
            tone = np.sin(2 * np.pi * 170 * t) + 0.5 * np.sin(2 * np.pi * 800 * t)
            piece = (
                (0.3 if vowel else 0.05)
                * envelope
                * (tone + (0.1 if vowel else 1.0) * rng.standard_normal(n))
            )
        pieces.append(piece)
        timings.append(Timing(label, at, at + length))
        at += length
    return np.concatenate(pieces).astype(np.float32), tuple(timings)


@pytest.mark.parametrize("with_timings", [True, False], ids=["phoneme-timings", "audio-only"])
async def test_synthetic_lip_sync(rig: Rig, meter: MouthMeter, with_timings: bool) -> None:
    pcm, timings = synthetic_speech()
    step = 1600
    chunks = [
        AudioChunk(pcm[i : i + step], 16000, i / 16000, phonemes=timings if i == 0 else ())
        for i in range(0, len(pcm), step)
    ]
    correlation, opening, envelope = await measure(rig, meter, chunks, with_timings)
    print(f"synthetic lip sync ({'phonemes' if with_timings else 'audio'}): r = {correlation:.3f}")
    assert correlation >= MIN_CORRELATION
    assert np.nanmax(opening[pauses(envelope)]) < CLOSED_BELOW
