"""digihuman.lang: the one answer to "is this Chinese, Japanese or Korean?" and "which espeak voice?"."""

from __future__ import annotations

import re

import pytest

from digihuman.lang import (
    CJK_PUNCTUATION_CLASS,
    UNSPACED_CLASS,
    espeak_voice,
    has_cjk,
    has_han,
    has_kana,
    is_chinese,
    is_cjk,
    is_cjk_punctuation,
    is_unspaced,
)


@pytest.mark.parametrize(
    ("char", "cjk", "unspaced"),
    [
        ("你", True, True),
        ("の", True, True),
        ("カ", True, True),
        ("한", True, False),  # Korean: one unit per syllable, but words are spaced
        ("𠀀", True, True),  # Extension B
        ("。", False, True),
        ("！", False, True),
        ("a", False, False),
        ("é", False, False),
        (" ", False, False),
        ("1", False, False),
    ],
)
def test_scripts(char: str, cjk: bool, unspaced: bool) -> None:
    assert is_cjk(char) is cjk
    assert is_unspaced(char) is unspaced


def test_punctuation_is_not_a_letter() -> None:
    assert is_cjk_punctuation("、") and not is_cjk("、")


def test_text_checks() -> None:
    assert has_cjk("hello 안녕") and not has_han("hello 안녕")
    assert has_han("I like 北京") and not has_kana("I like 北京")
    assert has_kana("カメラ") and not has_cjk("camera")


@pytest.mark.parametrize(
    ("language", "voice"),
    [("zh", "cmn"), ("zh-CN", "cmn"), ("zh_TW", "cmn"), ("zh-HK", "yue"), ("en", "en-us"), ("en-GB", "en"),
     ("fr", "fr"), ("", "en-us")],
)  # fmt: skip
def test_espeak_voice(language: str, voice: str) -> None:
    assert espeak_voice(language) == voice


def test_is_chinese() -> None:
    assert is_chinese("zh-CN") and is_chinese("yue") and is_chinese("cmn")
    assert not is_chinese("en") and not is_chinese("ja")


def test_regex_classes_match_the_functions() -> None:
    unspaced, punctuation = re.compile(rf"[{UNSPACED_CLASS}]"), re.compile(rf"[{CJK_PUNCTUATION_CLASS}]")
    for code in [*range(0x2F00, 0xAD00), *range(0xF800, 0x10000), 0x20000, 0x2A6D6, 0x2FA1F, 0x30000]:
        char = chr(code)
        assert bool(unspaced.fullmatch(char)) is is_unspaced(char), hex(code)
        assert bool(punctuation.fullmatch(char)) is is_cjk_punctuation(char), hex(code)
