"""Scripts and languages: the one place that says which characters are Chinese, Japanese or Korean, and
which espeak-ng voice speaks a language.

Two questions that used to be answered in several places, with different answers for Korean:

- `is_cjk`: one speech unit per character (Han, kana, Hangul syllables). Used to measure and cut text.
- `is_unspaced`: written without spaces between words (Chinese, Japanese, and their punctuation), so
  sentences join without a space and spaces between such characters are noise. Korean is *not*
  unspaced: it puts spaces between words, like English.
"""

from __future__ import annotations

_HAN_RANGES = (
    (0x3400, 0x4DBF),  # CJK Extension A
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0xF900, 0xFAFF),  # CJK Compatibility Ideographs
    (0x20000, 0x2FA1F),  # CJK Extensions B..F and supplements
)
_KANA = (0x3040, 0x30FF)  # Hiragana, Katakana
_HANGUL = (0xAC00, 0xD7AF)  # Hangul syllables
_CJK_PUNCTUATION_RANGES = (
    (0x3000, 0x303F),  # CJK symbols and punctuation: 。、「」 and the ideographic space
    (0xFF00, 0xFFEF),  # full-width forms: ！？，：（）
)


def _class(ranges: tuple[tuple[int, int], ...]) -> str:
    return "".join(f"{chr(low)}-{chr(high)}" for low, high in ranges)


# The same sets as regular-expression class bodies, for `re` patterns: rf"[{UNSPACED_CLASS}]".
UNSPACED_CLASS = _class((_KANA, *_HAN_RANGES, *_CJK_PUNCTUATION_RANGES))
CJK_PUNCTUATION_CLASS = _class(_CJK_PUNCTUATION_RANGES)


def _within(char: str, ranges: tuple[tuple[int, int], ...]) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in ranges)


def is_han(char: str) -> bool:
    """A Chinese character (hanzi, kanji, hanja)."""
    return ord(char) >= 0x3400 and _within(char, _HAN_RANGES)


def is_kana(char: str) -> bool:
    return _KANA[0] <= ord(char) <= _KANA[1]


def is_hangul(char: str) -> bool:
    return _HANGUL[0] <= ord(char) <= _HANGUL[1]


def is_cjk(char: str) -> bool:
    """A Chinese, Japanese or Korean letter: one speech unit each (punctuation is not)."""
    return ord(char) >= 0x3040 and (is_han(char) or is_kana(char) or is_hangul(char))


def is_cjk_punctuation(char: str) -> bool:
    return ord(char) >= 0x3000 and _within(char, _CJK_PUNCTUATION_RANGES)


def is_unspaced(char: str) -> bool:
    """Part of text written without spaces between words: Chinese, Japanese, their punctuation."""
    return ord(char) >= 0x3000 and (is_han(char) or is_kana(char) or is_cjk_punctuation(char))


def has_cjk(text: str) -> bool:
    return any(is_cjk(char) for char in text)


def has_han(text: str) -> bool:
    return any(is_han(char) for char in text)


def has_kana(text: str) -> bool:
    return any(is_kana(char) for char in text)


def language_base(language: str) -> str:
    """ "zh-CN" / "zh_TW" / " EN " -> "zh" / "zh" / "en"."""
    return language.strip().lower().replace("_", "-").split("-")[0]


def is_chinese(language: str) -> bool:
    """A Chinese language code: zh (any region), cmn, yue."""
    return language_base(language) in {"zh", "cmn", "yue"}


def espeak_voice(language: str) -> str:
    """The espeak-ng voice for a language code: "zh" -> "cmn", "en" -> "en-us", "zh-HK" -> "yue".

    The default for an espeak character (`characters new`, the voice factory) and for each call of an
    espeak voice without a fixed one.
    """
    code = language.strip().lower().replace("_", "-")
    base = code.split("-")[0]
    if code in {"zh-hk", "zh-mo", "zh-yue", "yue"}:
        return "yue"
    if base in {"zh", "cmn"}:
        return "cmn"
    if code in {"en-gb", "en-uk"}:
        return "en"  # espeak's "en" is British English
    if base == "en":
        return "en-us"
    return code or "en-us"
