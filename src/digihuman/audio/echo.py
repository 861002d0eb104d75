"""The character must never interrupt itself: remove its own voice from the microphone.

With loudspeakers the microphone hears the character, delayed by the room and the sound card and
attenuated. We know exactly what was played (the reference), so two layers use it:

1. Acoustic echo cancellation: WebRTC's AEC3 (the `pywebrtc-audio` bindings, the same code as in Chrome)
   subtracts the adaptively filtered reference and estimates the delay itself. On the simulated room
   (tests/audio/test_echo.py: 30-200 ms delay, 6-20 dB attenuation, reverb, noise) it removes 13-26 dB and
   the VAD sees no speech in what is left.
2. A reference-aware gate for the residue: while the reference is playing, a frame may count as speech only
   if cancellation left most of its energy in place (the user's voice is not in the reference and survives
   it; an echo does not: a frame that lost more than `gate_db` was the character) AND the microphone is
   louder than the echo the room would return (`margin_db` above the recent reference envelope times the
   echo path's gain, a running percentile of mic/reference). The second test catches what AEC3 misses at the
   onset of each sentence, while its filter re-adapts after a pause.

`play()` is called with what goes to the speaker, in playback order, as the player renders it; `process()`
with each 512-sample microphone frame. Each stream (session) has its own canceller.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import numpy as np

from digihuman.audio.source import FRAME_S, FRAME_SAMPLES, SAMPLE_RATE, Framer
from digihuman.errors import MissingExtraError

_SILENT_REF = 1e-4  # RMS below which the reference counts as silent (-80 dBFS)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


class EchoCanceller:
    """AEC3 plus the reference gate, for one microphone stream.

    `tail_s` is how long after the reference falls silent the gate stays armed (the room's delay and
    reverberation); `gate_db` how much energy cancellation must remove for a frame to count as echo.
    """

    def __init__(
        self, gate_db: float = 10.0, margin_db: float = 4.0, tail_s: float = 0.4, max_reference_s: float = 2.0
    ) -> None:
        try:
            from pywebrtc_audio import EchoCanceller as Aec3
        except ImportError:
            raise MissingExtraError("pywebrtc-audio", "asr") from None
        self._aec: Any = Aec3(sample_rate=SAMPLE_RATE, num_channels=1, stream_delay_ms=0)
        self.gate_db = gate_db
        self.margin = 10 ** (margin_db / 20)
        self.tail_s = tail_s
        tail_frames = max(1, round(tail_s / FRAME_S))
        self._envelope: deque[float] = deque(maxlen=tail_frames)  # reference RMS over the room's tail
        self._ratios: deque[float] = deque(maxlen=int(5.0 / FRAME_S))  # mic / envelope, for the echo gain
        self._lock = threading.Lock()  # play() comes from the player's thread, process() from the listener's
        self._framers: dict[int, Framer] = {}
        self._reference: deque[np.ndarray] = deque()
        self._queued = 0
        self._max_queued = int(max_reference_s * SAMPLE_RATE)
        self._since_loud_s = float("inf")
        self.echo_frames = 0  # frames the gate attributed to the character

    def play(self, pcm: np.ndarray, sample_rate: int) -> None:
        """What the speaker plays (any rate, mono float32), in order, as it is played."""
        framer = self._framers.setdefault(sample_rate, Framer(sample_rate))
        frames = framer.feed(pcm)
        with self._lock:
            for frame in frames:
                self._reference.append(frame.samples)
                self._queued += FRAME_SAMPLES
            # A microphone that stalled must not make the reference lag ever further behind.
            while self._queued > self._max_queued:
                self._queued -= len(self._reference.popleft())

    @property
    def reference_active(self) -> bool:
        """The character was audible within the last `tail_s` (its echo may still be in the room)."""
        return self._since_loud_s <= self.tail_s

    def process(self, mic: np.ndarray) -> tuple[np.ndarray, bool]:
        """One 512-sample mic frame -> (the frame without the echo, may it count as the user's speech)."""
        with self._lock:
            if self._reference:
                far = self._reference.popleft()
                self._queued -= FRAME_SAMPLES
            else:
                far = np.zeros(FRAME_SAMPLES, np.float32)
        far_rms = _rms(far)
        self._envelope.append(far_rms)
        self._since_loud_s = 0.0 if far_rms > _SILENT_REF else self._since_loud_s + FRAME_S
        mic = np.ascontiguousarray(mic, dtype=np.float32)
        far = np.ascontiguousarray(far, dtype=np.float32)
        clean = np.asarray(self._aec.process(mic, far), dtype=np.float32)
        if not self.reference_active:
            return clean, True
        mic_rms, clean_rms = _rms(mic), _rms(clean)
        removed_db = 20 * np.log10((mic_rms + 1e-9) / (clean_rms + 1e-9))
        envelope = max(self._envelope)
        if envelope > _SILENT_REF:
            self._ratios.append(mic_rms / envelope)
        # The echo path's gain: a high percentile of the ratio (the envelope outlasts the echo in pauses,
        # which lowers the typical ratio; the user talks over the character only a minority of the time).
        expected_echo = envelope * float(np.percentile(self._ratios, 80)) if self._ratios else 0.0
        user = removed_db < self.gate_db and mic_rms > self.margin * expected_echo
        if not user:
            self.echo_frames += 1
        return clean, user

    def reset(self) -> None:
        with self._lock:
            self._reference.clear()
            self._queued = 0
        self._aec.reset()
        self._since_loud_s = float("inf")
