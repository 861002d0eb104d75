from __future__ import annotations

import errno
import os
import tomllib
from pathlib import Path

import pytest

from digihuman.character import (
    BackendSpec,
    BrokenCharacter,
    CharacterSpec,
    _publish,
    create_character,
    find_character,
    list_characters,
    load_character_dir,
    scan_characters,
    slugify,
    spec_to_toml,
    user_dir,
)
from digihuman.config import toml_value
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


def _user_character(slug: str, text: str) -> Path:
    folder = user_dir() / slug
    folder.mkdir(parents=True)
    (folder / "character.toml").write_text(text, encoding="utf-8")
    return folder


def test_a_broken_user_character_is_listed_and_breaks_only_itself() -> None:
    _user_character("broken", 'name = "X"\ncolour = "red"\n')
    _user_character("zed", 'name = "Zed"\n')
    scanned = {c.id: c for c in scan_characters()}
    assert isinstance(scanned["broken"], BrokenCharacter) and "colour" in str(scanned["broken"].error)
    assert [c.id for c in list_characters()] == ["ada", "xiaomei", "zed"]
    assert find_character("zed").name == "Zed" and find_character("ada").id == "ada"
    with pytest.raises(CharacterError, match="colour"):
        find_character("broken")


def test_ids_win_over_display_names() -> None:
    """A user character called 小美 (id 小美) is selectable; the shipped 小美 stays reachable as xiaomei."""
    _user_character("小美", 'name = "小美"\nlanguage = "zh"\n')
    _user_character("ada2", 'name = "ADA"\n')
    assert find_character("小美").source == "user"
    assert find_character("xiaomei").source == "shipped"
    assert find_character("ada").source == "shipped"  # an id beats another character's display name
    assert find_character("ADA").id == "ada"  # a case-insensitive id beats an exact display name
    assert find_character("ada2").source == "user"


def test_new_character_refuses_a_bad_language_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(CharacterError, match="not a language code"):
        create_character("Li", tmp_path / "missing.png", language="Chinese!")


def test_new_character_refuses_a_name_too_long_for_a_folder(tmp_path: Path) -> None:
    with pytest.raises(CharacterError, match="too long"):
        create_character("x" * 300, tmp_path / "missing.png")


@pytest.fixture
def no_face_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip detection and rig building: these tests are about where the pack is written."""
    import numpy as np

    class Rig:
        def save(self, path: Path) -> None:
            path.write_bytes(b"rig")

    monkeypatch.setattr(
        "digihuman.face.prepare.rig_from_portrait", lambda path, size: (np.zeros((8, 8, 3), np.uint8), Rig())
    )


@pytest.mark.usefixtures("no_face_work")
def test_a_full_disk_leaves_nothing_half_made(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def full(image: object, path: Path) -> None:
        path.write_bytes(b"half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("digihuman.face.portrait.save_portrait", full)
    with pytest.raises(CharacterError, match="No space left on device; nothing was created"):
        create_character("Zoe", tmp_path / "me.png")
    assert list(user_dir().iterdir()) == []


@pytest.mark.usefixtures("no_face_work")
def test_the_loser_of_two_concurrent_news_gets_already_exists(tmp_path: Path) -> None:
    created = create_character("Zoe", tmp_path / "me.png")
    assert created.id == "zoe" and (created.path / "character.toml").is_file()
    staging = user_dir() / ".zoe-second"
    staging.mkdir()
    (staging / "character.toml").write_text('name = "Zoe"\n', encoding="utf-8")
    with pytest.raises(CharacterError, match="already exists"):
        _publish(staging, user_dir() / "zoe")  # the winner's folder is there by now
    assert (created.path / "rig.npz").read_bytes() == b"rig"  # the winner is intact


def test_any_character_toml_loads_or_is_one_character_error(tmp_path: Path) -> None:
    """Arbitrary bytes and arbitrary values for every key: CharacterError (one line) or a character."""
    hypothesis = pytest.importorskip("hypothesis")
    strategies = pytest.importorskip("hypothesis.strategies")
    folder = tmp_path / "fuzz"
    folder.mkdir()
    scalars = strategies.one_of(
        strategies.text(max_size=10).filter(lambda t: not any(0xD800 <= ord(c) <= 0xDFFF for c in t)),
        strategies.integers(),
        strategies.floats(),
        strategies.booleans(),
    )
    keys = strategies.sampled_from(
        ["name", "language", "persona", "portrait", "voice_sample", "voice", "face"]
    )
    lines = strategies.lists(strategies.tuples(keys, scalars), max_size=4).map(
        lambda pairs: "\n".join(f"{key} = {_toml(value)}" for key, value in dict(pairs).items())
    )
    documents = strategies.one_of(lines.map(str.encode), strategies.binary(max_size=60))

    @hypothesis.settings(max_examples=200, deadline=None)
    @hypothesis.given(documents)
    def check(document: bytes) -> None:
        (folder / "character.toml").write_bytes(document)
        try:
            load_character_dir(folder, "user")
        except CharacterError as exc:
            assert "\n" not in str(exc)

    check()


def _toml(value: object) -> str:
    """A TOML literal, nan and infinities included (Python's repr of them is not TOML)."""
    if isinstance(value, float) and value != value:
        return "nan"
    if isinstance(value, float) and abs(value) == float("inf"):
        return "inf" if value > 0 else "-inf"
    return toml_value(value)
