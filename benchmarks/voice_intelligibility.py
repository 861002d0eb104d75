"""How well a listener understands each offline voice: Whisper base transcribes fixed sentences.

Every voice (espeak English, espeak Mandarin, Piper English) reads the same sentences; faster-whisper base
(int8, beam 1, the real weights) transcribes them, and the script prints one JSON object with the word error
rate (English) or character error rate (Chinese) per voice, and how fast each voice synthesizes (times real
time, on one core). `--sweep` also scores espeak Mandarin settings (rate, pitch range, word gap), which is
how the shipped Mandarin defaults were chosen (the sweep used greedy decoding, beam 1, to save time).

Run: .venv/bin/python benchmarks/voice_intelligibility.py [--whisper DIR] [--piper VOICE.onnx] [--sweep]
Whisper and the Piper voice come from the model cache (`digihuman models pull whisper:base`, `... piper:
en_US-joe-medium`) or the test cache (`scripts/fetch_test_models.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np

ENGLISH = (
    "The weather is lovely today, so we should go for a walk.",
    "Please remember to buy some milk and bread on your way home.",
    "My favourite book tells the story of a small boy and his dog.",
    "Could you turn the music down a little while I make a call?",
    "The train to the city leaves early in the morning.",
    "She painted the kitchen a bright shade of yellow last summer.",
    "I think the meeting went well, but we still have a lot to do.",
    "Thank you for your help, I really appreciate it.",
    "A cup of hot tea is the best thing on a cold evening.",
    "We watched the stars from the roof until midnight.",
)
CHINESE = (
    "今天天气很好，我们出去散步吧。",
    "请你回家的路上买一些牛奶和面包。",
    "我最喜欢的书讲的是一个小男孩和他的狗。",
    "你能把音乐关小一点吗？我要打个电话。",
    "去城里的火车明天早上出发。",
    "她去年夏天把厨房刷成了黄色。",
    "我觉得会议开得很顺利，但是还有很多事情要做。",
    "谢谢你的帮助，我真的很感激。",
    "冬天的晚上喝一杯热茶最舒服。",
    "我们在屋顶上看星星，一直看到半夜。",
)
ZH_PROMPT = "以下是普通话的句子。"  # steers Whisper to Simplified characters
# Traditional forms Whisper still writes now and then, mapped to the Simplified ones the texts use.
TRADITIONAL = str.maketrans(
    "們氣歡書講個這過裡車來開會還東謝熱頂點電話買麵條頭見說給讓時間覺態門問聽歲學樂關燈兒實現",
    "们气欢书讲个这过里车来开会还东谢热顶点电话买面条头见说给让时间觉态门问听岁学乐关灯儿实现",
)
REPO = Path(__file__).resolve().parents[1]


def normalize_words(text: str) -> list[str]:
    text = text.lower().replace("favorite", "favourite").replace("-", "")  # "mid-night" is "midnight"
    return re.findall(r"[a-z0-9']+", text)


def normalize_chars(text: str) -> list[str]:
    text = text.translate(TRADITIONAL)
    return [ch for ch in text if unicodedata.category(ch)[0] in "LN" and not ch.isspace()]


def edit_distance(reference: list[str], hypothesis: list[str]) -> int:
    row = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        previous, row[0] = row[0], i
        for j, hyp in enumerate(hypothesis, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ref != hyp))
    return row[-1]


def error_rate(pairs: list[tuple[list[str], list[str]]]) -> float:
    errors = sum(edit_distance(ref, hyp) for ref, hyp in pairs)
    return errors / max(1, sum(len(ref) for ref, _ in pairs))


def to_16k(pcm: np.ndarray, rate: int) -> np.ndarray:
    if rate == 16000:
        return pcm.astype(np.float32)
    times = np.arange(0, len(pcm) / rate, 1 / 16000)
    return np.interp(times, np.arange(len(pcm)) / rate, pcm).astype(np.float32)


async def render(tts: Any, text: str, language: str) -> tuple[np.ndarray, int]:
    chunks = [chunk async for chunk in tts.synthesize(text, language)]
    return np.concatenate([c.pcm for c in chunks]), chunks[0].sample_rate


def score_voice(make_tts: Any, sentences: tuple[str, ...], language: str, model: Any) -> dict[str, Any]:
    """Synthesize every sentence (timed), transcribe it, and score the transcripts."""
    tts = make_tts()
    asyncio.run(render(tts, sentences[0], language))  # load the voice outside the timing
    pairs, details, synth_s, audio_s = [], [], 0.0, 0.0
    for text in sentences:
        start = time.perf_counter()
        pcm, rate = asyncio.run(render(tts, text, language))
        synth_s += time.perf_counter() - start
        audio_s += len(pcm) / rate
        # Whisper's usual decoding (beam 5, temperature fallback against repetition loops, seeded).
        options: dict[str, Any] = {"language": language, "beam_size": 5, "vad_filter": False}
        if language == "zh":
            options["initial_prompt"] = ZH_PROMPT
        segments, _ = model.transcribe(to_16k(pcm, rate), **options)
        heard = "".join(s.text for s in segments).strip()
        split = normalize_chars if language == "zh" else normalize_words
        pairs.append((split(text), split(heard)))
        details.append({"text": text, "heard": heard})
    metric = "cer" if language == "zh" else "wer"
    return {
        metric: round(error_rate(pairs), 4),
        "sentences": len(sentences),
        "audio_s": round(audio_s, 2),
        "x_real_time": round(audio_s / synth_s, 1),
        "transcripts": details,
    }


def default_whisper() -> Path | None:
    from digihuman.models import lookup

    cached = lookup("whisper:base")
    if cached.is_complete():
        return cached.path
    test_cache = Path(os.environ.get("DIGIHUMAN_TEST_CACHE") or "~/.cache/digihuman-tests").expanduser()
    return test_cache / "whisper-base" if (test_cache / "whisper-base" / "model.bin").is_file() else None


def default_piper() -> Path | None:
    from digihuman.models import lookup

    cached = lookup("piper:en_US-joe-medium")
    if cached.is_complete():
        return cached.path
    test_cache = Path(os.environ.get("DIGIHUMAN_TEST_CACHE") or "~/.cache/digihuman-tests").expanduser()
    voice = test_cache / "piper" / "en_US-joe-medium.onnx"
    return voice if voice.is_file() else None


# espeak Mandarin settings tried by --sweep: rate (words per minute), pitch range (0-100), gap between
# words (x 10 ms), a voice variant. The first is how espeak spoke Mandarin before tuning; the shipped
# default (tts/espeak.py MANDARIN) is 140 wpm, range 30, gap 3.
SWEEP = (
    {"rate_wpm": 165, "pitch_range": 50, "word_gap": 0},
    {"rate_wpm": 140, "pitch_range": 50, "word_gap": 0},
    {"rate_wpm": 120, "pitch_range": 50, "word_gap": 0},
    {"rate_wpm": 140, "pitch_range": 100, "word_gap": 0},
    {"rate_wpm": 140, "pitch_range": 50, "word_gap": 3},
    {"rate_wpm": 140, "pitch_range": 50, "word_gap": 5},
    {"rate_wpm": 120, "pitch_range": 50, "word_gap": 3},
    {"rate_wpm": 120, "pitch_range": 50, "word_gap": 5},
    {"rate_wpm": 130, "pitch_range": 50, "word_gap": 4},
    {"rate_wpm": 140, "pitch_range": 20, "word_gap": 3},
    {"rate_wpm": 140, "pitch_range": 30, "word_gap": 3},
    {"rate_wpm": 140, "pitch_range": 30, "word_gap": 5},
    {"rate_wpm": 130, "pitch_range": 30, "word_gap": 4},
    {"rate_wpm": 140, "pitch_range": 70, "word_gap": 3},
    {"rate_wpm": 140, "pitch_range": 50, "word_gap": 3, "voice": "cmn+f2"},
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--whisper", type=Path, help="faster-whisper base folder")
    parser.add_argument("--piper", type=Path, help="Piper English voice (.onnx)")
    parser.add_argument("--sweep", action="store_true", help="also score espeak Mandarin settings")
    parser.add_argument("--transcripts", action="store_true", help="include every transcript")
    parser.add_argument("--only", metavar="PREFIX", help="only the voices whose name starts with PREFIX")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    import ctranslate2
    from faster_whisper import WhisperModel

    from digihuman.tts.espeak import EspeakTTS

    whisper = args.whisper or default_whisper()
    if whisper is None:
        raise SystemExit(
            "no Whisper base: `digihuman models pull whisper:base` or scripts/fetch_test_models.py"
        )
    ctranslate2.set_random_seed(0)  # the temperature fallback samples: the same audio, the same text
    model = WhisperModel(str(whisper), device="cpu", compute_type="int8", cpu_threads=2)
    voices: dict[str, tuple[Any, tuple[str, ...], str]] = {
        "espeak-en": (lambda: EspeakTTS("en-us"), ENGLISH, "en"),
        "espeak-zh": (lambda: EspeakTTS("cmn"), CHINESE, "zh"),
        # Mandarin as espeak spoke it before tuning (its English prosody), for the before/after figure
        "espeak-zh-untuned": (
            lambda: EspeakTTS("cmn", rate_wpm=165, pitch_range=50, word_gap=0),
            CHINESE,
            "zh",
        ),
    }
    piper = args.piper or default_piper()
    if piper is not None:
        from digihuman.tts.piper import PiperTTS

        voices["piper-en"] = (lambda: PiperTTS(str(piper), threads=1), ENGLISH, "en")
    if args.sweep:
        for params in SWEEP:
            name = "espeak-zh " + " ".join(f"{k}={v}" for k, v in params.items())
            settings = {"voice": "cmn", **params}
            voices[name] = (lambda settings=settings: EspeakTTS(**settings), CHINESE, "zh")
    if args.only:
        voices = {name: voice for name, voice in voices.items() if name.startswith(args.only)}
    results = {name: score_voice(make, texts, lang, model) for name, (make, texts, lang) in voices.items()}
    if not args.transcripts:
        for result in results.values():
            result.pop("transcripts")
    print(
        json.dumps(
            {
                "benchmark": "voice_intelligibility",
                "asr": f"faster-whisper base int8 ({whisper})",
                "cores": os.cpu_count(),
                "targets": {"piper-en wer": 0.05, "piper-en x_real_time": 10},
                "voices": results,
            },
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main()
