from __future__ import annotations

from pathlib import Path

import pytest

from digihuman.asr.base import to_simplified
from digihuman.asr.factory import create_asr
from digihuman.asr.faster_whisper import FasterWhisperASR, _decode_short, max_tokens
from digihuman.config import ASRSettings
from digihuman.errors import UserError
from digihuman.testing import speech

SENTENCE = "I would like to book a table for two people tonight."


async def test_english_from_piper_within_ten_percent_wer(whisper_base: Path) -> None:
    asr = create_asr(ASRSettings(model=str(whisper_base)))
    result = await asr.transcribe(
        speech.join(speech.silence(0.3), speech.piper(SENTENCE), speech.silence(0.3))
    )
    assert speech.wer(SENTENCE, result.text) <= 0.1, result.text
    assert result.language == "en"


async def test_chinese_comes_out_in_simplified_characters(whisper_base: Path) -> None:
    asr = FasterWhisperASR(str(whisper_base), language="zh", word_timestamps=True)
    said = "我们去吃饭吧。"
    result = await asr.transcribe(
        speech.join(speech.silence(0.3), speech.espeak(said, "zh"), speech.silence(0.3))
    )
    assert result.language == "zh"
    assert to_simplified(result.text) == result.text  # nothing left to convert
    assert speech.wer(said, result.text) <= 0.1, result.text
    assert result.words and all(w.end_s >= w.start_s for w in result.words)


async def test_the_short_window_writes_chinese_in_simplified_characters(whisper_base: Path) -> None:
    said = "我们去吃饭吧。"
    result = await FasterWhisperASR(str(whisper_base), language="zh").transcribe(speech.espeak(said, "zh"))
    assert result.language == "zh"
    assert to_simplified(result.text) == result.text
    assert speech.wer(said, result.text) <= 0.1, result.text


def test_the_short_window_hears_what_the_full_window_hears(whisper_base: Path) -> None:
    asr = FasterWhisperASR(str(whisper_base), language="en")
    model = asr.load()
    audio = speech.piper(SENTENCE)
    short = _decode_short(model, audio, "en", None, 1, max_tokens(len(audio) / 16000))
    assert short is not None  # no fallback on clear speech
    assert _decode_short(model, audio, None, None, 1, max_tokens(len(audio) / 16000)) == short  # detected
    segments, _ = model.transcribe(audio, language="en", beam_size=1, vad_filter=False)
    assert short[0] == " ".join(s.text.strip() for s in segments)


def test_a_decode_cut_by_the_token_limit_is_done_again_the_standard_way(whisper_base: Path) -> None:
    model = FasterWhisperASR(str(whisper_base)).load()
    assert _decode_short(model, speech.piper(SENTENCE), "en", None, 1, max_new=3) is None


async def test_a_second_of_silence_gives_no_words(whisper_base: Path) -> None:
    result = await FasterWhisperASR(str(whisper_base), language="en").transcribe(speech.silence(1.0))
    assert result.empty, result.text


def test_traditional_characters_are_converted() -> None:
    assert to_simplified("我們會議開始了，請準備。") == "我们会议开始了，请准备。"
    assert to_simplified("plain English") == "plain English"


async def test_silence_gives_no_words(whisper_base: Path) -> None:
    result = await FasterWhisperASR(str(whisper_base), language="en").transcribe(speech.silence(0.02))
    assert result.empty


def test_a_folder_that_is_not_a_model_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a faster-whisper model folder"):
        FasterWhisperASR(str(tmp_path)).load()
