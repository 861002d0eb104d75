"""The one home of OpenCV's frontal-face haar cascade: portraits (face/landmarks.py) and camera frames
(vision/scene.py) both find faces with it.

A `cv2.CascadeClassifier` keeps scratch buffers inside, so concurrent `detectMultiScale` calls on one
instance are not safe. Each thread gets its own (loading one takes a few ms), which keeps many sessions'
scene watchers, each in worker threads, independent without a lock.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

import numpy as np

from digihuman.errors import BackendError

if TYPE_CHECKING:
    import cv2

CASCADE_FILE = "haarcascade_frontalface_default.xml"
_local = threading.local()


def frontal_face_cascade() -> cv2.CascadeClassifier:
    """This thread's cascade (loaded on first use)."""
    cascade: cv2.CascadeClassifier | None = getattr(_local, "cascade", None)
    if cascade is None:
        import cv2
        import cv2.data

        cascade = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, CASCADE_FILE))
        if cascade.empty():
            raise BackendError(f"OpenCV's {CASCADE_FILE} is missing: reinstall opencv-python-headless")
        _local.cascade = cascade
    return cascade


def detect_faces(gray: np.ndarray, *, min_side: int, min_neighbors: int) -> list[tuple[int, int, int, int]]:
    """Face boxes (x, y, w, h) in `gray`'s pixels, in the cascade's order. `gray`: uint8, equalized."""
    found = frontal_face_cascade().detectMultiScale(
        gray, scaleFactor=1.1, minNeighbors=min_neighbors, minSize=(min_side, min_side)
    )
    return [(int(x), int(y), int(w), int(h)) for x, y, w, h in np.asarray(found).reshape(-1, 4)]
