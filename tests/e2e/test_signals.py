"""SIGTERM and SIGINT end `say`, `chat` and `run` cleanly: the turn in progress is cut and recorded, no
temporary file is left, a file that was there before is untouched, and the exit code is the documented one
(`say`/`chat`: 130 for SIGINT, 143 for SIGTERM; `run`: 0, since a signal is how the companion is stopped)."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.support import cli_env, json_lines, leftovers, make_camera_folder, probe_mp4, start_cli
from tests.llm.ollama_server import OllamaTestServer

pytestmark = pytest.mark.slow

SIGNALS = [signal.SIGINT, signal.SIGTERM]
LONG_TEXT = " ".join(["The river runs past the old mill where the children play every morning."] * 40)


def env(home: Path) -> dict[str, str]:
    return cli_env(home, DIGIHUMAN_FACE__SIZE="128")


def stop(process: subprocess.Popen[str], signum: int, ready: object) -> tuple[str, str, float]:
    """Wait until `ready()` holds, send `signum`, and return (stdout, stderr, seconds to exit)."""
    try:
        deadline = time.monotonic() + 90
        while not ready():  # type: ignore[operator]
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the command never got going"
            time.sleep(0.05)
        sent = time.monotonic()
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=30)
        return stdout, stderr, time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def report(process: subprocess.Popen[str], stdout: str, stderr: str) -> str:
    return f"exit {process.returncode}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_say_stopped_mid_recording_leaves_the_old_file_and_no_part(signum: int, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    out.write_bytes(b"an earlier good file")
    process = start_cli(["say", LONG_TEXT, "-o", str(out)], env=env(tmp_path / "home"), cwd=tmp_path)

    def recording() -> bool:  # the partial file exists: the voice and face are at work
        return any(name.startswith(".out.mp4") for name in leftovers(tmp_path))

    stdout, stderr, took = stop(process, signum, recording)
    text = report(process, stdout, stderr)
    assert process.returncode == 128 + signum, text
    assert took < 10, text
    assert "Traceback" not in stderr, text
    assert stderr.strip().splitlines()[-1] == f"digihuman: stopped by {signal.Signals(signum).name}", text
    assert out.read_bytes() == b"an earlier good file"
    assert [name for name in leftovers(tmp_path) if name != "home"] == ["out.mp4"], leftovers(tmp_path)


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_chat_stopped_mid_reply_records_the_cut_turn(
    signum: int, ollama: OllamaTestServer, tmp_path: Path
) -> None:
    record = tmp_path / "rec"
    seen = len(ollama.bodies())
    args = ["chat", "--once", "Tell me a story", "--record", str(record), "--no-window"]
    args += ["--llm-url", ollama.url, "--model", "long"]
    process = start_cli(args, env=env(tmp_path / "home"), cwd=tmp_path)

    def replying() -> bool:  # the model answered and the turn's recording is under way
        return bool(ollama.bodies()[seen:]) and any(name.startswith(".001") for name in leftovers(record))

    stdout, stderr, took = stop(process, signum, replying)
    text = report(process, stdout, stderr)
    assert process.returncode == 128 + signum, text
    assert took < 10, text
    assert "Traceback" not in stderr, text
    [turn] = json_lines(record / "turns.jsonl")
    assert turn["status"] == "cut", turn
    assert turn["usage"]["completion_tokens"] > 0  # the reply's cost is counted
    assert re.search(r"^model cost: 1 calls", stderr, re.MULTILINE), text
    assert not [name for name in leftovers(record) if name.startswith(".")], leftovers(record)
    for mp4 in record.glob("*.mp4"):
        probe_mp4(mp4)  # whatever was kept is a properly closed file


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_run_stopped_mid_reply_exits_zero_with_the_turn_recorded(
    signum: int, ollama: OllamaTestServer, tmp_path: Path
) -> None:
    record = tmp_path / "rec"
    camera = make_camera_folder(tmp_path / "camera", count=4, change_at=10)
    seen = len(ollama.bodies())
    args = ["run", "--camera", str(camera), "--record", str(record), "--no-window"]
    args += ["--llm-url", ollama.url, "--model", "long"]
    process = start_cli(args, env=env(tmp_path / "home"), cwd=tmp_path)

    def greeting() -> bool:
        return bool(ollama.bodies()[seen:]) and any(name.startswith(".001") for name in leftovers(record))

    stdout, stderr, took = stop(process, signum, greeting)
    text = report(process, stdout, stderr)
    assert process.returncode == 0, text
    assert took < 10, text
    assert "Traceback" not in stderr, text
    [turn] = json_lines(record / "turns.jsonl")
    assert turn["trigger"] == "proactive" and turn["status"] == "cut", turn
    assert re.search(r"^model cost: 1 calls", stderr, re.MULTILINE), text
    assert not [name for name in leftovers(record) if name.startswith(".")], leftovers(record)
