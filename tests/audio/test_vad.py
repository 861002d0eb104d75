from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from digihuman.audio.source import FRAME_S, FRAME_SAMPLES
from digihuman.audio.vad import SileroVAD, VADParams, VADSegmenter
from digihuman.errors import BackendError
from digihuman.testing import speech


def frames(audio: np.ndarray) -> list[np.ndarray]:
    return [audio[i : i + FRAME_SAMPLES] for i in range(0, len(audio) - FRAME_SAMPLES + 1, FRAME_SAMPLES)]


def run(segmenter: VADSegmenter, audio: np.ndarray) -> list:
    return [segmenter.step(f, i * FRAME_S) for i, f in enumerate(frames(audio))]


def test_silence_and_noise_start_no_speech(silero_vad_onnx: Path) -> None:
    audio = speech.join(speech.silence(2), speech.noise(3, -40))
    steps = run(VADSegmenter(SileroVAD(silero_vad_onnx)), audio)
    assert not any(s.started for s in steps)


def test_speech_starts_near_its_onset_and_pre_roll_keeps_the_first_syllable(silero_vad_onnx: Path) -> None:
    said = speech.piper("Bob bought a big bag of beans.")  # a plosive first: the easiest onset to clip
    onset = 1.0
    steps = run(
        VADSegmenter(SileroVAD(silero_vad_onnx), VADParams(pre_roll_s=0.4)),
        speech.join(speech.silence(onset), said, speech.silence(1)),
    )
    started = [(i, s) for i, s in enumerate(steps) if s.started]
    assert len(started) == 1
    index, step = started[0]
    assert onset - 0.1 <= step.start_s <= onset + 0.25
    assert step.audio is not None
    audio_start = (index + 1) * FRAME_S - len(step.audio) / 16000
    assert audio_start <= onset - 0.3  # >= 300 ms of pre-roll before the first sound
    # the speech runs on to the end of the sentence, then silence grows
    assert steps[-1].silence_s > 0.5 and steps[-1].speech_end_s == pytest.approx(
        onset + len(said) / 16000, abs=0.25
    )


def test_streams_keep_their_own_state(silero_vad_onnx: Path) -> None:
    said = speech.join(speech.silence(0.3), speech.piper("Hello there."), speech.silence(0.3))
    alone = SileroVAD(silero_vad_onnx)
    expected = [alone(f) for f in frames(said)]
    a, b = SileroVAD(silero_vad_onnx), SileroVAD(silero_vad_onnx)
    noise = speech.noise(len(said) / 16000, -20)
    got = []
    for f, n in zip(frames(said), frames(noise), strict=False):
        got.append(a(f))
        b(n)  # another session's audio interleaved must not leak into this one
    assert got == pytest.approx(expected, abs=1e-5)


def test_wrong_frame_size_and_wrong_model_are_refused(silero_vad_onnx: Path, smart_turn_onnx: Path) -> None:
    with pytest.raises(ValueError, match="512 samples"):
        SileroVAD(silero_vad_onnx)(np.zeros(480, np.float32))
    with pytest.raises(BackendError, match="not a Silero VAD"):
        SileroVAD(smart_turn_onnx)
