from __future__ import annotations

from pathlib import Path

import pytest

from digihuman.config import Settings, load_settings, to_toml
from digihuman.errors import ConfigError


def test_defaults_without_a_file() -> None:
    settings = load_settings()
    assert settings.face.size == 512
    assert settings.face.fps == 25


def test_file_then_environment_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "c.toml"
    file.write_text('character = "xiaomei"\n[face]\nsize = 256\n[llm]\nmodel = "a"\n', encoding="utf-8")
    monkeypatch.setenv("DIGIHUMAN_LLM__MODEL", "b")
    settings = load_settings(file)
    assert (settings.character, settings.face.size, settings.llm.model) == ("xiaomei", 256, "b")


def test_config_env_variable_picks_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "c.toml"
    file.write_text("[face]\nfps = 30\n", encoding="utf-8")
    monkeypatch.setenv("DIGIHUMAN_CONFIG", str(file))
    assert load_settings().face.fps == 30


def test_default_location_is_in_home(digihuman_home: Path) -> None:
    (digihuman_home / "config.toml").write_text("[face]\nthreads = 2\n", encoding="utf-8")
    assert load_settings().face.threads == 2


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[face]\nsizes = 3\n", "unknown config key 'face.sizes'"),
        ("colour = 1\n", "unknown config key 'colour'"),
        ('[face]\nsize = "big"\n', "config key 'face.size'"),
        ('[llm]\nbackend = "gpt"\n', "config key 'llm.backend'"),
        ("[face\n", "not valid TOML"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, needle: str) -> None:
    file = tmp_path / "c.toml"
    file.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(file)
    message = str(info.value)
    assert needle in message
    assert "\n" not in message


def test_bad_environment_value_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGIHUMAN_FACE__SIZE", "huge")
    with pytest.raises(ConfigError, match=r"face\.size"):
        load_settings()


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_toml_round_trip(tmp_path: Path) -> None:
    settings = Settings(character="x")
    settings.llm.model = 'q"uote'
    file = tmp_path / "c.toml"
    file.write_text(to_toml(settings), encoding="utf-8")
    assert load_settings(file) == settings


def test_environment_errors_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGIHUMAN_FACE__FPS", "fast")
    with pytest.raises(ConfigError, match=r"variable DIGIHUMAN_FACE__FPS: config key 'face\.fps'"):
        load_settings()
