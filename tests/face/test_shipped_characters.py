"""The shipped characters (src/digihuman/characters): valid packs whose rigs load and animate offline."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

from digihuman.character import find_character, shipped_dir
from digihuman.face.animator import PortraitAnimator
from digihuman.face.portrait import load_portrait
from digihuman.face.rig import Rig


@pytest.mark.parametrize(
    ("character_id", "language", "voice"), [("ada", "en", "en-us"), ("xiaomei", "zh", "cmn")]
)
def test_shipped_character_pack(character_id: str, language: str, voice: str) -> None:
    character = find_character(character_id)
    assert character.source == "shipped" and character.language == language
    assert character.spec.voice.backend == "espeak" and character.spec.voice.params == {"voice": voice}
    assert character.spec.face.backend == "animator"
    assert character.spec.persona  # written for the character, not the default
    portrait = load_portrait(character.portrait_path)
    assert min(portrait.shape[:2]) >= 256
    rig = Rig.load(character.rig_path)
    assert rig.size == 512
    animator = PortraitAnimator(rig, seed=0)
    frame = animator.idle_frame(1.0)
    assert frame.shape == (512, 512, 3) and frame.dtype == np.uint8


def test_the_two_portraits_differ() -> None:
    ada = load_portrait(shipped_dir() / "ada" / "portrait.png")
    xiaomei = load_portrait(shipped_dir() / "xiaomei" / "portrait.png")
    assert ada.shape != xiaomei.shape or np.abs(ada.astype(int) - xiaomei).mean() > 20


def test_chinese_persona_and_assets_record() -> None:
    spec = tomllib.loads((shipped_dir() / "xiaomei" / "character.toml").read_text(encoding="utf-8"))
    assert any("\u4e00" <= ch <= "\u9fff" for ch in spec["persona"])
    record = (shipped_dir() / "ASSETS.md").read_text(encoding="utf-8")
    assert "public domain" in record.lower() and "astronaut" in record


def test_create_character_builds_a_rig_from_a_photo(astronaut: np.ndarray, tmp_path: Path) -> None:
    pytest.importorskip("mediapipe")
    from digihuman.character import create_character
    from digihuman.face.portrait import save_portrait

    save_portrait(astronaut, tmp_path / "me.png")
    character = create_character("Test Person", tmp_path / "me.png", face_size=256)
    rig = Rig.load(character.rig_path)
    assert rig.size == 256
    assert PortraitAnimator(rig, size=256, seed=0).idle_frame(0.0).shape == (256, 256, 3)
