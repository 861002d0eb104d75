from __future__ import annotations

from pathlib import Path

import numpy as np

from digihuman.audio.echo import EchoCanceller
from digihuman.audio.source import SAMPLE_RATE
from digihuman.testing import room, speech

ROOMS = [
    room.Room(30, 6, seed=1),
    room.Room(80, 10, seed=2),
    room.Room(120, 14, seed=3),
    room.Room(200, 20, seed=4),
]


def test_five_minutes_of_its_own_voice_never_start_speech(silero_vad_onnx: Path) -> None:
    minute = room.character_speech(75.0)  # 4 rooms x 75 s = 5 simulated minutes
    for setting in ROOMS:
        mic = setting.echo(minute)
        assert room.speech_starts(str(silero_vad_onnx), minute, mic, EchoCanceller()) == [], setting


def test_without_the_canceller_the_echo_would_interrupt(silero_vad_onnx: Path) -> None:
    played = room.character_speech(10.0)
    assert room.speech_starts(str(silero_vad_onnx), played, ROOMS[1].echo(played), None)


def test_the_user_talking_over_the_character_is_still_heard(silero_vad_onnx: Path) -> None:
    played = room.character_speech(40.0)
    for setting in ROOMS:
        mic = setting.echo(played)
        spans = []
        for k, line in enumerate(room.USER_LINES):
            onset = 3.0 + 9.0 * k + setting.delay_ms / 1000
            said = speech.piper(line)
            at = int(onset * SAMPLE_RATE)
            mic[at : at + len(said)] += said
            spans.append((onset, onset + len(said) / SAMPLE_RATE))
        starts = room.speech_starts(str(silero_vad_onnx), played, mic, EchoCanceller())
        for onset, _ in spans:  # every interruption is heard within a second (a pause after "Wait," included)
            assert any(onset - 0.5 <= s <= onset + 1.0 for s in starts), (setting, onset, starts)
        for s in starts:  # and nothing outside the user's own speech
            assert any(a - 0.5 <= s <= b for a, b in spans), (setting, s, starts)


def test_reference_gate_arms_only_while_the_character_is_audible() -> None:
    echo = EchoCanceller(tail_s=0.2)
    quiet = np.zeros(512, np.float32)
    assert not echo.reference_active
    echo.play(np.full(512, 0.1, np.float32), SAMPLE_RATE)
    echo.process(quiet)
    assert echo.reference_active
    for _ in range(8):  # 8 x 32 ms of silence in the reference: the room's tail has died out
        echo.process(quiet)
    assert not echo.reference_active
