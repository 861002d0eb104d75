"""Speech recognition: the `ASR` interface, its result, and Chinese text in Simplified characters."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

import numpy as np

from digihuman.media import Timing

# Whisper was trained on much Traditional-script Chinese and often answers in it; this prompt (in
# Simplified script) steers it to Simplified, and `to_simplified` converts whatever still slips through.
SIMPLIFIED_PROMPT = "以下是普通话的句子。"
_CJK = re.compile(r"[\u3400-\u9fff]")


@dataclass(frozen=True, slots=True)
class Transcript:
    """What was said: text, language code ("en", "zh"), word timings (s from the audio start) if known."""

    text: str
    language: str = ""
    words: tuple[Timing, ...] = ()
    duration_s: float = 0.0  # of the audio transcribed

    @property
    def empty(self) -> bool:
        return not any(ch.isalnum() for ch in self.text)


class ASR(Protocol):
    """An utterance's audio (16 kHz mono float32) in, a transcript out.

    `language` None detects it. `prompt` is earlier text of the same utterance (chunked decoding).
    Implementations run blocking work in worker threads and may be shared by many sessions.
    """

    async def transcribe(
        self, audio: np.ndarray, language: str | None = None, prompt: str | None = None
    ) -> Transcript: ...

    async def aclose(self) -> None: ...


@cache
def _converter() -> Any:
    try:
        import opencc
    except ImportError:
        return None
    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    """Traditional Chinese characters to Simplified (OpenCC's t2s); other text unchanged."""
    if not _CJK.search(text):
        return text
    converter = _converter()
    if converter is None:
        from digihuman.errors import MissingExtraError

        raise MissingExtraError("opencc", "asr")
    return str(converter.convert(text))


def is_chinese(language: str | None) -> bool:
    return bool(language) and str(language).lower().split("-")[0] in {"zh", "cmn", "yue"}


def normalize_language(language: str | None) -> str | None:
    """Config and CLI spellings to Whisper's codes: "" / "auto" -> None, "zh-CN" / "cmn" -> "zh"."""
    if not language or language.lower() == "auto":
        return None
    code = language.lower().replace("_", "-").split("-")[0]
    return "zh" if code == "cmn" else code


def clean_text(text: str, language: str) -> str:
    text = " ".join(text.split())
    return to_simplified(text) if is_chinese(language) or _CJK.search(text) else text
