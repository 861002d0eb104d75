"""Helpers for the end-to-end tests: run the real `digihuman` command, inspect what it wrote, make inputs.

Every command runs in a subprocess with its own DIGIHUMAN_HOME and no display, so a test sees exactly what
a user at a headless terminal would see. Module-scoped fixtures cannot rely on the suite's per-test
DIGIHUMAN_HOME (it is set after them), so `cli_env` always sets the home explicitly.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

_SCRIPT = Path(sys.executable).with_name("digihuman")
# The console script when the package is installed (as in .venv), else the module itself.
DIGIHUMAN: list[str] = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "digihuman.cli"]
FRAME_S = 1 / 25  # one frame at the default 25 fps: how far audio and video may end apart
CLI_TIMEOUT_S = 180.0  # generous: CI machines are busy; a hang still fails well inside pytest's timeout


def cli_env(home: Path, **overrides: str) -> dict[str, str]:
    """The test process's environment for a CLI run: own home, no config overrides, no display."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not (key.startswith("DIGIHUMAN_") and key != "DIGIHUMAN_TEST_CACHE")
        and key not in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER")
    }
    env["DIGIHUMAN_HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env


def run_cli(
    args: Sequence[str],
    *,
    home: Path,
    cwd: Path | None = None,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = CLI_TIMEOUT_S,
) -> subprocess.CompletedProcess[str]:
    """Run `digihuman ARGS` to completion and capture its output (stdin is empty unless given)."""
    return subprocess.run(
        [*DIGIHUMAN, *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env if env is not None else cli_env(home),
        timeout=timeout,
        check=False,
    )


def start_cli(args: Sequence[str], *, env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen[str]:
    """Start `digihuman ARGS` in the background, ready to receive Ctrl-C (SIGINT)."""

    def default_sigint() -> None:
        # A process started from a non-interactive shell may inherit SIGINT as ignored; Python then
        # never raises KeyboardInterrupt. A user's terminal always delivers it.
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    return subprocess.Popen(
        [*DIGIHUMAN, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=env,
        preexec_fn=default_sigint,
    )


def describe(result: subprocess.CompletedProcess[str]) -> str:
    """A failure message with what the command printed."""
    out, err = result.stdout[-3000:], result.stderr[-3000:]
    return f"exit {result.returncode}\n--- stdout ---\n{out}\n--- stderr ---\n{err}"


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, describe(result)
    assert "Traceback" not in result.stderr, describe(result)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """A user error: non-zero exit, one stderr line `digihuman: error: ...` that names `fragments`."""
    assert result.returncode != 0, describe(result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, describe(result)
    line = lines[0]
    assert line.startswith("digihuman: error: "), describe(result)
    for fragment in fragments:
        assert fragment in line, describe(result)
    return line


def final_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The closing `digihuman: error:` line of a failed session (warnings may come before it)."""
    assert result.returncode != 0, describe(result)
    assert "Traceback" not in result.stderr, describe(result)
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("digihuman: error: "), describe(result)
    return lines[-1]


def json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# --- MP4 inspection -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mp4Info:
    video_codec: str
    audio_codec: str
    fps: float
    width: int
    height: int
    video_s: float
    audio_s: float
    audio_rms: float


def probe_mp4(path: Path) -> Mp4Info:
    """Open the file with PyAV, decode its audio, and describe both streams (fails on a broken file)."""
    import av

    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0]
        samples = [frame.to_ndarray().reshape(-1) for frame in container.decode(audio)]
        pcm = np.concatenate(samples) if samples else np.zeros(0, np.float32)
        return Mp4Info(
            video_codec=video.codec_context.name,
            audio_codec=audio.codec_context.name,
            fps=float(video.average_rate),
            width=video.codec_context.width,
            height=video.codec_context.height,
            video_s=float(video.duration * video.time_base),
            audio_s=float(audio.duration * audio.time_base),
            audio_rms=float(np.sqrt(np.mean(np.square(pcm, dtype=np.float64)))) if len(pcm) else 0.0,
        )


def assert_valid_mp4(path: Path, *, size: int | None = None, min_audio_s: float = 0.0) -> Mp4Info:
    """H.264 + AAC at 25 fps, audio and video within one frame of each other."""
    assert path.is_file(), f"{path} was not written"
    info = probe_mp4(path)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac"), info
    assert info.fps == 25, info
    if size is not None:
        assert (info.width, info.height) == (size, size), info
    assert abs(info.audio_s - info.video_s) <= FRAME_S + 1e-6, info
    assert info.audio_s >= min_audio_s, info
    return info


def leftovers(folder: Path) -> list[str]:
    """Everything in `folder`, hidden files included (temporary and partial files are hidden)."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- inputs -------------------------------------------------------------------------------------------


def astronaut() -> np.ndarray:
    """A real face photo: scikit-image's public-domain NASA portrait (512x512 RGB)."""
    from skimage import data

    return data.astronaut()


def save_image(image: np.ndarray, path: Path, **options: Any) -> Path:
    from PIL import Image

    Image.fromarray(image).save(path, **options)
    return path


def jpeg_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def noisy_wall(rng: np.random.Generator, height: int = 240, width: int = 320) -> np.ndarray:
    """A plain grey wall with sensor noise: a static scene that must not trigger anything."""
    wall = np.full((height, width, 3), 120, np.int16)
    return np.clip(wall + rng.integers(-6, 7, wall.shape), 0, 255).astype(np.uint8)


def scene_with_face(rng: np.random.Generator) -> np.ndarray:
    """The wall with the astronaut's face filling most of it: a big change."""
    import cv2

    image = noisy_wall(rng)
    image[20:220, 60:260] = cv2.resize(astronaut(), (200, 200), interpolation=cv2.INTER_AREA)
    return image


def make_camera_clip(path: Path, *, seconds: float, change_at_s: float, fps: int = 15) -> Path:
    """An H.264 clip, 320x240: a static noisy wall, then at `change_at_s` a face appears."""
    import av

    rng = np.random.default_rng(0)
    face_scene = scene_with_face(rng)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for index in range(round(seconds * fps)):
            if index / fps < change_at_s:
                image = noisy_wall(rng)
            else:
                image = np.clip(face_scene.astype(np.int16) + rng.integers(-3, 4, face_scene.shape), 0, 255)
            frame = av.VideoFrame.from_ndarray(image.astype(np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def make_camera_folder(folder: Path, *, count: int, change_at: int) -> Path:
    """A folder of PNGs (one per camera sample): the wall, then from image `change_at` on, a face."""
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        image = noisy_wall(rng) if index < change_at else scene_with_face(rng)
        save_image(image, folder / f"{index:03d}.png")
    return folder


def free_port() -> int:
    """A port nothing listens on (bound and released: connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def words(text: str) -> list[str]:
    """Lower-case words without punctuation, for comparing what was said with what was asked."""
    import re

    return re.findall(r"[a-z0-9']+", text.lower())
