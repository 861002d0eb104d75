from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from digihuman.character import (
    BackendSpec,
    CharacterSpec,
    find_character,
    list_characters,
    load_character_dir,
    slugify,
    spec_to_toml,
    user_dir,
)
from digihuman.errors import CharacterError


def test_shipped_characters_include_english_and_mandarin() -> None:
    by_id = {c.id: c for c in list_characters()}
    assert by_id["ada"].language == "en" and by_id["xiaomei"].language == "zh"
    for character in by_id.values():
        assert character.source == "shipped"
        assert character.portrait_path.is_file() and character.rig_path.is_file()


def test_find_by_id_or_display_name_case_insensitive() -> None:
    assert find_character("ADA").id == "ada"
    assert find_character("小美").id == "xiaomei"


def test_unknown_character_names_the_known_ones() -> None:
    with pytest.raises(CharacterError, match=r"unknown character 'nobody' \(known: ada, xiaomei"):
        find_character("nobody")


def test_persona_defaults_by_language(tmp_path: Path) -> None:
    folder = tmp_path / "li"
    folder.mkdir()
    (folder / "character.toml").write_text('name = "Li"\nlanguage = "zh"\n', encoding="utf-8")
    character = load_character_dir(folder, "user")
    assert character.persona.startswith("你是Li")
    assert character.spec.voice.backend == "espeak" and character.spec.face.backend == "animator"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('name = "X"\ncolour = "red"\n', "key 'colour'"),
        ('name = "X"\nlanguage = "Chinese!"\n', "key 'language'"),
        ('name = ""\n', "key 'name'"),
        ('name = "X"\n[voice]\nparams = {}\n', "key 'voice.backend'"),
        ("name = \n", "not valid TOML"),
    ],
)
def test_invalid_character_toml_is_one_clear_line(tmp_path: Path, text: str, needle: str) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "character.toml").write_text(text, encoding="utf-8")
    with pytest.raises(CharacterError) as info:
        load_character_dir(folder, "user")
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_a_folder_without_character_toml_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CharacterError, match=r"has no character\.toml"):
        load_character_dir(tmp_path, "user")


def test_user_characters_are_listed_after_shipped_ones_and_cannot_shadow_them() -> None:
    for slug, name in (("zed", "Zed"), ("ada", "Impostor")):
        folder = user_dir() / slug
        folder.mkdir(parents=True)
        (folder / "character.toml").write_text(f'name = "{name}"\n', encoding="utf-8")
    characters = list_characters()
    assert [c.id for c in characters][-1] == "zed"
    assert find_character("ada").name == "Ada" and find_character("zed").source == "user"


def test_spec_round_trips_through_toml() -> None:
    spec = CharacterSpec(
        name='Mei "M"',
        language="zh",
        persona="你好\nworld",
        voice_sample="voice.wav",
        voice=BackendSpec(backend="gpt-sovits", params={"url": "http://127.0.0.1:9880", "top_k": 5}),
        face=BackendSpec(backend="sadtalker", params={"still": True}),
    )
    assert CharacterSpec(**tomllib.loads(spec_to_toml(spec))) == spec


def test_slugify() -> None:
    assert slugify("  Mary Jane! ") == "mary-jane"
    assert slugify("小美") == "小美"
    with pytest.raises(CharacterError):
        slugify("!!!")
