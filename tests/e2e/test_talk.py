"""`digihuman talk` end to end on real models: a sound file as the microphone (Piper speech), the real Silero
VAD, Smart Turn and faster-whisper base, and the real 0.5B instruct model on llama.cpp's server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from digihuman.testing.speech import piper, wer
from tests.e2e.support import (
    assert_ok,
    assert_one_line_error,
    assert_valid_mp4,
    cli_env,
    describe,
    final_error_line,
    json_lines,
    leftovers,
    run_cli,
)
from tests.real_models import real_model_path, serve_gguf

pytestmark = pytest.mark.slow

QUESTION = "What is the capital of France?"
STORY = "Tell me a long story about a brave knight and a green dragon."


@pytest.fixture(scope="module")
def qwen_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    model = real_model_path("qwen-gguf")
    with serve_gguf(model, tmp_path_factory.mktemp("llama") / "server.log", n_ctx=2048) as url:
        yield url


def listen_env(home: Path, **extra: str) -> dict[str, str]:
    models = {
        "DIGIHUMAN_ASR__MODEL": str(real_model_path("whisper-base")),
        "DIGIHUMAN_LISTEN__VAD_MODEL": str(real_model_path("silero-vad")),
        "DIGIHUMAN_LISTEN__TURN_MODEL": str(real_model_path("smart-turn")),
        "DIGIHUMAN_FACE__SIZE": "128",
    }
    return cli_env(home, **{**models, **extra})


def sound_file(path: Path, *parts: str | float) -> Path:
    """Speech (a string, spoken by Piper) and pauses (a number of seconds), in order, as a WAV file."""
    import soundfile

    pcm = [piper(p) if isinstance(p, str) else np.zeros(int(16000 * p), np.float32) for p in parts]
    soundfile.write(str(path), np.concatenate(pcm), 16000)
    return path


def talk(home: Path, mic: Path, record: Path, url: str, *extra: str, **env: str):  # -> CompletedProcess
    args = ["talk", "--mic", str(mic), "--record", str(record), "--no-window", "--llm", "openai"]
    args += ["--llm-url", url, "--model", "fixture", "--language", "en", *extra]
    return run_cli(args, home=home, env=listen_env(home, **env))


def test_a_spoken_question_is_heard_answered_and_recorded(qwen_server: str, tmp_path: Path) -> None:
    mic = sound_file(tmp_path / "question.wav", 0.5, QUESTION, 3.0)
    record = tmp_path / "rec"
    result = talk(tmp_path / "home", mic, record, qwen_server, DIGIHUMAN_LLM__NUM_PREDICT="40")
    assert_ok(result)

    [turn] = json_lines(record / "turns.jsonl")
    assert turn["status"] == "ok", turn
    assert wer(QUESTION, turn["user_text"]) <= 0.1, turn["user_text"]
    assert turn["user_language"] == "en"
    assert turn["text_spoken"].strip(), turn
    metrics = turn["metrics"]
    assert 0.5 < metrics["user_speech_end_s"] < 3.0  # where the question ended in the file
    assert 0 <= metrics["asr_final_s"] <= metrics["voice_to_voice_s"] == metrics["first_audio_played_s"]
    assert_valid_mp4(record / "001.mp4", size=128, min_audio_s=0.3)
    assert sorted(leftovers(record)) == ["001-user.wav", "001.mp4", "turns.jsonl"]


def test_talking_over_the_reply_cuts_it_and_the_new_question_is_answered(
    qwen_server: str, tmp_path: Path
) -> None:
    # The story takes half a minute to tell; the second question comes while it is being told.
    mic = sound_file(tmp_path / "barge.wav", 0.5, STORY, 9.0, QUESTION, 6.0)
    record = tmp_path / "rec"
    result = talk(tmp_path / "home", mic, record, qwen_server, DIGIHUMAN_LLM__NUM_PREDICT="160")
    assert_ok(result)

    turns = json_lines(record / "turns.jsonl")
    assert len(turns) == 2, describe(result)
    first, second = turns
    assert first["status"] == "cut", first
    assert wer(STORY, first["user_text"]) <= 0.2, first["user_text"]
    assert 0 < first["heard_s"] < first["audio_s"] or first["audio_s"] == 0, first
    assert second["status"] == "ok", second
    assert wer(QUESTION, second["user_text"]) <= 0.1, second["user_text"]
    assert second["text_spoken"].strip()


def test_a_silent_file_makes_no_turn(tmp_path: Path) -> None:
    import soundfile

    mic = tmp_path / "silence.wav"
    soundfile.write(str(mic), np.zeros(16000 * 2, np.float32), 16000)
    record = tmp_path / "rec"
    # No LLM is reachable: a silent microphone never asks it.
    result = talk(tmp_path / "home", mic, record, "http://127.0.0.1:9/v1")
    assert_ok(result)
    assert not (record / "turns.jsonl").exists() or json_lines(record / "turns.jsonl") == []


@pytest.mark.parametrize("content", [b"", b"not a sound file at all"], ids=["empty", "garbage"])
def test_an_unreadable_sound_file_is_one_line_and_nothing_is_made(content: bytes, tmp_path: Path) -> None:
    mic = tmp_path / "broken.wav"
    mic.write_bytes(content)
    record = tmp_path / "rec"
    result = talk(tmp_path / "home", mic, record, "http://127.0.0.1:9/v1")
    assert result.returncode == 2, describe(result)
    assert_one_line_error(result, str(mic))
    assert not record.exists()


def test_no_microphone_names_the_devices_and_suggests_a_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    args = ["talk", "--no-window", "--llm-url", "http://127.0.0.1:9/v1"]
    result = run_cli(args, home=home, env=listen_env(home))
    line = assert_one_line_error(result, "--mic")
    assert "microphone" in line or "input device" in line, line


def test_a_missing_asr_model_offline_is_one_line_naming_the_fix(tmp_path: Path) -> None:
    mic = sound_file(tmp_path / "q.wav", 0.3, QUESTION, 0.5)
    home = tmp_path / "home"
    args = ["talk", "--mic", str(mic), "--no-window", "--llm-url", "http://127.0.0.1:9/v1"]
    env = listen_env(home, DIGIHUMAN_ASR__MODEL="small", HF_HUB_OFFLINE="1")
    result = run_cli(args, home=home, env=env)
    assert result.returncode == 3, describe(result)
    line = final_error_line(result)
    assert "whisper:small" in line and "put the files" in line, line
    assert "no audio output" not in result.stderr  # it failed before the voice and face were set up
