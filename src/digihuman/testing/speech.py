"""Speech made at test time, so a listening test knows exactly what was said.

English comes from the real Piper voice (en_US-joe-medium, a test fixture); English and Chinese also from
the embedded espeak-ng voice. Everything is 16 kHz mono float32, cached per process.
"""

from __future__ import annotations

import asyncio
import io
import wave
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from digihuman.audio.source import SAMPLE_RATE, Framer


def to_16k(pcm: np.ndarray, rate: int) -> np.ndarray:
    framer = Framer(rate)
    frames = [*framer.feed(pcm.astype(np.float32)), *framer.flush()]
    return np.concatenate([f.samples for f in frames]) if frames else np.zeros(0, np.float32)


def _default_voice() -> Path:
    from digihuman.models import resolve

    return resolve("piper:en_US-joe-medium", kind="voice")


# Where the Piper voice comes from: the test suite points this at its cached fixture (or skips), a
# benchmark at the file it was given.
find_piper_voice: Callable[[], Path] = _default_voice


@cache
def _piper() -> Any:  # a PiperVoice
    from piper import PiperVoice

    return PiperVoice.load(str(find_piper_voice()))


@cache
def piper(text: str) -> np.ndarray:
    """Piper joe (a neural English voice) saying `text`, trimmed of its leading and trailing silence."""
    from piper import SynthesisConfig

    voice = _piper()
    # No sampling noise: the same text gives the same audio in every run (VITS samples by default).
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    pcm = np.concatenate([c.audio_float_array for c in voice.synthesize(text, syn_config=config)])
    return trim(to_16k(pcm * 0.7, voice.config.sample_rate))


@cache
def espeak(text: str, language: str = "zh") -> np.ndarray:
    """The embedded espeak-ng voice (English or Mandarin) saying `text`."""
    return trim(espeak_timed(text, language)[0])


@cache
def espeak_timed(text: str, language: str = "zh") -> tuple[np.ndarray, tuple[tuple[str, float, float], ...]]:
    """Untrimmed espeak speech with its word timings (label, start s, end s)."""
    from digihuman.tts.espeak import EspeakTTS

    async def run() -> tuple[np.ndarray, int, list]:
        tts = EspeakTTS()
        chunks = [c async for c in tts.synthesize(text, language)]
        await tts.aclose()
        return (
            np.concatenate([c.pcm for c in chunks]),
            chunks[0].sample_rate,
            [w for c in chunks for w in c.words],
        )

    # its own loop in its own thread: callers may be inside a running loop (async tests)
    with ThreadPoolExecutor(1) as pool:
        pcm, rate, words = pool.submit(asyncio.run, run()).result()
    timings = tuple(sorted({(w.label, w.start_s, w.end_s) for w in words}, key=lambda w: w[1]))
    return to_16k(pcm * 0.8, rate), timings


def trim(pcm: np.ndarray, floor: float = 0.01) -> np.ndarray:
    loud = np.flatnonzero(np.abs(pcm) > floor)
    return pcm[loud[0] : loud[-1] + 1].copy() if len(loud) else pcm


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE), np.float32)


def noise(seconds: float, level_db: float = -50.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * SAMPLE_RATE)) * 10 ** (level_db / 20)).astype(np.float32)


def join(*pieces: np.ndarray) -> np.ndarray:
    return np.concatenate(pieces).astype(np.float32)


def wav_bytes(pcm: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(pcm, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def write_wav(path: Path, pcm: np.ndarray, rate: int = SAMPLE_RATE) -> Path:
    path.write_bytes(wav_bytes(pcm, rate))
    return path


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate (Chinese: character error rate), ignoring case and punctuation."""
    ref, hyp = _tokens(reference), _tokens(hypothesis)
    d = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, d[0] = d[0], i
        for j, h in enumerate(hyp, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (r != h))
    return d[len(hyp)] / max(1, len(ref))


def _tokens(text: str) -> list[str]:
    import re

    text = re.sub(r"[^\w\s]", " ", text.lower())
    out: list[str] = []
    for word in text.split():
        # CJK: every character is a token
        if re.search(r"[\u4e00-\u9fff]", word):
            out.extend(ch for ch in word)
        else:
            out.append(word)
    return out
