"""The scene watcher: turns sampled camera frames into the few events worth reacting to.

Two cheap detectors, both debounced so a static scene (with sensor noise, lighting flicker or a small moving
object) produces no events at all:

- change: the frame is shrunk to 64x48 grayscale and blurred, its global brightness is matched to a reference
  frame (so flicker and auto-exposure cancel out), and the score is the fraction of cells that differ by more
  than `pixel_threshold` grey levels. The score must exceed `change_threshold` for `change_samples`
  consecutive samples; then the reference becomes the new scene. While quiet, the reference slowly follows
  the scene so gradual daylight drift never accumulates into an event.
- presence: OpenCV's haar frontal-face cascade on a small grayscale frame; someone arrives after
  `arrive_samples` samples with a face and leaves after `leave_samples` without one. The detector (the
  only costly step, 10-20 ms) reruns only when the picture changed since it last ran, so a static scene costs
  well under a millisecond per sample.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Literal

import numpy as np

from digihuman.face.haar import detect_faces
from digihuman.vision.camera import CameraFrame

logger = logging.getLogger(__name__)

SceneEventKind = Literal["scene_changed", "someone_arrived", "someone_left"]
GRID_SIZE = (64, 48)  # (width, height) of the change-detection grid


@dataclass(frozen=True, slots=True)
class SceneEvent:
    """`score`: the changed fraction of the view (scene_changed) or the number of faces seen (presence)."""

    kind: SceneEventKind
    t_s: float
    score: float
    frame: CameraFrame


class SceneWatcher:
    """Feed it every sampled frame with `observe` (a few ms: call it off the event loop) or `watch`."""

    def __init__(
        self,
        *,
        change_threshold: float = 0.15,
        pixel_threshold: float = 20.0,
        change_samples: int = 3,
        detect_faces: bool = True,
        arrive_samples: int = 2,
        leave_samples: int = 4,
        face_width: int = 448,
        min_face_fraction: float = 0.12,
        drift_rate: float = 0.05,
        redetect_every: int = 30,
    ) -> None:
        self.change_threshold = change_threshold
        self.pixel_threshold = pixel_threshold
        self.change_samples = change_samples
        self.detect_faces = detect_faces
        self.arrive_samples = arrive_samples
        self.leave_samples = leave_samples
        self.face_width = face_width
        self.min_face_fraction = min_face_fraction
        self.drift_rate = drift_rate
        self.redetect_every = redetect_every
        self.reset()

    def reset(self) -> None:
        """Forget the scene: the next frame becomes the reference and nobody is present."""
        self.present = False
        self.last_score = 0.0
        self._reference: np.ndarray | None = None
        self._above = 0  # consecutive samples above the change threshold
        self._face_hits = 0  # consecutive samples with a face while nobody is present
        self._face_misses = 0  # consecutive samples without a face while someone is present
        self._detected_on: np.ndarray | None = None  # the grid the face detector last ran on
        self._detected_faces = 0
        self._reused = 0

    def observe(self, frame: CameraFrame) -> list[SceneEvent]:
        """Update with one sample; return the events it completes (usually none)."""
        grid = small_gray(frame.rgb_small)
        if self._reference is None:
            self._reference = grid
        events: list[SceneEvent] = []
        if self.detect_faces:
            events += self._update_presence(frame, grid)
        if events:
            # The arrival or departure explains the change: do not report it twice.
            self._reference, self._above = grid, 0
            return events

        score = changed_fraction(grid, self._reference, self.pixel_threshold)
        self.last_score = score
        if score > self.change_threshold:
            self._above += 1
        else:
            self._above = 0
            if score < self.change_threshold / 2:
                self._reference = self._reference + self.drift_rate * (grid - self._reference)
        # Wait while a presence change is still being confirmed: it may explain this change.
        if self._above >= self.change_samples and not self._presence_pending():
            events.append(SceneEvent("scene_changed", frame.t_s, score, frame))
            self._reference, self._above = grid, 0
        return events

    async def watch(self, frames: AsyncIterable[CameraFrame]) -> AsyncIterator[SceneEvent]:
        """Events from a stream of frames (e.g. a Camera); the analysis runs in a worker thread."""
        async for frame in frames:
            for event in await asyncio.to_thread(self.observe, frame):
                logger.info("scene: %s at %.1f s (score %.2f)", event.kind, event.t_s, event.score)
                yield event

    def _presence_pending(self) -> bool:
        return self._face_misses > 0 if self.present else self._face_hits > 0

    def _update_presence(self, frame: CameraFrame, grid: np.ndarray) -> list[SceneEvent]:
        faces = self._count_faces(frame.rgb_small, grid)
        if not self.present:
            self._face_hits = self._face_hits + 1 if faces else 0
            if self._face_hits >= self.arrive_samples:
                self.present, self._face_hits, self._face_misses = True, 0, 0
                return [SceneEvent("someone_arrived", frame.t_s, float(faces), frame)]
        else:
            self._face_misses = 0 if faces else self._face_misses + 1
            if self._face_misses >= self.leave_samples:
                self.present, self._face_hits, self._face_misses = False, 0, 0
                return [SceneEvent("someone_left", frame.t_s, 0.0, frame)]
        return []

    def _count_faces(self, rgb: np.ndarray, grid: np.ndarray) -> int:
        # Faces cannot appear or vanish while the picture stays the same: reuse the last answer. But only
        # while it agrees with the current state, so that a single miss or false hit is never repeated
        # into a departure or arrival: the debounce needs independent detections.
        if (
            self._detected_on is not None
            and (self._detected_faces > 0) == self.present
            and self._reused < self.redetect_every
            and changed_fraction(grid, self._detected_on, self.pixel_threshold) < 0.01
        ):
            self._reused += 1
            return self._detected_faces
        self._detected_on, self._reused = grid, 0
        self._detected_faces = len(self._detect(rgb))
        return self._detected_faces

    def _detect(self, rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
        import cv2

        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        height, width = gray.shape
        if width > self.face_width:
            gray = cv2.resize(
                gray, (self.face_width, round(height * self.face_width / width)), interpolation=cv2.INTER_AREA
            )
        gray = cv2.equalizeHist(gray)
        smallest = max(20, round(gray.shape[1] * self.min_face_fraction))
        return detect_faces(gray, min_side=smallest, min_neighbors=4)


def small_gray(rgb: np.ndarray) -> np.ndarray:
    """The 64x48 blurred grayscale grid the change detector compares (float32)."""
    import cv2

    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    grid = cv2.resize(gray, GRID_SIZE, interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(grid, (5, 5), 0).astype(np.float32)


def changed_fraction(grid: np.ndarray, reference: np.ndarray, pixel_threshold: float) -> float:
    """The fraction of cells differing by more than `pixel_threshold` after matching global brightness."""
    # A clamped gain cancels flicker and auto-exposure but still lets lights-off count as a change.
    gain = float(np.clip((reference.mean() + 1.0) / (grid.mean() + 1.0), 0.5, 2.0))
    differs = np.abs(grid * gain - reference) > pixel_threshold
    return float(np.count_nonzero(differs)) / differs.size
