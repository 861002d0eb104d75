from __future__ import annotations

import cv2
import numpy as np
import pytest

from digihuman.errors import CharacterError
from digihuman.face import landmarks as lmk
from digihuman.face.landmarks import MIN_FACE_HEIGHT, NUM_LANDMARKS, detect_landmarks, face_height


def test_astronaut_landmarks_land_on_her_face(astronaut: np.ndarray, astronaut_landmarks: np.ndarray) -> None:
    points = astronaut_landmarks
    assert points.shape == (NUM_LANDMARKS, 2) and points.dtype == np.float32
    # Her face spans roughly x 175..275, y 65..180 in the 512 px photo.
    assert points[:, 0].min() > 170 and points[:, 0].max() < 285
    assert points[:, 1].min() > 60 and points[:, 1].max() < 190
    assert 96 <= face_height(points) < 130
    # Index groups: eyes above the nose, nose above the mouth, mouth above the chin; right eye on the left.
    right_eye = points[list(lmk.RIGHT_EYE_UPPER)].mean(axis=0)
    left_eye = points[list(lmk.LEFT_EYE_UPPER)].mean(axis=0)
    mouth = points[list(lmk.LIPS_OUTER_LOWER)].mean(axis=0)
    assert right_eye[0] < left_eye[0]
    assert max(right_eye[1], left_eye[1]) < points[lmk.NOSE_TIP][1] < mouth[1] < points[lmk.CHIN][1]
    upper = points[list(lmk.LIPS_INNER_UPPER)][:, 1].mean()
    lower = points[list(lmk.LIPS_INNER_LOWER)][:, 1].mean()
    assert upper < lower  # she smiles with parted lips


def test_no_face_is_refused(astronaut: np.ndarray) -> None:
    pytest.importorskip("mediapipe")
    import skimage.data

    for image in (np.full((400, 400, 3), 128, np.uint8), skimage.data.coffee(), skimage.data.rocket()):
        with pytest.raises(CharacterError, match="no face found"):
            detect_landmarks(np.ascontiguousarray(image))


def test_two_faces_are_refused(astronaut: np.ndarray) -> None:
    pytest.importorskip("mediapipe")
    side_by_side = np.concatenate([astronaut, astronaut[:, ::-1]], axis=1)
    with pytest.raises(CharacterError, match="more than one face"):
        detect_landmarks(side_by_side)


def test_tiny_face_is_refused(astronaut: np.ndarray) -> None:
    pytest.importorskip("mediapipe")
    small = cv2.resize(astronaut, (300, 300), interpolation=cv2.INTER_AREA)  # face about 62 px tall
    with pytest.raises(CharacterError, match=f"at least {MIN_FACE_HEIGHT} px"):
        detect_landmarks(small)


def test_fallback_without_mediapipe_fits_the_mean_shape(
    astronaut: np.ndarray, astronaut_landmarks: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lmk, "_face_mesh", lambda: None)
    fitted = detect_landmarks(astronaut)
    assert fitted.shape == (NUM_LANDMARKS, 2)
    error = np.linalg.norm(fitted - astronaut_landmarks, axis=1).mean()
    assert error < 0.05 * face_height(astronaut_landmarks)
    with pytest.raises(CharacterError, match="no face found"):
        detect_landmarks(np.full((300, 300, 3), 90, np.uint8))
    with pytest.raises(CharacterError, match="more than one face"):
        detect_landmarks(np.concatenate([astronaut, astronaut], axis=1))


def test_mean_shape_is_symmetric_and_normalized() -> None:
    from digihuman.face.mean_shape import load_mean_shape

    shape = load_mean_shape()
    assert shape.shape == (NUM_LANDMARKS, 2)
    # In units of the haar box: the face fills it, the chin hangs a little below it.
    assert shape[:, 0].min() > 0.0 and shape[:, 0].max() < 1.0
    eyes = shape[list(lmk.RIGHT_EYE_UPPER)].mean(axis=0), shape[list(lmk.LEFT_EYE_UPPER)].mean(axis=0)
    assert abs((eyes[0][0] + eyes[1][0]) / 2 - shape[lmk.NOSE_TIP][0]) < 0.03
    assert abs(eyes[0][1] - eyes[1][1]) < 0.03


def test_bad_input_type() -> None:
    with pytest.raises(TypeError):
        detect_landmarks(np.zeros((10, 10), np.uint8))


def test_detection_leaves_the_process_stderr_alone(
    astronaut: np.ndarray, astronaut_landmarks: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Other threads (other sessions) log while a portrait is prepared: after the one-time set-up,
    detection must not swap file descriptor 2."""
    import os

    def no_swap(*args: object) -> None:
        raise AssertionError("detection swapped a file descriptor")

    with monkeypatch.context() as patched:  # undone before pytest's own capture swaps fds back
        patched.setattr(os, "dup2", no_swap)
        assert detect_landmarks(astronaut).shape == (NUM_LANDMARKS, 2)


def test_concurrent_quiet_blocks_restore_stderr() -> None:
    """Swaps from several threads never interleave, so fd 2 ends up where it started."""
    import os
    import threading

    before = os.fstat(2)
    barrier = threading.Barrier(4)

    def quiet() -> None:
        barrier.wait()
        for _ in range(20):
            with lmk.quiet_native_stderr():
                pass

    threads = [threading.Thread(target=quiet) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
