"""Independent lip-sync measurement: MediaPipe FaceMesh run on rendered frames, compared with the audio."""

from __future__ import annotations

import math

import numpy as np

from digihuman.face.landmarks import CHIN, FOREHEAD_TOP, LIP_INNER_BOTTOM_CENTRE, LIP_INNER_TOP_CENTRE


class MouthMeter:
    """Mouth opening (inner-lip gap / face height) of frames, measured by MediaPipe in video mode."""

    def __init__(self) -> None:
        import mediapipe as mp

        from digihuman.face.landmarks import quiet_native_stderr

        with quiet_native_stderr():
            self._mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=False, max_num_faces=1, refine_landmarks=False, min_detection_confidence=0.5
            )

    def opening(self, frame: np.ndarray) -> float:
        from digihuman.face.landmarks import quiet_native_stderr

        with quiet_native_stderr():
            result = self._mesh.process(frame)
        if not result.multi_face_landmarks:
            return math.nan
        h, w = frame.shape[:2]
        points = result.multi_face_landmarks[0].landmark

        def at(i: int) -> np.ndarray:
            return np.array([points[i].x * w, points[i].y * h])

        gap = np.linalg.norm(at(LIP_INNER_BOTTOM_CENTRE) - at(LIP_INNER_TOP_CENTRE))
        return float(gap / np.linalg.norm(at(CHIN) - at(FOREHEAD_TOP)))

    def close(self) -> None:
        self._mesh.close()


def loudness_envelope(
    pcm: np.ndarray, sample_rate: int, fps: int, frames: int, floor_db: float = 40.0
) -> np.ndarray:
    """Per video frame: RMS level (dB) of the audio heard while the frame shows, 0..1 over `floor_db`."""
    per_frame = sample_rate / fps
    levels = np.empty(frames)
    for i in range(frames):
        window = pcm[int(i * per_frame) : int((i + 1) * per_frame)]
        rms = float(np.sqrt(np.mean(window.astype(np.float64) ** 2))) if len(window) else 0.0
        levels[i] = 20 * math.log10(rms + 1e-9)
    top = levels.max()
    return np.clip((levels - (top - floor_db)) / floor_db, 0.0, 1.0)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    keep = ~(np.isnan(a) | np.isnan(b))
    return float(np.corrcoef(a[keep], b[keep])[0, 1])


def pauses(envelope: np.ndarray, silent_below: float = 0.02) -> np.ndarray:
    """Frames inside a pause: silent themselves, two frames after the sound stops and one before it
    starts again (the mouth eases shut, and opens a frame early for the next sound)."""
    silent = envelope < silent_below
    inside = silent.copy()
    for shift in (1, 2):
        inside[shift:] &= silent[:-shift]
    inside[:-1] &= silent[1:]
    return inside
