"""The embedded espeak-ng voice: real synthesis in English and Mandarin, timings, cancellation."""

from __future__ import annotations

import asyncio
import itertools
import threading

import numpy as np
import pytest

from digihuman.errors import ConfigError
from digihuman.media import AudioChunk, Timing, Utterance
from digihuman.tts import espeak
from digihuman.tts.espeak import SILENCE, EspeakTTS, voice_for_language

ENGLISH = "Hello there, Mr. Smith. How are you?"
CHINESE = "你好，今天天气很好。"
# What espeak's Mandarin voice says for 你好 (n i X Au = "ni hao"); an English voice reads "Chinese letter".
NI_HAO = ["n", "i", "X", "Au"]


async def collect(tts: EspeakTTS, text: str, language: str) -> list[AudioChunk]:
    return [chunk async for chunk in tts.synthesize(text, language)]


def sounding(phonemes: tuple[Timing, ...]) -> list[str]:
    return [p.label for p in phonemes if p.label != SILENCE]


def words_of(chunks: list[AudioChunk]) -> list[Timing]:
    seen = {(w.label, w.start_s): w for chunk in chunks for w in chunk.words}
    return sorted(seen.values(), key=lambda w: w.start_s)


def assert_well_timed(chunks: list[AudioChunk], chunk_s: float) -> None:
    """Chunks are contiguous float32 mono; timings are ordered, non-overlapping and inside the audio."""
    assert chunks
    position = 0.0
    for chunk in chunks:
        assert chunk.pcm.dtype == np.float32 and chunk.pcm.ndim == 1
        assert chunk.sample_rate == 22050
        assert chunk.start_s == pytest.approx(position, abs=1e-6)
        assert chunk.duration_s <= chunk_s + 1e-3
        for timing in chunk.phonemes + chunk.words:  # each chunk carries the timings that overlap it
            assert timing.start_s < chunk.start_s + chunk.duration_s and timing.end_s > chunk.start_s
        position += chunk.duration_s
    phonemes = Utterance(chunks).phonemes()
    assert phonemes[0].start_s >= 0 and phonemes[-1].end_s <= position + 1e-6
    for before, after in itertools.pairwise(phonemes):
        assert before.start_s < before.end_s == pytest.approx(after.start_s)
    words = words_of(chunks)
    for before, after in itertools.pairwise(words):
        assert before.start_s < before.end_s <= after.start_s + 1e-9
    assert words[-1].end_s <= position + 1e-6
    pcm = Utterance(chunks).pcm()
    assert np.abs(pcm).max() <= 1.0 and np.sqrt(np.mean(pcm**2)) > 0.01  # real sound, not silence


@pytest.mark.parametrize(
    ("language", "voice"),
    [
        *[
            ("zh", "cmn"),
            ("zh-CN", "cmn"),
            ("zh_TW", "cmn"),
            ("cmn", "cmn"),
            ("zh-HK", "yue"),
            ("yue", "yue"),
        ],
        *[("en", "en-us"), ("en-US", "en-us"), ("en-GB", "en"), ("fr", "fr"), ("", "en-us")],
    ],
)
def test_voice_for_language(language: str, voice: str) -> None:
    assert voice_for_language(language) == voice


async def test_english_sentence() -> None:
    chunks = await collect(EspeakTTS(chunk_s=0.2), ENGLISH, "en")
    assert_well_timed(chunks, 0.2)
    duration = sum(c.duration_s for c in chunks)
    assert 1.5 < duration < 5
    assert len(chunks) == pytest.approx(duration / 0.2, abs=1)
    assert [w.label for w in words_of(chunks)] == ["Hello", "there", "Mr", "Smith", "How", "are", "you"]
    assert sounding(Utterance(chunks).phonemes())[:4] == ["h", "@", "l", "oU"]
    assert all(c.text == ENGLISH for c in chunks)


async def test_chinese_sentence_is_read_as_mandarin() -> None:
    chunks = await collect(EspeakTTS(), CHINESE, "zh")
    assert_well_timed(chunks, 0.2)
    phonemes = sounding(Utterance(chunks).phonemes())
    assert phonemes[:4] == NI_HAO
    assert len(phonemes) >= 20  # nine syllables, not a few letter names
    assert 1.5 < sum(c.duration_s for c in chunks) < 5
    assert [w.label for w in words_of(chunks)][:2] == ["你好", "今"]


async def test_hanzi_are_never_read_by_an_english_voice() -> None:
    # Debian's espeak-ng reads 你好 with en-us as "Chinese letter, Chinese letter" (tS aI n i: z ...).
    chunks = await collect(EspeakTTS(voice="en-us"), "你好", "en")
    assert sounding(Utterance(chunks).phonemes()) == NI_HAO


async def test_mixed_chinese_and_english() -> None:
    chunks = await collect(EspeakTTS(), "我喜欢 Python 编程，2025年。", "zh")
    assert_well_timed(chunks, 0.2)
    assert [w.label for w in words_of(chunks)] == ["我", "喜", "欢", "Python", "编", "程", "2025", "年"]


async def test_numbers_are_one_word() -> None:
    chunks = await collect(EspeakTTS(), "Version 2.0 costs 3.50 in 2025.", "en")
    assert [w.label for w in words_of(chunks)] == ["Version", "2.0", "costs", "3.50", "in", "2025"]


@pytest.mark.parametrize("text", ["", "   \n ", "...!?", "。，！", "—— …"])
async def test_nothing_to_say_yields_nothing(text: str) -> None:
    assert await collect(EspeakTTS(), text, "en") == []


