from __future__ import annotations

import itertools

import numpy as np
import pytest

from digihuman.face.visemes import (
    REST,
    LoudnessScale,
    MouthShape,
    MouthTrack,
    Smoother,
    audio_features,
    phoneme_shapes,
)
from digihuman.media import Timing


def shape(label: str) -> MouthShape:
    found = phoneme_shapes(label)
    assert found is not None, label
    return found[0]


def test_english_phonemes() -> None:
    assert shape("p").closed == shape("m").closed == shape("b").closed == 1.0
    assert shape("a").jaw > 0.8 and shape("A:").jaw > 0.8
    assert shape("@").jaw < shape("a").jaw
    assert shape("i:").wide > 0.6 and shape("i:").jaw < 0.4
    assert shape("u:").pucker > 0.8 and shape("O:").pucker > 0.3
    assert shape("f").closed > 0 and shape("s").wide > 0
    for pause in ("_", "_:", "_!", "||", ""):
        assert phoneme_shapes(pause) == (REST, REST)


def test_stress_marks_tones_and_unknown_names() -> None:
    assert shape("'a") == shape("a") and shape(",i:") == shape("i:")
    assert phoneme_shapes("5") is None  # a tone alone holds the neighbours' shape
    start, end = phoneme_shapes("aI")  # type: ignore[misc]
    assert start.jaw > 0.8 and end.wide > 0.6  # a glide from open to spread
    assert shape("zz9") is not None


def test_mandarin_phonemes() -> None:
    assert shape("ts.h").wide > 0 and shape("tS;").pucker > 0
    assert shape("X").jaw > 0  # espeak cmn's velar fricative
    start, end = phoneme_shapes("Au")  # type: ignore[misc]
    assert start.jaw > 0.8 and end.pucker > 0.8
    start, end = phoneme_shapes("iE")  # type: ignore[misc]
    assert start.wide > 0.6 and end.jaw > 0.5
    assert shape("y").pucker > 0.8


def test_audio_features_tell_bright_from_dark_and_silence() -> None:
    rate = 16000
    t = np.arange(800) / rate
    dark = audio_features((0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), rate)
    bright = audio_features((0.3 * np.sin(2 * np.pi * 3500 * t)).astype(np.float32), rate)
    noise = audio_features(np.random.default_rng(0).normal(0, 0.1, 800).astype(np.float32), rate)
    silence = audio_features(np.zeros(800, np.float32), rate)
    assert dark.centroid_hz < 600 < 3000 < bright.centroid_hz
    assert noise.noisiness > 0.3 > dark.noisiness
    assert silence.level_db < -100
    scale = LoudnessScale()
    assert scale.gate(silence.level_db) == 0.0 and scale.loudness(silence.level_db) == 0.0
    assert scale.gate(dark.level_db) == 1.0


def test_smoother_has_fast_attack_slower_release_and_settles() -> None:
    smoother = Smoother(25)
    opened = [smoother.step(MouthShape(jaw=1.0)).jaw for _ in range(4)]
    closed = [smoother.step(REST).jaw for _ in range(8)]
    assert opened[0] > 0.6 and opened[-1] > 0.98
    assert 1.0 > closed[0] > 0.3 and closed[-1] < 0.01
    assert all(b <= a for a, b in itertools.pairwise(closed))


def tone(seconds: float, rate: int = 16000, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * (np.sin(2 * np.pi * 200 * t) + 0.5 * np.sin(2 * np.pi * 900 * t))).astype(np.float32)


def test_track_opens_for_sound_and_closes_in_silence() -> None:
    rate = 16000
    pcm = np.concatenate([np.zeros(rate // 2, np.float32), tone(0.6), np.zeros(rate // 2, np.float32)])
    track = MouthTrack(25)
    track.add_audio(pcm, rate, 0.0)
    track.finish()
    jaws = np.array([s.jaw for s, _ in track.next_shapes(track.ready_frames())])
    assert len(jaws) == 40
    assert jaws[:10].max() < 0.02  # leading silence
    assert jaws[16:25].min() > 0.5  # the sound
    assert jaws[33:].max() < 0.02  # trailing silence


def test_track_with_timings_shapes_the_mouth_and_gates_on_audio() -> None:
    rate = 16000
    pcm = np.concatenate([tone(0.4), np.zeros(int(0.4 * rate), np.float32), tone(0.4)])
    timings = (
        Timing("m", 0.0, 0.1), Timing("a", 0.1, 0.4), Timing("u:", 0.4, 0.8),  # no sound under this "u:"
        Timing("i:", 0.8, 1.2),
    )  # fmt: skip
    track = MouthTrack(25)
    track.add_audio(pcm, rate, 0.0)
    track.add_phonemes(timings)
    track.finish()
    shapes = [s for s, _ in track.next_shapes(track.ready_frames())]
    assert shapes[1].closed > 0.8  # the "m"
    assert max(s.jaw for s in shapes[4:10]) > 0.7  # the "a"
    assert max(s.jaw + s.pucker for s in shapes[14:19]) < 0.05  # silent audio closes the mouth anyway
    assert max(s.wide for s in shapes[22:29]) > 0.5  # the "i:"


def test_track_streams_frames_as_audio_arrives() -> None:
    rate = 16000
    track = MouthTrack(25)
    track.add_audio(tone(0.5), rate, 0.0)
    assert track.frame_count() == 13
    ready = track.ready_frames()
    assert 8 <= ready < 13  # the last frames wait for the audio after them
    track.next_shapes(ready)
    track.add_audio(tone(0.5), rate, 0.5)
    assert track.ready_frames() > ready
    track.finish()
    assert track.ready_frames() == 25
    with pytest.raises(ValueError, match="sample rate"):
        track.add_audio(tone(0.1, rate=8000), 8000, 1.0)
