"""A simulated room for echo tests: the microphone hears the character's own voice (delayed, attenuated,
with a few reflections) plus noise, and sometimes the user talking over it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from digihuman.audio.echo import EchoCanceller
from digihuman.audio.source import FRAME_S, FRAME_SAMPLES, SAMPLE_RATE
from digihuman.audio.vad import SileroVAD, VADSegmenter
from digihuman.testing import speech

CHARACTER_LINES = (
    "Once upon a time there was a little fox who lived at the edge of a great forest.",
    "Every morning he walked down to the river to drink and to watch the fish.",
    "One day he met an old turtle who told him a story about the sea.",
    "The fox had never seen the sea, so he decided to go and find it.",
)
USER_LINES = (
    "Wait, can I ask you something?",
    "Sorry to interrupt, but what time is it?",
    "Stop, please.",
    "Hold on, I have a question.",
)


@dataclass(frozen=True)
class Room:
    delay_ms: float
    attenuation_db: float
    noise_db: float = -55.0
    seed: int = 0

    def echo(self, played: np.ndarray) -> np.ndarray:
        """What the microphone picks up of `played`: delayed, attenuated, with a few decaying reflections."""
        rng = np.random.default_rng(self.seed)
        delay = int(self.delay_ms * SAMPLE_RATE / 1000)
        direct = np.concatenate([np.zeros(delay, np.float32), played])[: len(played)]
        direct = direct * 10 ** (-self.attenuation_db / 20)
        out = direct.copy()
        for k in range(1, 6):
            tap = int(rng.integers(80, 1600))
            out[tap:] += direct[:-tap] * 0.5**k * 0.5
        return out + speech.noise(len(played) / SAMPLE_RATE, self.noise_db, self.seed + 1)


def character_speech(seconds: float) -> np.ndarray:
    """The character talking for `seconds`: its lines in a loop with short breaths between them."""
    pieces, total = [], 0
    while total < seconds * SAMPLE_RATE:
        for line in CHARACTER_LINES:
            piece = speech.join(speech.piper(line), speech.silence(0.4))
            pieces.append(piece)
            total += len(piece)
    return np.concatenate(pieces)[: int(seconds * SAMPLE_RATE)]


def frames(audio: np.ndarray) -> Iterator[np.ndarray]:
    for i in range(0, len(audio) - FRAME_SAMPLES + 1, FRAME_SAMPLES):
        yield audio[i : i + FRAME_SAMPLES]


def speech_starts(
    vad_model: str, played: np.ndarray, mic: np.ndarray, echo: EchoCanceller | None
) -> list[float]:
    """Where the listener's front end (echo canceller, then VAD) hears speech start, in seconds.

    The reference reaches the canceller as the player plays it: one frame of it before each microphone frame.
    """
    segmenter = VADSegmenter(SileroVAD(vad_model))
    starts = []
    for i, (ref, near) in enumerate(zip(frames(played), frames(mic), strict=False)):
        allow = True
        if echo is not None:
            echo.play(ref, SAMPLE_RATE)
            near, allow = echo.process(near)
        step = segmenter.step(near, i * FRAME_S, allow)
        if step.started:
            starts.append(step.start_s)
        if step.in_speech and step.silence_s >= 0.5:
            segmenter.reset()
    return starts
