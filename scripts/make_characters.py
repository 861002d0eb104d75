"""Regenerate the shipped characters' portraits and rigs (src/digihuman/characters/{ada,xiaomei}).

Both portraits come from scikit-image's `astronaut` photo (NASA, Eileen Collins, public domain); see
src/digihuman/characters/ASSETS.md. Ada uses the photo as it is. Xiaomei's is mirrored, cropped tighter
and colour-graded warmer and softer, so the two characters look different. Needs the dev and landmarks
extras (scikit-image, mediapipe):

    .venv/bin/python scripts/make_characters.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHARACTERS = ROOT / "src" / "digihuman" / "characters"
sys.path.insert(0, str(ROOT / "src"))

from digihuman.character import RIG_FILE  # noqa: E402
from digihuman.face.landmarks import detect_landmarks  # noqa: E402
from digihuman.face.portrait import save_portrait  # noqa: E402
from digihuman.face.rig import build_rig  # noqa: E402


def ada_portrait(photo: np.ndarray) -> np.ndarray:
    return photo.copy()


def xiaomei_portrait(photo: np.ndarray) -> np.ndarray:
    mirrored = photo[:, ::-1]
    # A tighter square around the head and shoulders (the photo is 512 x 512; the face is near 220, 125).
    crop = mirrored[10:430, 80:500].astype(np.float32) / 255.0
    # Warm, soft grade: lift the shadows, a little less contrast, warmer highlights, gentler saturation.
    graded = 0.06 + 0.9 * crop**0.92
    graded *= np.array([1.05, 0.99, 0.9], np.float32)
    grey = graded.mean(axis=2, keepdims=True)
    graded = grey + 0.85 * (graded - grey)
    return np.clip(graded * 255.0 + 0.5, 0, 255).astype(np.uint8)


def build(character: str, portrait: np.ndarray) -> None:
    folder = CHARACTERS / character
    folder.mkdir(parents=True, exist_ok=True)
    save_portrait(portrait, folder / "portrait.png")
    rig = build_rig(portrait, detect_landmarks(portrait), size=512)
    rig.save(folder / RIG_FILE)
    print(f"{folder}: portrait {portrait.shape[1]}x{portrait.shape[0]}, rig {rig.size} px")


def main() -> None:
    import skimage.data

    photo = skimage.data.astronaut()
    build("ada", ada_portrait(photo))
    build("xiaomei", xiaomei_portrait(photo))


if __name__ == "__main__":
    main()
