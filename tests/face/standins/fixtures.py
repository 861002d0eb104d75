"""Helpers for the subprocess face tests: portraits, speech, and checks on the stand-in tools' processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import cv2
import numpy as np

from digihuman.media import AudioChunk

STANDINS = Path(__file__).resolve().parent
SADTALKER_REPO = STANDINS / "sadtalker_repo"
WAV2LIP_REPO = STANDINS / "wav2lip_repo"
RATE = 16000


def write_portrait(path: Path, *, blank: bool = False) -> Path:
    """The astronaut (a real face), a little wider than tall; or a blank grey card."""
    from skimage import data

    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.full((400, 480, 3), 128, np.uint8) if blank else data.astronaut()[40:440, 0:480]
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def speech(seconds: float, *, silent_until_s: float = 0.0) -> np.ndarray:
    """A loud tone after `silent_until_s` of silence: the stand-ins open the mouth with loudness."""
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.5 * np.sin(2 * np.pi * 220 * t) * (t >= silent_until_s)).astype(np.float32)


async def chunks(pcm: np.ndarray, *, turn_id: int = 7, chunk_s: float = 0.2) -> AsyncIterator[AudioChunk]:
    """The utterance as a TTS streams it: consecutive chunks with their start times."""
    step = int(chunk_s * RATE)
    for start in range(0, len(pcm), step):
        await asyncio.sleep(0)
        yield AudioChunk(
            pcm=pcm[start : start + step], sample_rate=RATE, start_s=start / RATE, turn_id=turn_id
        )


def alive(pid: int) -> bool:
    """Whether a process still runs (a zombie waiting for its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


async def wait_for_file(path: Path, timeout_s: float = 20.0) -> str:
    """The file's content once it exists and is complete (a line ending in a newline)."""
    for _ in range(int(timeout_s / 0.05)):
        if path.is_file() and (text := path.read_text()).endswith("\n"):
            return text
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


async def wait_until_dead(pids: list[int], timeout_s: float = 5.0) -> None:
    for _ in range(int(timeout_s / 0.05)):
        if not any(alive(pid) for pid in pids):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"still running: {[pid for pid in pids if alive(pid)]}")


def changed_pixels(frame: np.ndarray, still: np.ndarray) -> int:
    """Pixels that differ clearly from the still (codec noise stays far below 40 levels)."""
    return int(np.count_nonzero(np.abs(frame.astype(int) - still).max(axis=2) > 40))
