"""The chunks that flow through a turn: audio with timings, and timed video frames."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, slots=True)
class Timing:
    """A phoneme or word, timed in seconds from the start of its utterance."""

    label: str
    start_s: float
    end_s: float

    def shifted(self, offset_s: float) -> Timing:
        return Timing(self.label, self.start_s + offset_s, self.end_s + offset_s)


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """Mono float32 PCM in [-1, 1].

    `start_s` is where the chunk's first sample sits in its utterance. Timings are relative to the
    utterance start, so a chunk may carry timings for audio that arrives in later chunks.
    """

    pcm: np.ndarray
    sample_rate: int
    start_s: float = 0.0
    phonemes: tuple[Timing, ...] = ()
    words: tuple[Timing, ...] = ()
    turn_id: int = 0
    text: str = ""

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / self.sample_rate


@dataclass(frozen=True, slots=True)
class VideoFrame:
    """An RGB uint8 image (H, W, 3) shown at `pts_s` seconds from its utterance start."""

    image: np.ndarray
    pts_s: float
    turn_id: int = 0


@dataclass(slots=True)
class Utterance:
    """One sentence's audio, collected: what a slow face backend or a recorder needs whole."""

    chunks: list[AudioChunk] = field(default_factory=list)

    @property
    def sample_rate(self) -> int:
        return self.chunks[0].sample_rate if self.chunks else 16000

    def pcm(self) -> np.ndarray:
        if not self.chunks:
            return np.zeros(0, np.float32)
        return np.concatenate([c.pcm for c in self.chunks]).astype(np.float32, copy=False)

    def phonemes(self) -> tuple[Timing, ...]:
        seen: dict[tuple[str, float], Timing] = {}
        for chunk in self.chunks:
            for t in chunk.phonemes:
                seen[(t.label, t.start_s)] = t
        return tuple(sorted(seen.values(), key=lambda t: t.start_s))
