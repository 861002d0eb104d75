"""The chunks that flow through a turn: audio with timings, and timed video frames."""

from __future__ import annotations

from collections.abc import Iterable
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


def chunk_audio(
    pcm: np.ndarray,
    sample_rate: int,
    *,
    chunk_s: float,
    offset_s: float = 0.0,
    phonemes: Iterable[Timing] = (),
    words: Iterable[Timing] = (),
    text: str = "",
) -> list[AudioChunk]:
    """Cut one synthesized piece into chunks of about `chunk_s` that start `offset_s` into the utterance.

    `phonemes` and `words` are timed from the piece's start; they are shifted by `offset_s`, and each
    chunk carries those that overlap it (a timing spanning two chunks travels with both).
    """
    step = max(1, round(chunk_s * sample_rate))
    shifted_phonemes = [Timing(t.label, t.start_s + offset_s, t.end_s + offset_s) for t in phonemes]
    shifted_words = [Timing(t.label, t.start_s + offset_s, t.end_s + offset_s) for t in words]
    chunks = []
    for first in range(0, len(pcm), step):
        piece = pcm[first : first + step]
        start_s = offset_s + first / sample_rate
        end_s = start_s + len(piece) / sample_rate
        chunks.append(
            AudioChunk(
                pcm=piece,
                sample_rate=sample_rate,
                start_s=start_s,
                phonemes=tuple(t for t in shifted_phonemes if t.start_s < end_s and t.end_s > start_s),
                words=tuple(t for t in shifted_words if t.start_s < end_s and t.end_s > start_s),
                text=text,
            )
        )
    return chunks
