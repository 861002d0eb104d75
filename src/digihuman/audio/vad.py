"""Voice activity: Silero VAD (v5/v6 ONNX) run by onnxruntime, and a segmenter with pre-roll.

The model takes 512 new samples at 16 kHz plus the previous chunk's last 64 samples as context, a
recurrent state (2, batch, 128) and the rate; it returns P(speech) and the next state (read from the
silero-vad 6.2.3 package's OnnxWrapper and checked against its ONNX). No torch at run time.

The ONNX session is shared read-only by every stream (onnxruntime's `run` is thread-safe); the recurrent
state and the context are per stream (`SileroVAD`), so many sessions can listen in one process.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from digihuman.audio.source import FRAME_S, FRAME_SAMPLES, SAMPLE_RATE
from digihuman.errors import BackendError, MissingExtraError

CONTEXT_SAMPLES = 64
STATE_SHAPE = (2, 1, 128)
# The recurrent state drifts on long streams (after minutes of echo residue it stops hearing speech):
# like pipecat, reset it every 2 s of audio at the first quiet moment (5 windows in a row below 0.1).
RESET_EVERY_FRAMES = int(2.0 / FRAME_S)
RESET_LOW_FRAMES = 5
RESET_LOW_PROB = 0.1
_RESOLVE_LOCK = threading.Lock()


def onnx_session(path: Path, threads: int = 1) -> Any:
    """An onnxruntime CPU session; MissingExtraError without onnxruntime, BackendError for a bad file."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise MissingExtraError("onnxruntime", "asr") from None
    options = ort.SessionOptions()
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = threads
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise BackendError(f"{path} is not a usable ONNX model ({str(exc).splitlines()[0]})") from None


def model_file(spec: str | Path, kind: str) -> Path:
    """A local file as is, else the model by name through digihuman.models (downloaded once, cached)."""
    path = Path(spec).expanduser()
    if path.exists():
        return path
    from digihuman.models import resolve

    with _RESOLVE_LOCK:  # two sessions starting at once must not download the same file twice
        return Path(resolve(str(spec), kind=kind))


@cache
def _shared_session(path: Path) -> Any:
    return onnx_session(path, threads=1)


class SileroVAD:
    """P(speech) for each 512-sample frame of one stream. The model is shared; the state is not."""

    def __init__(self, model: str | Path) -> None:
        # models.py files listening models (VAD, end of turn) under one kind, "turn"
        self._session = _shared_session(model_file(model, "turn").resolve())
        names = {i.name for i in self._session.get_inputs()}
        if names != {"input", "state", "sr"}:
            raise BackendError(f"{model} is not a Silero VAD v5/v6 ONNX model (inputs: {sorted(names)})")
        self._sr = np.array(SAMPLE_RATE, dtype=np.int64)
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros(STATE_SHAPE, np.float32)
        self._context = np.zeros((1, CONTEXT_SAMPLES), np.float32)
        self._since_reset = 0
        self._low_run = 0

    def __call__(self, samples: np.ndarray, quiet: bool = True) -> float:
        """P(speech) for one frame. `quiet`: no speech segment is open, so the state may be refreshed."""
        if samples.shape != (FRAME_SAMPLES,):
            raise ValueError(f"Silero VAD takes {FRAME_SAMPLES} samples at 16 kHz, got {samples.shape}")
        x = np.concatenate([self._context, samples.reshape(1, -1).astype(np.float32, copy=False)], axis=1)
        prob, self._state = self._session.run(None, {"input": x, "state": self._state, "sr": self._sr})
        self._context = x[:, -CONTEXT_SAMPLES:]
        p = float(prob[0, 0])
        self._since_reset += 1
        self._low_run = self._low_run + 1 if p < RESET_LOW_PROB else 0
        if quiet and self._since_reset >= RESET_EVERY_FRAMES and self._low_run >= RESET_LOW_FRAMES:
            self.reset()
        return p


@dataclass(frozen=True, slots=True)
class VADParams:
    """Segmenter settings. `threshold` starts speech; it continues until P falls below `threshold - 0.15`."""

    threshold: float = 0.5
    min_speech_s: float = 0.15  # voiced time needed before speech counts (clicks and taps do not)
    min_silence_s: float = 0.2  # unvoiced time that makes a pause
    pre_roll_s: float = 0.4  # audio kept before the first voiced frame: the first syllable's onset

    @property
    def off_threshold(self) -> float:
        return max(0.05, self.threshold - 0.15)


