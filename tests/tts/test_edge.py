"""edge-tts adapter against a stand-in `edge_tts` module that yields real MP3 bytes and word boundaries."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from digihuman.errors import BackendError, MissingExtraError
from digihuman.tts.edge import EdgeTTS, default_voice

STAND_IN = Path(__file__).parent / "fake_edge_tts"
SENTENCE = "Hello there my friend"


@pytest.fixture
def edge_tts(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.syspath_prepend(str(STAND_IN))
    for name in [m for m in sys.modules if m == "edge_tts" or m.startswith("edge_tts.")]:
        monkeypatch.delitem(sys.modules, name)
    import edge_tts

    yield edge_tts
    for name in [m for m in sys.modules if m == "edge_tts" or m.startswith("edge_tts.")]:
        del sys.modules[name]


async def speak(tts: EdgeTTS, text: str = SENTENCE, language: str = "en") -> list:
    return [chunk async for chunk in tts.synthesize(text, language)]


async def test_streams_decoded_audio_with_word_timings(edge_tts) -> None:
    edge_tts.state.message_delay_s = 0.0
    chunks = await speak(EdgeTTS(voice="en-US-AriaNeural", rate="+10%"))
    communicate = edge_tts.state.communicates[-1]
    assert (communicate.voice, communicate.rate, communicate.boundary) == (
        "en-US-AriaNeural",
        "+10%",
        "WordBoundary",
    )
    assert len(chunks) >= 3 and {c.sample_rate for c in chunks} == {24000}
    pcm = np.concatenate([c.pcm for c in chunks])
    assert pcm.dtype == np.float32 and np.abs(pcm).max() > 0.2
    expected_s = sum(edge_tts.word_seconds(w) + edge_tts.WORD_GAP_S for w in SENTENCE.split())
    assert expected_s <= len(pcm) / 24000 <= expected_s + 0.15  # plus MP3 encoder delay and padding
    starts = [c.start_s for c in chunks]
    assert starts == sorted(starts) and starts[0] == 0.0
    words = [w for c in chunks for w in c.words]
    assert [w.label for w in words] == SENTENCE.split()
    assert words[0].start_s == 0.0
    assert words[1].start_s == pytest.approx(edge_tts.word_seconds("Hello") + edge_tts.WORD_GAP_S)
    assert all(w.end_s > w.start_s for w in words)
    assert all(c.text == SENTENCE for c in chunks)


async def test_voice_follows_language_unless_set(edge_tts) -> None:
    await speak(EdgeTTS(), "你好 世界", "zh")
    assert edge_tts.state.communicates[-1].voice == "zh-CN-XiaoxiaoNeural"
    await speak(EdgeTTS(voice="en-GB-SoniaNeural"), "你好", "zh")
    assert edge_tts.state.communicates[-1].voice == "en-GB-SoniaNeural"
    assert default_voice("zh-CN") == "zh-CN-XiaoxiaoNeural" and default_voice("xx") == "en-US-AriaNeural"


async def test_offline_is_a_clear_error(edge_tts) -> None:
    edge_tts.state.online = False
    with pytest.raises(BackendError, match="needs internet access") as info:
        await speak(EdgeTTS())
    assert "speech.platform.bing.com" in str(info.value)


async def test_unknown_voice_gives_no_audio(edge_tts) -> None:
    with pytest.raises(BackendError, match=r"no audio for voice 'en-US-NobodyNeural'.*internet"):
        await speak(EdgeTTS(voice="en-US-NobodyNeural"))


def test_bad_parameters_fail_at_construction(edge_tts) -> None:
    with pytest.raises(ValueError, match="Invalid rate"):
        EdgeTTS(rate="fast")
    with pytest.raises(ValueError, match="Invalid voice"):
        EdgeTTS(voice="Aria")


async def test_cancelling_stops_the_stream(edge_tts) -> None:
    edge_tts.state.message_delay_s = 0.02
    stream = EdgeTTS().synthesize("one two three four five six seven eight nine ten", "en")
    await anext(stream)
    sent = edge_tts.state.messages_sent
    await stream.aclose()
    assert edge_tts.state.streams_closed == 1
    assert edge_tts.state.messages_sent == sent


async def test_empty_text(edge_tts) -> None:
    assert await speak(EdgeTTS(), " ") == []
    assert len(edge_tts.state.communicates) == 1  # only the construction-time check


def test_missing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "edge_tts", None)  # import fails like an absent package
    with pytest.raises(MissingExtraError, match=r"digihuman\[edge\]"):
        EdgeTTS()
