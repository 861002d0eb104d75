"""The performer, in-process: long text through the real voice, and slow faces' audio-first option.

The end-to-end runs of `say`, `chat` and `run` as subprocesses are in tests/test_cli.py and tests/e2e/.
"""

from __future__ import annotations

import random

import pytest

from digihuman.character import find_character
from digihuman.config import Settings
from digihuman.media import AudioChunk, VideoFrame
from digihuman.performer import Performer, make_voice
from digihuman.turn import Stage, run_turn
from tests.e2e.support import words


class CountingSink:
    """Counts what a turn delivers; its clock is 'all of it played', so the turn runs flat out."""

    def __init__(self) -> None:
        self.chunks: list[AudioChunk] = []
        self.frames = 0
        self.turns: list[int] = []

    def begin_turn(self, turn_id: int) -> None:
        self.turns.append(turn_id)

    async def write_audio(self, chunk: AudioChunk) -> None:
        self.chunks.append(chunk)

    async def write_frame(self, frame: VideoFrame) -> None:
        self.frames += 1

    async def end_turn(self, turn_id: int) -> None:
        pass

    def cancel_turn(self, turn_id: int) -> float:
        return self.played_s(turn_id)

    def played_s(self, turn_id: int) -> float:
        return sum(chunk.duration_s for chunk in self.chunks)

    async def aclose(self) -> None:
        pass


SCENE = (
    "the river runs past an old mill where children play and people walk their dogs every morning "
    "before work while the baker opens his shop and the sun climbs over seven green hills"
)


def long_text(min_chars: int = 5000) -> str:
    """Mixed sentences (statements, questions, exclamations, long ones with commas), at least `min_chars`."""
    rng = random.Random(7)
    vocabulary = SCENE.split()
    sentences: list[str] = []
    while sum(len(s) + 1 for s in sentences) < min_chars:
        body = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(4, 40)))
        ending = rng.choice([".", "?", "!", "."])
        if len(body) > 120:  # a long sentence with a pause in it
            cut = body.index(" ", 60)
            body = body[:cut] + "," + body[cut:]
        sentences.append(body[0].upper() + body[1:] + ending)
    return " ".join(sentences)


@pytest.mark.slow
async def test_a_5000_character_text_is_spoken_whole_in_chunks() -> None:
    text = long_text()
    assert len(text) >= 5000
    settings = Settings()
    tts = make_voice(find_character("ada"), settings)  # what `say` uses: the espeak voice
    sink = CountingSink()
    try:
        result = await run_turn(text, Stage(tts=tts, sinks=[sink], face=None, language="en"))
    finally:
        await tts.aclose()

    assert result.status == "ok", result.error
    assert words(result.text_spoken) == words(text)  # nothing truncated, nothing dropped
    assert result.sentences > 20  # spoken sentence by sentence, not in one call
    audio_s = sum(chunk.duration_s for chunk in sink.chunks)
    assert result.audio_s == pytest.approx(audio_s, abs=0.05)
    # espeak speaks about 175 words a minute; allow a wide band around it.
    minutes = len(words(text)) / 175
    assert 0.6 * minutes * 60 < audio_s < 1.6 * minutes * 60
    # One continuous timeline: every chunk starts where the previous one ended.
    position = 0.0
    for chunk in sink.chunks:
        assert chunk.start_s == pytest.approx(position, abs=0.01)
        position = chunk.start_s + chunk.duration_s


class _SlowFace:
    realtime = False

    def __init__(self) -> None:
        self.idle = object()  # stands in for the built-in animator a subprocess face idles with


@pytest.mark.parametrize("audio_first", [False, True])
def test_slow_faces_speak_audio_first_only_when_configured(audio_first: bool) -> None:
    settings = Settings()
    settings.face.audio_first = audio_first
    face = _SlowFace()
    performer = Performer(find_character("ada"), settings, tts=object(), face=face)  # type: ignore[arg-type]
    assert performer.fallback_face is (face.idle if audio_first else None)
