"""Portrait -> rig, in one place: building a character and loading one both come here.

A rig is read-only once built, so one instance may be shared by every session that shows the character.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np

from digihuman.face.rig import Rig, build_rig

logger = logging.getLogger(__name__)


def rig_from_portrait(portrait: Path, size: int) -> tuple[np.ndarray, Rig]:
    """Load and check the portrait, find the face, and rig it; (the loaded image, the rig)."""
    from digihuman.face.landmarks import detect_landmarks
    from digihuman.face.portrait import load_portrait

    image = load_portrait(portrait)
    return image, build_rig(image, detect_landmarks(image), size=size)


def load_character_rig(portrait: Path, rig_path: Path, *, size: int, save: bool) -> Rig:
    """The cached rig at `rig_path`, or one built from the portrait (and cached when `save`)."""
    if rig_path.is_file():
        try:
            return Rig.load(rig_path, size=size)
        except Exception as exc:  # a stale or corrupt cache: rebuild it from the portrait below
            logger.warning("cached rig %s is unusable (%s); rebuilding it", rig_path, exc)
    logger.info("building the face rig from %s (once)", portrait)
    _, rig = rig_from_portrait(portrait, size)
    if save:
        with contextlib.suppress(OSError):
            rig.save(rig_path)
    return rig
