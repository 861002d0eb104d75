"""How fast the portrait animator renders speech: the measure behind `digihuman bench animator`."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from pydantic import ValidationError

from digihuman.media import AudioChunk

if TYPE_CHECKING:
    from digihuman.face.animator import PortraitAnimator

FPS = 25
SAMPLE_RATE = 16000


def speech_like_audio(seconds: float, seed: int = 0) -> np.ndarray:
    """Syllables (voiced, 4-5 per second) with short pauses: drives every mouth path of the renderer."""
    rng = np.random.default_rng(seed)
    pcm = np.zeros(int(seconds * SAMPLE_RATE), np.float32)
    at = 0.1
    while at < seconds - 0.3:
        length = float(rng.uniform(0.12, 0.3))
        n = int(length * SAMPLE_RATE)
        t = np.arange(n) / SAMPLE_RATE
        pitch = float(rng.uniform(150, 230))
        formant = float(rng.uniform(500, 2500))
        envelope = np.sin(np.pi * t / length) ** 0.7
        voiced = np.sin(2 * np.pi * pitch * t) + 0.4 * np.sin(2 * np.pi * formant * t)
        start = int(at * SAMPLE_RATE)
        pcm[start : start + n] += (0.25 * envelope * voiced).astype(np.float32)
        at += length + (float(rng.uniform(0.25, 0.5)) if rng.random() < 0.15 else 0.02)
    return pcm


def run_animator_benchmark(
    size: int = 512, threads: int = 1, frames: int = 300, rig_path: Path | None = None
) -> dict:
    """Render `frames` frames of speech through `PortraitAnimator.animate`; OpenCV limited to one thread.

    Returns fps and ms_per_frame from wall time, and cpu_ms_per_frame from process CPU time (the cost on
    a busy machine, where wall time also counts other programs).
    """
    from digihuman.character import RIG_FILE, shipped_dir
    from digihuman.face.animator import PortraitAnimator
    from digihuman.face.rig import Rig

    _check_options(size, threads, frames)

    previous_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        began = time.perf_counter()
        rig = Rig.load(rig_path or shipped_dir() / "ada" / RIG_FILE, size=size)
        load_ms = 1000 * (time.perf_counter() - began)
        animator = PortraitAnimator(rig, fps=FPS, size=size, threads=threads, seed=0)
        pcm = speech_like_audio(frames / FPS)
        animator.idle_frame(0.0)  # first-use costs (imports, allocations) are not per-frame costs
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        rendered = asyncio.run(_render_all(animator, pcm))
        wall_s, cpu_s = time.perf_counter() - wall_start, time.process_time() - cpu_start
        asyncio.run(animator.aclose())
    finally:
        cv2.setNumThreads(previous_threads)
    return {
        "fps": round(rendered / wall_s, 1),
        "resolution": size,
        "threads": threads,
        "ms_per_frame": round(1000 * wall_s / rendered, 3),
        "cpu_ms_per_frame": round(1000 * cpu_s / rendered, 3),
        "cpu_fps": round(rendered / cpu_s, 1) if cpu_s > 0 else math.inf,
        "frames": rendered,
        "rig_load_ms": round(load_ms, 1),
    }


def _check_options(size: int, threads: int, frames: int) -> None:
    """The same limits as the config (face.size, face.threads), as one-line errors naming the flag."""
    from digihuman.config import FaceSettings
    from digihuman.errors import UserError
    from digihuman.validation import first_problem

    if frames < 1:
        raise UserError(f"--frames {frames}: render at least one frame")
    try:
        FaceSettings(size=size, threads=threads)
    except ValidationError as exc:
        problem = first_problem(exc)
        flag = {"size": "--size", "threads": "--threads"}[problem.parts[0]]
        raise UserError(f"{flag} {problem.input}: {problem.message}") from None


async def _render_all(animator: PortraitAnimator, pcm: np.ndarray) -> int:
    async def chunks() -> AsyncIterator[AudioChunk]:
        step = SAMPLE_RATE // 5
        for start in range(0, len(pcm), step):
            yield AudioChunk(
                pcm=pcm[start : start + step], sample_rate=SAMPLE_RATE, start_s=start / SAMPLE_RATE
            )

    count = 0
    async for _ in animator.animate(chunks()):
        count += 1
    return count
