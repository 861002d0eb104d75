"""How much CPU an idle camera costs: Camera + SceneWatcher on a static 640x480 30 fps video file.

Generates a 60 s static scene with slight sensor noise (PyAV), plays it as the camera with default settings
for about 20 s of wall time, and prints one JSON object: process CPU as a percentage of one core
(time.process_time delta / wall time, all threads), per-sample costs, and whether the 10% target is met.

    .venv/bin/python benchmarks/camera_idle_cpu.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np

from digihuman.config import CameraSettings
from digihuman.vision.camera import Camera
from digihuman.vision.scene import SceneWatcher

TARGET_PERCENT = 10.0


def make_static_video(
    path: Path, *, seconds: int = 60, fps: int = 30, size: tuple[int, int] = (640, 480)
) -> None:
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    scene = np.empty((height, width, 3), np.uint8)
    scene[..., 0], scene[..., 1], scene[..., 2] = 40 + 150 * x // width, 60 + 120 * y // height, 110
    cv2.rectangle(scene, (200, 150), (420, 360), (30, 160, 70), -1)
    cv2.circle(scene, (520, 120), 60, (220, 200, 180), -1)
    # Slight sensor noise, from a bank of fields (fresh noise per frame would dominate the set-up time).
    rng = np.random.default_rng(0)
    noise_bank = [rng.normal(0, 3, scene.shape).astype(np.int16) for _ in range(8)]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast"}
        for _ in range(seconds * fps):
            image = np.clip(scene + noise_bank[int(rng.integers(8))], 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


async def measure(video: Path, seconds: float) -> dict[str, object]:
    settings = CameraSettings()
    watcher = SceneWatcher()
    costs: list[float] = []
    events = 0
    async with Camera(video, settings, loop=True) as camera:
        # Warm up (first decode, cascade load) outside the measured window.
        first = await camera.read()
        assert first is not None
        await asyncio.to_thread(watcher.observe, first)
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        while time.perf_counter() - wall_start < seconds:
            frame = await camera.read()
            if frame is None:
                break

            def timed_observe(frame=frame):
                started = time.perf_counter()
                found = watcher.observe(frame)
                costs.append(time.perf_counter() - started)
                return found

            events += len(await asyncio.to_thread(timed_observe))
        cpu, wall = time.process_time() - cpu_start, time.perf_counter() - wall_start
    cpu_percent = 100.0 * cpu / wall
    return {
        "benchmark": "camera_idle_cpu",
        "video": "640x480 30 fps H.264, static with noise",
        "sample_fps": settings.sample_fps,
        "width": settings.width,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 3),
        "cpu_percent_of_one_core": round(cpu_percent, 2),
        "samples": len(costs),
        "scene_events": events,
        "observe_ms_median": round(1000 * statistics.median(costs), 3) if costs else None,
        "observe_ms_max": round(1000 * max(costs), 3) if costs else None,
        "target_percent": TARGET_PERCENT,
        "ok": cpu_percent <= TARGET_PERCENT and events == 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="wall time to measure")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="digihuman-bench-") as folder:
        video = Path(folder) / "static.mp4"
        make_static_video(video)
        result = asyncio.run(measure(video, args.seconds))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