async def test_rate_changes_the_duration() -> None:
    slow = await collect(EspeakTTS(rate_wpm=100), ENGLISH, "en")
    fast = await collect(EspeakTTS(rate_wpm=300), ENGLISH, "en")
    assert sum(c.duration_s for c in slow) > 1.8 * sum(c.duration_s for c in fast)


async def test_concurrent_voices_do_not_disturb_each_other() -> None:
    english, chinese = EspeakTTS(voice="en-us", pitch=30), EspeakTTS(voice="cmn", rate_wpm=120)
    alone = [
        Utterance(await collect(english, ENGLISH, "en")),
        Utterance(await collect(chinese, CHINESE, "zh")),
    ]
    together = await asyncio.gather(*[collect(english, ENGLISH, "en"), collect(chinese, CHINESE, "zh")] * 3)
    for index, chunks in enumerate(together):
        # espeak varies a few samples from call to call, so compare what was said and how long it took.
        expected = alone[index % 2]
        assert [p.label for p in Utterance(chunks).phonemes()] == [p.label for p in expected.phonemes()]
        assert len(Utterance(chunks).pcm()) == pytest.approx(len(expected.pcm()), rel=0.01)


async def test_long_text_is_synthesized_in_pieces_with_continuous_timings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = []
    real = espeak._synthesize_blocking

    def counting(text: str, *args: object) -> object:
        calls.append(text)
        return real(text, *args)

    monkeypatch.setattr(espeak, "_synthesize_blocking", counting)
    text = " ".join(f"This is sentence {n}, said calmly and clearly." for n in range(30))
    chunks = await collect(EspeakTTS(chunk_s=0.5), text, "en")
    assert len(calls) == 4 and " ".join(calls) == text
    assert_well_timed(chunks, 0.5)
    assert [w.label for w in words_of(chunks)] == [word.strip(",.") for word in text.split()]


async def test_closing_the_stream_starts_no_more_work(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = espeak._synthesize_blocking
    monkeypatch.setattr(
        espeak, "_synthesize_blocking", lambda text, *args: calls.append(text) or real(text, *args)
    )
    text = " ".join(f"This is sentence {n}, said calmly and clearly." for n in range(30))
    stream = EspeakTTS().synthesize(text, "en")
    first = await anext(stream)
    assert first.start_s == 0 and len(calls) == 1
    await stream.aclose()
    await asyncio.sleep(0.05)
    assert len(calls) == 1


async def test_cancelling_the_consumer_stops_promptly() -> None:
    text = " ".join(f"This is sentence {n}, said calmly and clearly." for n in range(60))
    received = []

    async def consume() -> None:
        async for chunk in EspeakTTS().synthesize(text, "en"):
            received.append(chunk)
            await asyncio.sleep(0.01)  # a player taking its time

    task = asyncio.create_task(consume())
    while not received:
        await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    count = len(received)
    await asyncio.sleep(0.05)
    assert len(received) == count < 20
    # The engine is free again for the next turn.
    assert await asyncio.wait_for(collect(EspeakTTS(), "Next turn.", "en"), timeout=5)


def test_an_abort_stops_espeak_in_the_middle_of_a_synthesis() -> None:
    class AbortAfterFirstBuffer(threading.Event):
        """Set from the moment espeak first delivers audio: as if the turn were cancelled right then."""

        checks = 0

        def is_set(self) -> bool:
            self.checks += 1
            return self.checks > 1

    text = "This sentence is long enough that espeak delivers its audio in many separate buffers, one by one."
    whole = espeak._synthesize_blocking(text, "en-us", espeak.Prosody(), threading.Event())
    aborted = espeak._synthesize_blocking(text, "en-us", espeak.Prosody(), AbortAfterFirstBuffer())
    assert len(whole.pcm) > 22050 * 3
    assert 0 < len(aborted.pcm) < len(whole.pcm) / 5


async def test_unknown_voice_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no voice 'xx-nowhere'"):
        await collect(EspeakTTS(voice="xx-nowhere"), "Hello there.", "en")
    with pytest.raises(ConfigError, match="no voice 'xx-nowhere'"):
        await EspeakTTS().warm_up("xx-nowhere")
    await EspeakTTS().warm_up("zh")
    # The engine still works afterwards, with the voice set again.
    assert await collect(EspeakTTS(), "Hello there.", "en")


@pytest.mark.parametrize(
    "options",
    [{"rate_wpm": 20}, {"pitch": 101}, {"chunk_s": 0}, {"pitch_range": -1}, {"word_gap": 51}],
)
def test_bad_parameters_are_config_errors(options: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        EspeakTTS(**options)  # type: ignore[arg-type]


async def test_mandarin_speaks_slower_with_gaps_between_words_unless_set() -> None:
    """The tuned Mandarin prosody (benchmarks/voice_intelligibility.py); English keeps its own."""
    tuned = EspeakTTS("cmn")
    assert tuned.prosody("cmn") == espeak.MANDARIN == espeak.Prosody(rate_wpm=140, pitch_range=30, word_gap=3)
    assert tuned.prosody("en-us") == espeak.Prosody()  # Latin text read by an English voice
    untuned = EspeakTTS("cmn", rate_wpm=165, pitch_range=50, word_gap=0)
    assert untuned.prosody("cmn") == espeak.Prosody()
    slow = sum(c.duration_s for c in await collect(tuned, CHINESE, "zh"))
    fast = sum(c.duration_s for c in await collect(untuned, CHINESE, "zh"))
    assert slow > 1.15 * fast
    assert sounding(Utterance(await collect(tuned, "你好", "zh")).phonemes()) == NI_HAO
