"""Text-only brains end to end, on real weights (the 0.5B Qwen fixture; skipped with the fetch command when
it is absent): `run` with an image folder as the camera speaks about the scene in words, through a real
llama.cpp server that refuses pictures and through the built-in brain; `chat` answers with the built-in
brain; with no brain configured and no Ollama, `chat` says how to get one."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.support import (
    assert_ok,
    cli_env,
    describe,
    final_error_line,
    json_lines,
    make_camera_folder,
    run_cli,
    start_cli,
)
from tests.real_models import real_model_path, serve_gguf

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def qwen() -> Path:
    pytest.importorskip("llama_cpp", reason="needs: pip install 'digihuman[llamacpp]'")
    return real_model_path("qwen-gguf")


@pytest.fixture(scope="module")
def text_only_server(qwen: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_gguf(qwen, tmp_path_factory.mktemp("llama") / "server.log", n_ctx=2048) as url:
        yield url


def brain_env(home: Path, **extra: str) -> dict[str, str]:
    # Greedy and short: the small model's remark comes quickly and the same way every time.
    return cli_env(
        home,
        DIGIHUMAN_FACE__SIZE="128",
        DIGIHUMAN_DIRECTOR__MIN_GAP_S="2",
        DIGIHUMAN_DIRECTOR__MAX_AGE_S="120",  # a busy test machine may take long: the words matter here
        DIGIHUMAN_LLM__TEMPERATURE="0",
        DIGIHUMAN_LLM__NUM_PREDICT="40",
        DIGIHUMAN_LLM__N_CTX="2048",
        **extra,
    )


def run_until_spoken(tmp_path: Path, *llm: str) -> tuple[list[dict], str]:
    """`run` on a still image folder until its first remark is recorded, then Ctrl-C (a busy machine may
    take long for the first remark; a scene change during it would drop it, so the scene stays still)."""
    folder = make_camera_folder(tmp_path / "frames", count=180, change_at=180)  # 90 s of a still wall
    record, home = tmp_path / "rec", tmp_path / "home"
    args = ["run", "--camera", str(folder), "--record", str(record), "--no-window", *llm]
    process = start_cli(args, env=brain_env(home), cwd=tmp_path)
    try:
        deadline = time.monotonic() + 90
        while not (record / "turns.jsonl").is_file() and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    report = f"exit {process.returncode}\n{stdout[-2000:]}\n{stderr[-3000:]}"
    assert process.returncode == 0, report
    assert (record / "turns.jsonl").is_file(), f"nothing was recorded within 90 s: {report}"
    return json_lines(record / "turns.jsonl"), stderr


def assert_spoke_without_pictures(turns: list[dict], stderr: str) -> None:
    spoken = [t for t in turns if t["status"] == "ok" and t["text_spoken"].strip()]
    assert spoken, f"nothing was said: {turns}\n{stderr[-3000:]}"
    assert all(t["usage"]["images"] == 0 for t in turns), turns
    assert all(t["trigger"] == "proactive" for t in turns), turns


def test_run_with_a_text_only_server_describes_the_scene_in_words(
    text_only_server: str, tmp_path: Path
) -> None:
    turns, stderr = run_until_spoken(tmp_path, "--llm", "openai", "--llm-url", text_only_server)
    assert_spoke_without_pictures(turns, stderr)
    # The server refused the pictures once, in its own words; the companion said so once and carried on.
    warnings = [line for line in stderr.splitlines() if "camera in words" in line]
    assert len(warnings) == 1, stderr[-3000:]
    assert "can only concatenate str" in warnings[0], warnings
    assert "empty reply" not in stderr


def test_run_with_the_built_in_brain_describes_the_scene_in_words(qwen: Path, tmp_path: Path) -> None:
    turns, stderr = run_until_spoken(tmp_path, "--llm", "llamacpp", "--model", str(qwen))
    assert_spoke_without_pictures(turns, stderr)
    assert "refused" not in stderr  # known up front: no request with pictures was tried


def test_chat_with_the_built_in_brain_answers_in_chinese(qwen: Path, tmp_path: Path) -> None:
    home, record = tmp_path / "home", tmp_path / "rec"
    args = ["chat", "-c", "xiaomei", "--once", "你好，请介绍一下你自己。", "--record", str(record)]
    args += ["--no-window", "--llm", "llamacpp", "--model", str(qwen)]
    result = run_cli(args, home=home, env=brain_env(home))
    assert_ok(result)
    [turn] = json_lines(record / "turns.jsonl")
    assert turn["status"] == "ok", turn
    assert sum("\u4e00" <= ch <= "\u9fff" for ch in turn["text_spoken"]) >= 4, describe(result)
    assert turn["usage"]["prompt_tokens"] > 0 and turn["usage"]["completion_tokens"] > 0


def test_chat_with_no_brain_configured_names_the_three_ways(tmp_path: Path) -> None:
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 11434)) == 0:
            pytest.skip("something listens on Ollama's default port here")
    home = tmp_path / "home"
    result = run_cli(["chat", "--once", "hello", "--no-window"], home=home, env=cli_env(home))
    line = final_error_line(result)
    assert result.returncode == 3, describe(result)
    for way in ("no LLM is configured", "ollama serve", "--llm openai", "--llm llamacpp"):
        assert way in line, line