@dataclass(frozen=True, slots=True)
class VADStep:
    """What one frame did to the segment.

    `started` on the frame where speech is confirmed; `audio` then holds the pre-roll plus everything since
    the first voiced frame (later frames are appended by the caller). `silence_s` is the unvoiced time since
    the last voiced frame while in speech (0 while voiced); `speech_end_s` is where that frame ended.
    """

    prob: float
    voiced: bool
    in_speech: bool
    started: bool = False
    start_s: float = 0.0
    speech_end_s: float = 0.0
    silence_s: float = 0.0
    voiced_s: float = 0.0
    audio: np.ndarray | None = None


class VADSegmenter:
    """Frames in, speech segments out: hysteresis on P(speech), a minimum voiced time, and pre-roll."""

    def __init__(self, vad: SileroVAD, params: VADParams | None = None) -> None:
        self.vad = vad
        self.params = params or VADParams()
        keep = int(np.ceil((self.params.pre_roll_s + self.params.min_speech_s) / FRAME_S)) + 2
        self._recent: deque[tuple[float, np.ndarray]] = deque(maxlen=keep)
        self.in_speech = False
        self._candidate_start: float | None = None
        self._candidate_voiced = 0.0
        self._start_s = 0.0
        self._speech_end_s = 0.0
        self._voiced_s = 0.0
        self._heard_end_s = 0.0

    @property
    def voiced_s(self) -> float:
        """Voiced time in the current segment."""
        return self._voiced_s

    @property
    def speech_end_s(self) -> float:
        """Where the last voiced frame ended."""
        return self._speech_end_s

    @property
    def heard_end_s(self) -> float:
        """Where the last frame the VAD rated as speech ended, counting frames the echo gate muted: while the
        user talks over the character, the gate mutes some of the user's own syllables too."""
        return max(self._heard_end_s, self._speech_end_s)

    def reset(self) -> None:
        """End the segment (keeps the VAD's recurrent state: the stream goes on)."""
        self.in_speech = False
        self._candidate_start = None
        self._candidate_voiced = 0.0
        self._voiced_s = 0.0

    def step(self, samples: np.ndarray, t_s: float, allow: bool = True) -> VADStep:
        """One frame. `allow=False` (the echo gate: only the character's own voice) counts it as unvoiced."""
        prob = self.vad(samples, quiet=not self.in_speech and self._candidate_start is None)
        p = self.params
        on = p.off_threshold if self.in_speech or self._candidate_start is not None else p.threshold
        voiced = allow and prob >= on
        self._recent.append((t_s, samples))
        end = t_s + FRAME_S
        if self.in_speech:
            if prob >= on:
                self._heard_end_s = end  # what the VAD heard, echo gate or not
            if voiced:
                self._speech_end_s = end
                self._voiced_s += FRAME_S
            silence = 0.0 if voiced else end - self._speech_end_s
            return VADStep(
                prob, voiced, True, False, self._start_s, self._speech_end_s, silence, self._voiced_s
            )
        if not voiced:
            # A candidate survives short dips (one unvoiced frame between syllables) but not a pause.
            if self._candidate_start is not None and end - self._speech_end_s >= p.min_silence_s:
                self._candidate_start = None
                self._candidate_voiced = 0.0
            return VADStep(prob, False, False)
        if self._candidate_start is None:
            self._candidate_start = t_s
            self._candidate_voiced = 0.0
        self._candidate_voiced += FRAME_S
        self._speech_end_s = end
        if self._candidate_voiced < p.min_speech_s:
            return VADStep(prob, True, False)
        self.in_speech = True
        self._heard_end_s = end
        self._start_s = self._candidate_start
        self._voiced_s = self._candidate_voiced
        self._candidate_start = None
        first = self._start_s - p.pre_roll_s - 1e-9
        audio = np.concatenate([s for t, s in self._recent if t >= first])
        return VADStep(prob, True, True, True, self._start_s, end, 0.0, self._voiced_s, audio)
