"""Face landmarks for a portrait: 478 points in MediaPipe FaceMesh topology, in pixel coordinates.

MediaPipe FaceMesh (the legacy `solutions` API of mediapipe 0.10.21, which bundles its models) does the
work. An OpenCV haar cascade cross-checks it for a second face, and stands in for it when mediapipe is not
installed: the cascade's face box is filled with a mean-shape template (see `digihuman.face.mean_shape`).

A portrait is refused, with a message that names the fix, when it has no face, more than one face, or a
face too small to animate. The limit is MIN_FACE_HEIGHT: the forehead-to-chin distance (landmarks 10 and
152) must be at least 96 px. Below that the rig crop (about 2.6 face heights) would be upscaled more than
two times to 512 px, and the lips and eyelids would be only a few pixels tall.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from digihuman.errors import CharacterError
from digihuman.face.haar import detect_faces

logger = logging.getLogger(__name__)

NUM_LANDMARKS = 478
MIN_FACE_HEIGHT = 96

# Index groups of the FaceMesh topology. Contours run from the subject's right to left (image left to
# right for a frontal photo); `RIGHT_*` is the subject's right, which appears on the image's left.
FOREHEAD_TOP = 10
NOSE_TIP = 1
CHIN = 152
LIPS_OUTER_UPPER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LIPS_OUTER_LOWER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
LIPS_INNER_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LIPS_INNER_LOWER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
LIP_INNER_TOP_CENTRE = 13
LIP_INNER_BOTTOM_CENTRE = 14
RIGHT_EYE_UPPER = (33, 246, 161, 160, 159, 158, 157, 173, 133)
RIGHT_EYE_LOWER = (33, 7, 163, 144, 145, 153, 154, 155, 133)
LEFT_EYE_UPPER = (362, 398, 384, 385, 386, 387, 388, 466, 263)
LEFT_EYE_LOWER = (362, 382, 381, 380, 374, 373, 390, 249, 263)
RIGHT_IRIS = (468, 469, 470, 471, 472)
LEFT_IRIS = (473, 474, 475, 476, 477)
RIGHT_BROW = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46)
LEFT_BROW = (300, 293, 334, 296, 336, 285, 295, 282, 283, 276)
FACE_OVAL = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)  # fmt: skip
JAW = (234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361, 323, 454)

_HAAR_MAX_SIDE = 800
# A second haar box counts as a face only when it is at least this large relative to the main one:
# small background faces (a photo on a wall) do not disturb the animation.
_SECOND_FACE_MIN_RATIO = 0.5
_mesh_lock = threading.Lock()  # one FaceMesh, shared: `process` is not thread-safe
_create_lock = threading.Lock()
_stderr_lock = threading.RLock()
# A face mediapipe finds at once: its first detection prints the set-up messages (see _create_face_mesh).
_WARM_UP_PORTRAIT = Path(__file__).resolve().parents[1] / "characters" / "ada" / "portrait.png"


def face_height(landmarks: np.ndarray) -> float:
    """Forehead-top to chin distance in pixels: the scale every other measure is relative to."""
    return float(np.linalg.norm(landmarks[FOREHEAD_TOP] - landmarks[CHIN]))


def detect_landmarks(image: np.ndarray) -> np.ndarray:
    """The 478 landmarks of the one face in `image` (RGB uint8) as float32 (478, 2) pixel coordinates."""
    image = _check_image(image)
    boxes = haar_faces(image)
    mesh = _face_mesh()
    if mesh is None:
        logger.warning(
            "mediapipe is not installed: fitting an approximate face template (install digihuman[landmarks])"
        )
        if not boxes:
            raise CharacterError(_NO_FACE)
        if _refuse_second(boxes):
            raise CharacterError(_MANY_FACES)
        landmarks = fit_mean_shape(boxes[0])
    else:
        faces = _mesh_faces(mesh, image)
        if len(faces) > 1 or (boxes and _second_face_confirmed(mesh, image, boxes, faces)):
            raise CharacterError(_MANY_FACES)
        if not faces and boxes:
            # MediaPipe's detector looks at a 128 px thumbnail of the whole photo; a face that fills
            # little of a wide photo is found again on a crop around the cascade's box.
            faces = _mesh_faces_in_box(mesh, image, boxes[0])
        if not faces:
            raise CharacterError(_NO_FACE)
        landmarks = faces[0]
    height = face_height(landmarks)
    if height < MIN_FACE_HEIGHT:
        raise CharacterError(
            f"the face is only {height:.0f} px tall (forehead to chin); animating needs at least "
            f"{MIN_FACE_HEIGHT} px: use a closer or higher-resolution photo"
        )
    return landmarks


_NO_FACE = "no face found in the portrait; use a well-lit, front-facing photo of one person"
_MANY_FACES = "the portrait shows more than one face; crop it to one person"


def haar_faces(image: np.ndarray) -> list[tuple[float, float, float, float]]:
    """Frontal face boxes (x, y, w, h) in pixels, largest first."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    scale = min(1.0, _HAAR_MAX_SIDE / max(gray.shape))
    if scale < 1.0:
        gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    gray = cv2.equalizeHist(gray)
    min_side = max(24, min(gray.shape) // 12)
    found = detect_faces(gray, min_side=min_side, min_neighbors=6)
    boxes = [(x / scale, y / scale, w / scale, h / scale) for x, y, w, h in found]
    return sorted(boxes, key=lambda b: b[2] * b[3], reverse=True)


def fit_mean_shape(box: tuple[float, float, float, float]) -> np.ndarray:
    """The mean face template placed in a haar face box (the fallback without mediapipe)."""
    x, y, w, h = box
    template = _mean_shape()
    return (template * np.array([w, h], np.float32) + np.array([x, y], np.float32)).astype(np.float32)


@functools.cache
def _mean_shape() -> np.ndarray:
    from digihuman.face.mean_shape import load_mean_shape

    return load_mean_shape()


def _check_image(image: object) -> np.ndarray:
    # `object`: callers outside the type checker may pass anything; this is the runtime check.
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise TypeError("detect_landmarks expects an RGB uint8 array of shape (H, W, 3)")
    return np.ascontiguousarray(image)


def _refuse_second(boxes: list[tuple[float, float, float, float]]) -> bool:
    return any(_is_other_face(boxes[0], other) for other in boxes[1:])


def _is_other_face(main: tuple[float, ...], other: tuple[float, ...]) -> bool:
    """A box of comparable size that does not overlap the main face."""
    if other[2] < _SECOND_FACE_MIN_RATIO * main[2]:
        return False
    mx, my, mw, mh = main
    ox, oy, ow, oh = other
    centre_x, centre_y = ox + ow / 2, oy + oh / 2
    return not (mx <= centre_x <= mx + mw and my <= centre_y <= my + mh)


def _second_face_confirmed(
    mesh: Any, image: np.ndarray, boxes: list[tuple[float, float, float, float]], faces: list[np.ndarray]
) -> bool:
    """Does a cascade box away from the main face hold a face mediapipe agrees with?"""
    main = boxes[0]
    if faces:
        # The main face is the one mediapipe found, not necessarily the cascade's largest box.
        lo, hi = faces[0].min(axis=0), faces[0].max(axis=0)
        main = (float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1]))
    candidates = [b for b in boxes if _is_other_face(main, b)]
    return any(_mesh_faces_in_box(mesh, image, box) for box in candidates[:3])


