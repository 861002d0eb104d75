"""`digihuman run`, the proactive companion, end to end: a generated camera clip or image folder, the
stand-in Ollama server, typed lines on stdin, `--duration` and Ctrl-C."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest

from tests.e2e.support import (
    assert_ok,
    assert_valid_mp4,
    cli_env,
    describe,
    json_lines,
    leftovers,
    make_camera_clip,
    make_camera_folder,
    probe_mp4,
    run_cli,
    start_cli,
    words,
)
from tests.llm.ollama_server import OllamaTestServer

pytestmark = pytest.mark.slow

CLIP_S = 14.0
CHANGE_AT_S = 5.0


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """14 s at 15 fps, 320x240: a static noisy wall, then at 5 s the astronaut's face fills the view."""
    return make_camera_clip(
        tmp_path_factory.mktemp("camera") / "clip.mp4", seconds=CLIP_S, change_at_s=CHANGE_AT_S
    )


def run_env(home: Path) -> dict[str, str]:
    # Small frames keep rendering cheap; a short gap lets the scene change speak soon after the greeting.
    return cli_env(home, DIGIHUMAN_FACE__SIZE="128", DIGIHUMAN_DIRECTOR__MIN_GAP_S="2")


def run_args(camera: Path, record: Path, url: str, *extra: str) -> list[str]:
    return ["run", "--camera", str(camera), "--record", str(record), "--no-window", "--llm-url", url, *extra]


def assert_recordings_complete(record: Path, turns: list[dict]) -> None:
    """Every turn that spoke has a playable MP4, and no temporary file is left behind."""
    assert not [name for name in leftovers(record) if name.startswith(".")], leftovers(record)
    for turn in turns:
        if turn["status"] in ("ok", "cut") and turn["audio_s"] > 0:
            assert_valid_mp4(record / f"{turn['turn']:03d}.mp4", size=128)
    for mp4 in record.glob("*.mp4"):
        probe_mp4(mp4)  # opens and decodes: the file was closed properly


def test_run_watches_a_clip_and_speaks_when_the_scene_changes(
    clip: Path, ollama: OllamaTestServer, tmp_path: Path
) -> None:
    record = tmp_path / "rec"
    started = time.monotonic()
    home = tmp_path / "home"
    result = run_cli(run_args(clip, record, ollama.url, "--duration", "20"), home=home, env=run_env(home))
    assert_ok(result)
    assert time.monotonic() - started < 60, "run did not stop at the end of the clip (or of --duration)"

    turns = json_lines(record / "turns.jsonl")
    assert all(turn["trigger"] == "proactive" for turn in turns), turns
    spoken = [turn for turn in turns if turn["status"] == "ok"]
    # The greeting, then a remark on the change: with static rounds 10 minutes apart, only the scene
    # watcher can have started the second one, and it sent the camera frames along.
    assert len(spoken) >= 2, describe(result)
    assert any(turn["usage"]["images"] > 0 for turn in spoken[1:]), turns
    assert re.search(r"^model cost: [1-9]\d* calls", result.stderr, re.MULTILINE), describe(result)
    assert_recordings_complete(record, turns)


def test_run_with_an_image_folder_answers_typed_lines_and_stops_after_duration(
    ollama: OllamaTestServer, tmp_path: Path
) -> None:
    # 40 images at 2 samples a second: 20 s of camera, so only --duration can end the run early.
    folder = make_camera_folder(tmp_path / "frames", count=40, change_at=30)
    record = tmp_path / "rec"
    home = tmp_path / "home"
    started = time.monotonic()
    result = run_cli(
        run_args(folder, record, ollama.url, "--duration", "8"),
        home=home,
        env=run_env(home),
        stdin="What is your name?\n",
    )
    elapsed = time.monotonic() - started
    assert_ok(result)
    assert elapsed < 19, f"--duration 8 was not honoured: the run took {elapsed:.1f} s"

    turns = json_lines(record / "turns.jsonl")
    user_turns = [turn for turn in turns if turn["trigger"] == "user"]
    assert len(user_turns) == 1, turns
    assert user_turns[0]["status"] == "ok"
    assert "what is your name" in " ".join(words(user_turns[0]["text_spoken"]))
    assert "What is your name" in result.stdout  # what was said is shown
    assert "model cost:" in result.stderr
    assert_recordings_complete(record, turns)


def test_ctrl_c_stops_run_cleanly_mid_reply(clip: Path, ollama: OllamaTestServer, tmp_path: Path) -> None:
    record = tmp_path / "rec"
    seen = len(ollama.bodies())
    # The "long" model answers with a full token budget at once: about a minute of speech, which takes
    # seconds to voice, animate and record, so Ctrl-C lands after the reply came but mid-turn.
    args = run_args(clip, record, ollama.url, "--model", "long")
    process = start_cli(args, env=run_env(tmp_path / "home"), cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while not [body for body in ollama.bodies()[seen:] if body.get("messages")]:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "run never asked the model for a greeting"
            time.sleep(0.05)
        time.sleep(1.0)
        interrupted = time.monotonic()
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    report = f"exit {process.returncode}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
    assert process.returncode == 0, report
    assert time.monotonic() - interrupted < 15, report
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, report
    [turn] = json_lines(record / "turns.jsonl")
    assert turn["trigger"] == "proactive" and turn["status"] == "cut", turn
    # The interrupted round is counted in the cost line, with the tokens it used.
    assert turn["usage"]["completion_tokens"] > 0
    cost = re.search(r"^model cost: (\d+) calls, \d+ prompt \+ (\d+) completion", stderr, re.MULTILINE)
    assert cost and cost.group(1) == "1" and int(cost.group(2)) == turn["usage"]["completion_tokens"], report
    # What was spoken before the cut is saved, as a properly closed file.
    assert turn["audio_s"] > 0
    assert_recordings_complete(record, [turn])
