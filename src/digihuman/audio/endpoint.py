"""End of turn: has the user finished speaking, or only paused mid-sentence?

Silence alone is a poor judge: "I'd like to ... um ... book a table" pauses longer than many finished
sentences do. Smart Turn v3.2 (pipecat-ai/smart-turn-v3, BSD-2) listens to the last 8 s of the turn and
gives P(complete) from its intonation and words. The policy (`TurnDetector`): after a short silence ask Smart
Turn; P >= threshold ends the turn, unless the transcript so far plainly stops mid-sentence
(`sounds_unfinished`: "...remind me to", a trailing ellipsis); otherwise ask again as the silence grows, and
end anyway after `max_silence_s`. Without the model the turn ends after `fallback_silence_s` of silence.

Smart Turn's input (read from pipecat-ai 1.14's local_smart_turn_v3.py and checked on the ONNX):
`input_features` (batch, 80, 800) = Whisper's log-mel spectrogram (n_fft 400, hop 160, 80 Slaney mel bins,
log10, clamped to max - 8, (x + 4) / 4) of exactly 8 s of 16 kHz audio: the turn's last 8 s, front-padded
with zeros, the waveform normalized to zero mean and unit variance first. Output (batch, 1) = P(complete),
already a sigmoid.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from digihuman.audio.source import SAMPLE_RATE
from digihuman.audio.vad import model_file, onnx_session

WINDOW_S = 8
N_FFT = 400
HOP = 160
N_MELS = 80
N_SAMPLES = WINDOW_S * SAMPLE_RATE


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    # Slaney's mel scale: linear below 1 kHz, logarithmic above (what Whisper's filters use).
    hz = np.asarray(hz, np.float64)
    mel = 3.0 * hz / 200.0
    log_region = hz >= 1000.0
    return np.where(log_region, 15.0 + np.log(np.maximum(hz, 1e-9) / 1000.0) * (27.0 / np.log(6.4)), mel)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, np.float64)
    hz = 200.0 * mel / 3.0
    return np.where(mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)), hz)


@cache
def mel_filters() -> np.ndarray:
    """(201, 80) Slaney-normalized triangular filters over 0..8 kHz."""
    points = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE / 2), N_MELS + 2))
    bins = np.linspace(0, SAMPLE_RATE // 2, N_FFT // 2 + 1)
    slopes = points[None, :] - bins[:, None]
    widths = np.diff(points)
    down = -slopes[:, :-2] / widths[:-1]
    up = slopes[:, 2:] / widths[1:]
    filters = np.maximum(0.0, np.minimum(down, up))
    return filters * (2.0 / (points[2:] - points[:-2]))[None, :]


@cache
def _hann() -> np.ndarray:
    return np.hanning(N_FFT + 1)[:-1]  # periodic, as torch.hann_window


def log_mel(audio: np.ndarray) -> np.ndarray:
    """Smart Turn's (80, 800) features for the last 8 s of `audio` (16 kHz mono)."""
    x = np.asarray(audio, np.float32)[-N_SAMPLES:]
    if len(x) < N_SAMPLES:
        x = np.concatenate([np.zeros(N_SAMPLES - len(x), np.float32), x])
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    padded = np.pad(x.astype(np.float64), N_FFT // 2, mode="reflect")
    windows = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    power = np.abs(np.fft.rfft(windows * _hann(), axis=-1)) ** 2
    mel = np.log10(np.maximum(power @ mel_filters(), 1e-10)).T[:, :-1]
    mel = np.maximum(mel, mel.max() - 8.0)
    return ((mel + 4.0) / 4.0).astype(np.float32)


@cache
def _shared_session(path: Path) -> Any:
    return onnx_session(path, threads=1)


class SmartTurn:
    """P(the turn is complete) for a turn's audio. The ONNX session is shared by every instance."""

    def __init__(self, model: str | Path) -> None:
        self._session = _shared_session(model_file(model, "turn").resolve())

    def __call__(self, audio: np.ndarray) -> float:
        """Blocking (about 50-70 ms on one core): call it from a worker thread."""
        features = log_mel(audio)[None]
        (prob,) = self._session.run(None, {"input_features": features})
        return float(np.asarray(prob).reshape(-1)[0])


# Words a sentence does not end on: articles, conjunctions, possessives, fillers ...
_DANGLING = frozenset(
    {"a", "an", "the", "and", "or", "but", "because", "if", "than", "my", "your", "our", "their", "his"}
    | {"its", "whose", "to", "um", "uh", "er"}
)
# ... and words it rarely ends on outside a question ("Where are you from?" is finished).
_DANGLING_UNLESS_QUESTION = frozenset(
    {"could", "would", "should", "can", "will", "shall", "may", "might", "must", "is", "are", "was", "were"}
    | {
        "be",
        "been",
        "that",
        "which",
        "who",
        "when",
        "where",
        "with",
        "for",
        "about",
        "in",
        "on",
        "at",
        "from",
    }
    | {"by", "into", "i", "we", "they"}
)
# Chinese clause openers left hanging ("如果明天下雨的话", "因为我累所以").
_DANGLING_ZH = (
    *("的话", "所以", "因为", "但是", "而且", "然后", "如果"),
    *("就是", "还有", "或者", "和", "跟", "把", "被"),
)


def sounds_unfinished(text: str) -> bool:
    """Does the transcript so far stop mid-sentence? A trailing ellipsis, comma or dash (Whisper's marks for
    speech that breaks off) or a dangling word ("...we could", "remind me to")."""
    stripped = text.strip()
    if not stripped:
        return False
    if stripped.endswith(("...", "…", ",", "，", "-", "—", "、")):
        return True
    core = stripped.rstrip(".?!。？！ ")
    if any(core.endswith(word) for word in _DANGLING_ZH):
        return True
    words = re.findall(r"[a-z']+", core.lower())
    if not words or not core[-1:].isalpha():
        return False
    return words[-1] in _DANGLING or (not stripped.endswith("?") and words[-1] in _DANGLING_UNLESS_QUESTION)


@dataclass(frozen=True, slots=True)
class TurnParams:
    """When a pause ends the turn. The defaults were the best of a grid on the labelled set of
    tests/audio/turn_set.py (counting a premature end twice as bad as a late one); benchmarks/listening.py
    reports the error rates and delays they give."""

    check_after_s: float = 0.3  # silence before Smart Turn is first asked
    recheck_every_s: float = 0.3  # ask again as the silence grows: P rises on finished turns
    threshold: float = 0.3  # P(complete) that ends the turn (the words can still veto it)
    max_silence_s: float = 1.6  # the turn ends after this much silence whatever Smart Turn says
    fallback_silence_s: float = 0.8  # without Smart Turn: silence alone ends the turn


class TurnDetector:
    """The end-of-turn policy for one stream: silence from the VAD plus Smart Turn's answers.

    Per frame in speech: `should_check(silence_s)` says whether to run Smart Turn now (the caller runs it
    in a worker thread), `ended(silence_s, prob)` whether the turn is over. `reset()` after each turn.
    """

    def __init__(self, params: TurnParams | None = None, smart_turn: bool = True) -> None:
        self.params = params or TurnParams()
        self.smart_turn = smart_turn
        self.last_prob: float | None = None
        self._next_check_s = self.params.check_after_s
        self._vetoed = False
        self._held_until_s = 0.0

    def reset(self) -> None:
        self.last_prob = None
        self._next_check_s = self.params.check_after_s
        self._vetoed = False
        self._held_until_s = 0.0

    def veto(self) -> None:
        """The words so far stop mid-sentence: in this pause only the silence limit ends the turn."""
        self._vetoed = True
        self.last_prob = None

    def hold(self, silence_s: float) -> None:
        """Judge this pause afresh a little later: the user has just interrupted the character, and what was
        heard so far had its voice over it (the echo gate muted parts of the user's)."""
        self.last_prob = None
        self._next_check_s = self._held_until_s = silence_s + self.params.recheck_every_s

    def should_check(self, silence_s: float) -> bool:
        if silence_s <= 0.0:
            # Speech resumed: the earlier answer no longer holds, the next pause starts over.
            self.last_prob = None
            self._vetoed = False
            self._next_check_s = self.params.check_after_s
            self._held_until_s = 0.0
            return False
        if not self.smart_turn or self._vetoed or silence_s + 1e-9 < self._next_check_s:
            return False
        self._next_check_s = silence_s + self.params.recheck_every_s
        return True

    def ended(self, silence_s: float, prob: float | None = None) -> str | None:
        """The reason the turn ends ("smart_turn", "silence"), or None while it goes on."""
        if prob is not None:
            self.last_prob = prob
        if silence_s <= 0.0 or silence_s + 1e-9 < self._held_until_s:
            return None
        if self.smart_turn and self.last_prob is not None and self.last_prob >= self.params.threshold:
            return "smart_turn"
        limit = self.params.max_silence_s if self.smart_turn else self.params.fallback_silence_s
        return "silence" if silence_s + 1e-9 >= limit else None
