from __future__ import annotations

import json
from pathlib import Path

import pytest

from digihuman.cli import main
from digihuman.testing import speech

FIRST = "What time does the museum open?"
SECOND = "Please turn off the lights in the kitchen."


def test_listen_prints_each_utterance_with_timings(
    tmp_path: Path, listen_env: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    audio = speech.join(
        speech.silence(0.5),
        speech.piper(FIRST),
        speech.silence(2.0),
        speech.piper(SECOND),
        speech.silence(1.0),
    )
    wav = speech.write_wav(tmp_path / "talk.wav", audio)
    assert main(["listen", str(wav), "--json", "--language", "en"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2
    assert speech.wer(FIRST, rows[0]["text"]) <= 0.1 and speech.wer(SECOND, rows[1]["text"]) <= 0.1
    assert rows[0]["language"] == "en" and rows[0]["start_s"] < rows[0]["end_s"] < rows[1]["start_s"]


def test_listen_on_silence_prints_nothing_and_fails(
    tmp_path: Path, listen_env: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    wav = speech.write_wav(tmp_path / "quiet.wav", speech.silence(2.0))
    assert main(["listen", str(wav)]) == 1
    assert capsys.readouterr().out == ""


def test_listen_on_a_broken_file_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"\x00" * 100)
    assert main(["listen", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a readable audio file" in err and len(err.splitlines()) == 1
