"""ASR window: faster-whisper's standard 30 s window against our short window (the speech plus 5 s).

The same utterances go through both decodes of whisper-base (int8, 2 threads, beam 1): Piper English with
its sampling noise and a little background noise, espeak English, espeak Chinese, mid-sentence fragments
(the turn set's), and three-sentence monologues. Reports each decode's word error rate (character error rate
for Chinese), its median and total time, and how often the short decode gave up and decoded again the
standard way. Prints one JSON object.

    .venv/bin/python benchmarks/asr_window.py [--asr-model WHISPER_DIR] [--piper-voice VOICE.onnx]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np

from digihuman.asr.base import SIMPLIFIED_PROMPT, clean_text
from digihuman.asr.faster_whisper import FasterWhisperASR, _decode_short, max_tokens
from digihuman.testing import speech, turn_set

ENGLISH = (
    "The weather is lovely today, so we should go for a walk.",
    "Please remember to buy some milk and bread on your way home.",
    "Could you turn the music down a little while I make a call?",
    "She painted the kitchen a bright shade of yellow last summer.",
    "I think the meeting went well, but we still have a lot to do.",
    "A cup of hot tea is the best thing on a cold evening.",
    "What is the capital of France?",
    "How many legs does a spider have?",
    "Why is the sky blue during the day?",
    "What is a good name for a small black cat?",
    "How do bees make honey in their hives?",
    "Yes.",
)
CHINESE = (
    "今天天气很好，我们出去散步吧。",
    "请你回家的路上买一些牛奶和面包。",
    "我最喜欢的书讲的是一个小男孩和他的狗。",
    "谢谢你的帮助，我真的很感激。",
    "冬天的晚上喝一杯热茶最舒服。",
)


@cache
def piper_voice() -> Any:
    from piper import PiperVoice

    return PiperVoice.load(str(speech.find_piper_voice()))


def piper_varied(text: str, seed: int) -> np.ndarray:
    """Piper with its prosody noise on (each run differs, as people do) and a little background noise."""
    voice = piper_voice()
    pcm = np.concatenate([c.audio_float_array for c in voice.synthesize(text)])
    audio = speech.trim(speech.to_16k(pcm * 0.7, voice.config.sample_rate))
    return (audio + np.random.default_rng(seed).normal(0, 0.003, len(audio))).astype(np.float32)


def cases() -> list[tuple[str, str, str, np.ndarray]]:
    """(set, language, text, 16 kHz audio)."""
    out = [("piper-en", "en", t, piper_varied(t, i)) for i, t in enumerate(ENGLISH)]
    out += [("piper-en", "en", t, piper_varied(t, 50 + i)) for i, t in enumerate(turn_set.COMPLETE_EN)]
    out += [("fragment-en", "en", head, speech.piper(head)) for head, _ in turn_set.INCOMPLETE_EN]
    out += [("espeak-en", "en", t, speech.espeak(t, "en")) for t in ENGLISH[:6]]
    out += [("espeak-zh", "zh", t, speech.espeak(t, "zh")) for t in (*CHINESE, *turn_set.COMPLETE_ZH)]
    for i in range(0, 6, 3):
        text = " ".join(ENGLISH[i : i + 3])
        out.append(("monologue-en", "en", text, piper_varied(text, 100 + i)))
    return out


def tokens(text: str, language: str) -> list[str]:
    if language == "zh":
        return [c for c in clean_text(text, "zh") if "\u4e00" <= c <= "\u9fff"]
    words = re.findall(r"[a-z0-9']+", text.lower())
    # British spellings in the texts, American in Whisper's output: not an error.
    return [{"favourite": "favorite", "colour": "color"}.get(w, w) for w in words]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--asr-model", default="whisper:base", help="faster-whisper model name or folder")
    parser.add_argument("--piper-voice", default="piper:en_US-joe-medium", help="voice for the test speech")
    args = parser.parse_args()
    from digihuman.models import resolve

    speech.find_piper_voice = lambda: resolve(args.piper_voice, kind="voice")
    asr = FasterWhisperASR(args.asr_model, threads=2)
    model = asr.load()

    def standard(audio: np.ndarray, language: str) -> str:
        segments, _ = model.transcribe(
            audio,
            language=language,
            beam_size=1,
            initial_prompt=SIMPLIFIED_PROMPT if language == "zh" else None,
            condition_on_previous_text=False,
            vad_filter=False,
            temperature=(0.0, 0.4, 0.8),
            max_new_tokens=max_tokens(len(audio) / 16000),
        )
        return " ".join(s.text.strip() for s in segments)

    def short(audio: np.ndarray, language: str) -> str:
        return asr.transcribe_blocking(audio, language).text

    decoders: dict[str, Callable[[np.ndarray, str], str]] = {"standard_30s": standard, "short": short}
    totals: dict[str, dict[str, Any]] = {
        name: {"times": [], "errors": {}, "lengths": {}} for name in decoders
    }
    fallbacks = 0
    all_cases = cases()
    for name, language, text, audio in all_cases:
        short(audio, language)  # warm both paths' shapes
        prompt = SIMPLIFIED_PROMPT if language == "zh" else None
        fallbacks += _decode_short(model, audio, language, prompt, 1, max_tokens(len(audio) / 16000)) is None
        for decoder, decode in decoders.items():
            started = time.perf_counter()
            heard = decode(audio, language)
            totals[decoder]["times"].append(time.perf_counter() - started)
            errors, lengths = totals[decoder]["errors"], totals[decoder]["lengths"]
            ref = tokens(text, language)
            # speech.wer's rate times the reference length: the edits, pooled over the set
            error_rate = speech.wer(" ".join(ref), " ".join(tokens(heard, language)))
            errors[name] = errors.get(name, 0) + error_rate * len(ref)
            lengths[name] = lengths.get(name, 0) + len(ref)
    result: dict[str, Any] = {"benchmark": "asr_window", "utterances": len(all_cases)}
    for decoder, total in totals.items():
        result[decoder] = {
            "error_rate": {k: round(total["errors"][k] / total["lengths"][k], 3) for k in total["errors"]},
            "median_s": round(statistics.median(total["times"]), 3),
            "total_s": round(sum(total["times"]), 2),
        }
    result["short_fell_back"] = fallbacks
    result["speedup"] = round(result["standard_30s"]["total_s"] / result["short"]["total_s"], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
