"""Shared fixtures for the face tests: the public-domain astronaut portrait, its landmarks and rig."""

from __future__ import annotations

import numpy as np
import pytest

from digihuman.face.rig import Rig, build_rig


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    data = pytest.importorskip("skimage.data", reason="scikit-image (dev extra) provides the test portrait")
    return data.astronaut()


@pytest.fixture(scope="session")
def astronaut_landmarks(astronaut: np.ndarray) -> np.ndarray:
    pytest.importorskip("mediapipe", reason="mediapipe (landmarks extra) detects the test portrait's face")
    from digihuman.face.landmarks import detect_landmarks

    return detect_landmarks(astronaut)


@pytest.fixture(scope="session")
def rig(astronaut: np.ndarray, astronaut_landmarks: np.ndarray) -> Rig:
    return build_rig(astronaut, astronaut_landmarks, size=512)
