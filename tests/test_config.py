from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from digihuman.config import Settings, load_settings, set_setting, to_toml
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


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[face]\nsize = 511\n", "must be even"),
        ("[face]\nsize = 65\n", "must be even"),
        ("[llm]\ntemperature = nan\n", "finite number"),
        ("[director]\nmin_gap_s = inf\n", "finite number"),
        ("[camera]\nsample_fps = -inf\n", "finite number"),
        ('[llm]\nurl = "http://127.0.0.1:99999"\n', "invalid port"),
        ('[llm]\nurl = "http://127.0.0.1:port"\n', "invalid port"),
        ('[llm]\nurl = "127.0.0.1:11434"\n', "http:// or https:// URL"),
        ('[llm]\nurl = "ftp://host"\n', "http:// or https:// URL"),
    ],
)
def test_values_that_would_fail_later_are_refused_now(tmp_path: Path, text: str, needle: str) -> None:
    file = tmp_path / "c.toml"
    file.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(file)
    assert needle in str(info.value) and "\n" not in str(info.value)
    assert "Value error" not in str(info.value)


def test_a_section_variable_that_is_not_json_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGIHUMAN_FACE", "notjson")
    with pytest.raises(ConfigError, match=r"DIGIHUMAN_FACE must hold a JSON object.*DIGIHUMAN_FACE__KEY"):
        load_settings()


def test_a_section_variable_that_is_json_still_works(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGIHUMAN_FACE", '{"size": 256}')
    assert load_settings().face.size == 256


def test_a_config_path_that_is_a_folder_is_one_line(tmp_path: Path, digihuman_home: Path) -> None:
    (digihuman_home / "config.toml").mkdir()
    with pytest.raises(ConfigError, match="is a folder"):
        load_settings()
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / ("x" * 300))  # a name too long for the file system


def test_flags_are_validated_like_the_file() -> None:
    settings = load_settings()
    set_setting(settings, "face", "size", 256, flag="--size")
    assert settings.face.size == 256
    for bad in (65, 10, 99999):
        with pytest.raises(ConfigError, match=rf"--size {bad}: .*\(config key face\.size\)"):
            set_setting(settings, "face", "size", bad, flag="--size")
    with pytest.raises(ConfigError, match="--llm-url"):
        set_setting(settings, "llm", "url", "http://x:0x", flag="--llm-url")
    assert settings.face.size == 256  # a refused value changes nothing


def test_config_show_masks_the_api_key() -> None:
    settings = Settings()
    assert 'api_key = "not-needed"' in to_toml(settings)  # the placeholder is no secret
    settings.llm.api_key = "sk-very-secret"
    text = to_toml(settings)
    assert "sk-very-secret" not in text and 'api_key = "***"' in text


def test_any_environment_value_is_a_setting_or_one_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every key, any text: load_settings either works or raises ConfigError, never anything else."""
    hypothesis = pytest.importorskip("hypothesis")
    strategies = pytest.importorskip("hypothesis.strategies")
    keys = [
        f"DIGIHUMAN_{section.upper()}__{key.upper()}"
        for section, model in Settings.model_fields.items()
        if isinstance(model.default, BaseModel)
        for key in type(model.default).model_fields
    ] + [f"DIGIHUMAN_{section.upper()}" for section in Settings.model_fields]
    values = strategies.one_of(
        strategies.text(alphabet=strategies.characters(blacklist_categories=("Cs",)), max_size=12),
        strategies.sampled_from(["nan", "inf", "-1", "0", "1e400", "{}", "[]", "null", '{"x": 1}', "65"]),
    )

    @hypothesis.settings(max_examples=300, deadline=None)
    @hypothesis.given(strategies.sampled_from(keys), values.filter(lambda v: "\0" not in v))
    def check(name: str, value: str) -> None:
        with monkeypatch.context() as patch:
            patch.setenv(name, value)
            try:
                load_settings()
            except ConfigError as exc:
                assert "\n" not in str(exc)

    check()


def test_a_home_that_is_a_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.write_text("not a folder")
    monkeypatch.setenv("DIGIHUMAN_HOME", str(home))
    with pytest.raises(ConfigError, match=r"DIGIHUMAN_HOME .*home is a file; point it at a folder"):
        load_settings()
