"""The wiring in digihuman.app, in-process: long text through the real voice, and the turn log.

The end-to-end runs of `say`, `chat` and `run` as subprocesses are in tests/test_cli.py and tests/e2e/.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from digihuman.app import TurnLog, make_voice
from digihuman.character import find_character
from digihuman.config import Settings
from digihuman.llm.base import Usage
from digihuman.media import AudioChunk, VideoFrame
from digihuman.metrics import TurnMetrics
from digihuman.turn import Stage, TurnResult, run_turn
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


def _result(turn_id: int, status: str, error: str | None, text: str) -> TurnResult:
    usage = Usage()
    usage.prompt_tokens, usage.completion_tokens = 40, 7
    return TurnResult(
        turn_id=turn_id,
        trigger="user",
        status=status,  # type: ignore[arg-type]
        error=error,
        text_shown=text,
        text_spoken=text,
        metrics=TurnMetrics(),
        usage=usage,
    )


async def test_turn_log_appends_a_json_line_per_turn_and_prints_what_was_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = TurnLog(tmp_path, print_metrics=False, speaker="Ada")
    log(_result(1, "ok", None, "Hello there."))
    log(_result(2, "failed", "cannot reach Ollama", ""))
    records = [json.loads(line) for line in (tmp_path / "turns.jsonl").read_text().splitlines()]
    assert [(r["turn"], r["status"], r["error"]) for r in records] == [
        (1, "ok", None),
        (2, "failed", "cannot reach Ollama"),
    ]
    assert records[0]["usage"]["prompt_tokens"] == 40 and records[0]["usage"]["completion_tokens"] == 7
    out, err = capsys.readouterr()
    assert out == "Ada: Hello there.\n"
    assert err == "digihuman: turn 2 failed: cannot reach Ollama\n"


async def test_turn_log_with_metrics_prints_the_record_and_can_leave_failures_to_the_caller(
    capsys: pytest.CaptureFixture[str],
) -> None:
    log = TurnLog(None, print_metrics=True, report_failures=False)
    log(_result(1, "failed", "the model is missing", ""))
    out, err = capsys.readouterr()
    assert json.loads(out)["error"] == "the model is missing"
    assert err == ""  # `chat --once` ends with this error as its one `digihuman: error:` line instead


class _SlowFace:
    realtime = False

    def __init__(self) -> None:
        self.idle = object()  # stands in for the built-in animator a subprocess face idles with


@pytest.mark.parametrize("audio_first", [False, True])
def test_slow_faces_speak_audio_first_only_when_configured(audio_first: bool) -> None:
    from digihuman.app import Performer

    settings = Settings()
    settings.face.audio_first = audio_first
    face = _SlowFace()
    performer = Performer(find_character("ada"), settings, tts=object(), face=face)  # type: ignore[arg-type]
    stage = performer.stage()
    assert stage.fallback_face is (face.idle if audio_first else None)
    assert stage.lookahead == settings.tts.lookahead and stage.language == "en"
