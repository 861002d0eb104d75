"""`digihuman chat --once` end to end: the real CLI against the stand-in Ollama server and a real llama.cpp
server, recording the turn to an MP4 and turns.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.support import (
    assert_ok,
    assert_valid_mp4,
    cli_env,
    describe,
    final_error_line,
    free_port,
    json_lines,
    leftovers,
    run_cli,
    words,
)
from tests.llm.ollama_server import OllamaTestServer

pytestmark = pytest.mark.slow

METRICS = (
    "llm_first_token_s",
    "first_sentence_s",
    "tts_first_audio_s",
    "first_frame_s",
    "first_audio_played_s",
    "llm_done_s",
    "total_s",
)
USAGE = ("prompt_tokens", "completion_tokens", "images")


def chat(home: Path, record: Path, url: str, *extra: str, text: str = "Tell me about yourself", **env: str):
    args = ["chat", "--once", text, "--record", str(record), "--no-window", "--llm-url", url, *extra]
    return run_cli(args, home=home, env=cli_env(home, **env))


def test_chat_once_records_the_turn_and_prints_its_metrics(ollama: OllamaTestServer, tmp_path: Path) -> None:
    record = tmp_path / "rec"
    seen = len(ollama.bodies())
    result = chat(tmp_path / "home", record, ollama.url, "--metrics")
    assert_ok(result)

    assert_valid_mp4(record / "001.mp4", size=512, min_audio_s=1.0)
    assert leftovers(record) == ["001.mp4", "turns.jsonl"]
    [turn] = json_lines(record / "turns.jsonl")
    assert turn["turn"] == 1 and turn["trigger"] == "user"
    assert turn["status"] == "ok" and turn["error"] is None
    # The stand-in echoes the user's words: they reached the model and came back as speech.
    assert "tell me about yourself" in " ".join(words(turn["text_spoken"]))
    metrics = turn["metrics"]
    assert set(METRICS) <= set(metrics)
    assert all(isinstance(metrics[key], (int, float)) and metrics[key] >= 0 for key in METRICS), metrics
    assert metrics["llm_first_token_s"] <= metrics["first_sentence_s"] <= metrics["tts_first_audio_s"]
    assert max(metrics[key] for key in METRICS) == metrics["total_s"]
    assert set(USAGE) <= set(turn["usage"])
    assert turn["usage"]["prompt_tokens"] > 0 and turn["usage"]["completion_tokens"] > 0
    assert turn["usage"]["images"] == 0
    # --metrics prints the same line on stdout.
    assert [json.loads(line) for line in result.stdout.strip().splitlines()] == [turn]

    [request] = ollama.bodies()[seen:][-1:]
    assert request["model"] == "qwen3-vl:4b-instruct" and request["messages"][-1]["role"] == "user"


@pytest.mark.parametrize(
    ("case", "fix"),
    [
        pytest.param("missing-model", "ollama pull", id="model-not-pulled"),
        pytest.param("server-down", "ollama serve", id="server-down"),
        pytest.param("thinking-only", "instruct", id="thinking-only-model"),
    ],
)
def test_chat_once_failures_exit_non_zero_with_the_fix(
    case: str, fix: str, ollama: OllamaTestServer, tmp_path: Path
) -> None:
    record = tmp_path / "rec"
    url = f"http://127.0.0.1:{free_port()}" if case == "server-down" else ollama.url
    model = {"missing-model": "no-such-model:7b", "thinking-only": "thinking-only"}.get(case, "ok")
    result = chat(tmp_path / "home", record, url, "--model", model)

    assert result.returncode == 3, describe(result)  # a backend problem
    line = final_error_line(result)
    assert fix in line
    if case == "missing-model":
        assert "`ollama pull no-such-model:7b`" in line
    assert result.stdout == ""  # nothing was said
    [turn] = json_lines(record / "turns.jsonl")
    assert turn["status"] == "failed" and turn["text_spoken"] == "" and fix in turn["error"]
    assert not any(name.startswith(".") for name in leftovers(record))


# --- a real llama.cpp server ---------------------------------------------------------------------------


@pytest.mark.llamacpp
def test_chat_once_against_a_real_llama_cpp_server(llama_server: str, tmp_path: Path) -> None:
    """A tiny random model: its words are real vocabulary, but the reply may still be unspeakable."""
    record = tmp_path / "rec"
    result = chat(
        tmp_path / "home",
        record,
        llama_server,
        "--llm",
        "openai",
        "--model",
        "tiny",
        "--metrics",
        text="Hello",
        DIGIHUMAN_LLM__NUM_PREDICT="24",
        DIGIHUMAN_FACE__SIZE="128",
    )
    [turn] = json_lines(record / "turns.jsonl")
    assert turn["usage"]["completion_tokens"] > 0, describe(result)  # the server did generate
    assert turn["trigger"] == "user"
    if result.returncode == 0:
        assert_ok(result)
        assert turn["status"] == "ok" and words(turn["text_spoken"])
        assert_valid_mp4(record / "001.mp4", size=128, min_audio_s=0.3)
    else:  # gibberish with nothing to say: a clean failure, not a crash
        line = final_error_line(result)
        assert turn["status"] == "failed" and turn["text_spoken"] == ""
        assert turn["error"] in line
