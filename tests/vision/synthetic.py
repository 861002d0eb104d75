"""Synthetic camera material for the vision tests: rooms, faces, noise, test videos and a virtual clock."""

from __future__ import annotations

import asyncio
from pathlib import Path

import av
import cv2
import numpy as np

from digihuman.vision.camera import CameraFrame

WIDTH, HEIGHT = 448, 336


class VirtualClock:
    """A clock that only moves when someone sleeps: an hour of sampling runs in seconds."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


def room(layout: int = 0, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """A textured indoor-like scene; different layouts are different scenes."""
    rng = np.random.default_rng(layout)
    y, x = np.mgrid[0:height, 0:width]
    image = np.empty((height, width, 3), np.uint8)
    image[..., 0] = 60 + 80 * x // width
    image[..., 1] = 70 + 60 * y // height
    image[..., 2] = 110
    for _ in range(8):
        x0, y0 = int(rng.integers(0, width - 60)), int(rng.integers(0, height - 60))
        w, h = int(rng.integers(40, width // 2)), int(rng.integers(40, height // 2))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        cv2.rectangle(image, (x0, y0), (x0 + w, y0 + h), colour, -1)
    return image


def with_face(background: np.ndarray) -> np.ndarray:
    """The astronaut portrait (a real face) standing in the middle of the scene, filling its height."""
    from skimage import data

    height, width = background.shape[:2]
    face = cv2.resize(data.astronaut(), (height, height), interpolation=cv2.INTER_AREA)
    image = background.copy()
    left = (width - height) // 2
    image[:, left : left + height] = face
    return image


_NOISE_BANK: dict[tuple[int, ...], np.ndarray] = {}


def noisy(image: np.ndarray, rng: np.random.Generator, sigma: float = 6.0) -> np.ndarray:
    """Sensor noise: gaussian noise on every pixel, a different field each frame (drawn from a bank of 16
    unit fields, because generating fresh noise for every frame is the slowest part of these tests)."""
    bank = _NOISE_BANK.get(image.shape)
    if bank is None:
        bank = np.random.default_rng(0).standard_normal((16, *image.shape), dtype=np.float32)
        _NOISE_BANK[image.shape] = bank
    noise = bank[int(rng.integers(len(bank)))] * sigma
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def frame(image: np.ndarray, t_s: float) -> CameraFrame:
    return CameraFrame(t_s=t_s, rgb_small=image, jpeg=b"")


def level_video(
    path: Path, levels: list[int], fps: int, size: tuple[int, int] = (64, 48), gop: int = 10
) -> Path:
    """A video whose frame i is a flat grey of `levels[i]`: the shown frame can be read back from its mean."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        # No B-frames (every frame a reference, so none is skipped) and frequent keyframes (to test seeking).
        stream.options = {"preset": "ultrafast", "g": str(gop), "bf": "0", "crf": "10"}
        for level in levels:
            image = np.full((size[1], size[0], 3), level, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def level_of(frame: CameraFrame) -> int:
    return round(float(frame.rgb_small.mean()))
