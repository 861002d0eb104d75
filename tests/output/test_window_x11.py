"""The real window on a real X server (Xvfb): `say --play` shows the talking face.

The screen is captured independently of the program (FFmpeg's x11grab), so this checks what a person would
see: the portrait is on screen, its face moves while it speaks, and the background around it stays still.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from digihuman.character import find_character
from digihuman.config import Settings
from tests.e2e.support import cli_env

pytestmark = pytest.mark.skipif(
    shutil.which("Xvfb") is None, reason="needs Xvfb (scripts/setup.sh installs it)"
)
SIZE = 256
SCREEN = "640x480"


@pytest.fixture
def x_display() -> Iterator[str]:
    read_fd, write_fd = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{SCREEN}x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as announced:
        display = ":" + announced.readline().strip()
    try:
        yield display
    finally:
        server.terminate()
        server.wait(timeout=10)


def capture(display: str) -> np.ndarray:
    """The whole X screen as RGB, grabbed by FFmpeg's x11grab (through PyAV), not by the program."""
    import av

    with av.open(display, format="x11grab", options={"video_size": SCREEN}) as grab:
        frame = next(grab.decode(video=0))
        return frame.to_ndarray(format="rgb24")


def test_say_play_shows_the_talking_face_on_a_real_x_server(x_display: str, tmp_path: Path) -> None:
    from digihuman.performer import load_animator

    settings = Settings()
    settings.face.size = SIZE
    reference = load_animator(find_character("ada"), settings).idle_frame(0.0)
    env = {**cli_env(tmp_path), "DISPLAY": x_display}
    env.pop("SDL_VIDEODRIVER", None)
    text = "Hello there, I'm your digital human. It is really nice to meet you, and I hope you are well."
    proc = subprocess.Popen(
        [sys.executable, "-m", "digihuman.cli", "say", text, "--play", "--size", str(SIZE)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    shots: list[np.ndarray] = []
    try:
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline and len(shots) < 12:
            screen = capture(x_display)
            if screen.any():
                shots.append(screen)
            time.sleep(0.15)
    finally:
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert len(shots) >= 6, f"the window showed too briefly ({len(shots)} captures); stderr: {stderr}"

    # The portrait is on screen: find it by template matching against the animator's idle frame.
    middle = shots[len(shots) // 2]
    scores = cv2.matchTemplate(middle, reference, cv2.TM_CCOEFF_NORMED)
    _, best, _, (x, y) = cv2.minMaxLoc(scores)
    assert best > 0.9, f"the face is not on screen (best match {best:.2f})"
    regions = [shot[y : y + SIZE, x : x + SIZE] for shot in shots]
    # Only captures taken while the window was up (not before it opened or as it closed).
    showing = [r for r in regions if cv2.matchTemplate(r, reference, cv2.TM_CCOEFF_NORMED)[0, 0] > 0.8]
    assert len(showing) >= 5
    windows = np.stack(showing).astype(np.int16)

    # It talks: the lower middle of the face (mouth and jaw) changes between captures...
    mouth = windows[:, SIZE // 2 : SIZE * 3 // 4, SIZE * 3 // 8 : SIZE * 5 // 8]
    assert np.abs(np.diff(mouth, axis=0)).max() > 40
    # ...while the window's top corners (background) stay still.
    corners = np.concatenate([windows[:, :24, :24], windows[:, :24, -24:]], axis=2)
    assert np.abs(np.diff(corners, axis=0)).max() <= 2