def _mesh_faces_in_box(
    mesh: Any, image: np.ndarray, box: tuple[float, float, float, float]
) -> list[np.ndarray]:
    x, y, w, h = box
    side = 2.2 * max(w, h)
    x0 = int(max(0, x + w / 2 - side / 2))
    y0 = int(max(0, y + h / 2 - side / 2))
    x1 = int(min(image.shape[1], x + w / 2 + side / 2))
    y1 = int(min(image.shape[0], y + h / 2 + side / 2))
    crop = np.ascontiguousarray(image[y0:y1, x0:x1])
    return [face + np.array([x0, y0], np.float32) for face in _mesh_faces(mesh, crop)]


def _mesh_faces(mesh: Any, image: np.ndarray) -> list[np.ndarray]:
    height, width = image.shape[:2]
    # No stderr swap here: the mesh logged its one-time set-up during the warm-up in _face_mesh.
    with _mesh_lock:
        result = mesh.process(image)
    found = result.multi_face_landmarks or []
    return [
        np.array([(p.x * width, p.y * height) for p in face.landmark], dtype=np.float32)
        for face in found
        if len(face.landmark) == NUM_LANDMARKS
    ]


def _face_mesh() -> Any | None:
    """The shared static-image FaceMesh (two faces, iris refinement), or None without mediapipe."""
    with _create_lock:  # functools.cache alone could build two meshes in two threads
        return _create_face_mesh()


@functools.cache
def _create_face_mesh() -> Any | None:
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # absl and TFLite ignore those for their set-up messages ("Created TensorFlow Lite XNNPACK delegate",
    # "Feedback manager ..."), printed by the import and the first face found. Both happen here, once per
    # process, so detection itself never touches the process-wide stderr.
    with quiet_native_stderr():
        try:
            import mediapipe as mp
        except ImportError:
            return None
        mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=2, refine_landmarks=True, min_detection_confidence=0.5
        )
        warm_up = cv2.imread(str(_WARM_UP_PORTRAIT))
        if warm_up is not None:
            mesh.process(cv2.cvtColor(warm_up, cv2.COLOR_BGR2RGB))
    return mesh


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silence what native code (absl, TFLite) writes straight to file descriptor 2.

    This swaps the process-wide descriptor, so it is kept to one-time set-up. The lock keeps two threads
    from interleaving their swaps (which could leave fd 2 pointing at /dev/null for good); it is
    re-entrant because a nested swap restores correctly.
    """
    with _stderr_lock:
        try:
            saved = os.dup(2)
        except OSError:
            yield
            return
        try:
            with open(os.devnull, "wb") as devnull:
                os.dup2(devnull.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
