"""The turn engine: ordering with look-ahead, one timeline, cancellation, heard text, metrics, slow faces."""

from __future__ import annotations

import asyncio
import time

import pytest

from digihuman.clock import run_virtual
from digihuman.heard import heard_prefix, join_text
from digihuman.llm.base import LLMError, Usage
from digihuman.media import Timing
from digihuman.testing.fakes import FakeSink, Reply, ScriptedFace, ScriptedLLM, ScriptedTTS
from digihuman.tts.clean import clean_for_speech
from digihuman.turn import Stage, Turn, run_turn

FIVE = "The cat sat down. It looked at me. Then it slept. The sun was warm. We all went home."


def sentence_spans(sink: FakeSink, turn_id: int) -> list[tuple[str, float, float]]:
    """(text, start, end) per sentence as the sink saw it, in arrival order."""
    spans: list[tuple[str, float, float]] = []
    for chunk in sink.audio(turn_id):
        if spans and spans[-1][0] == chunk.text:
            spans[-1] = (chunk.text, spans[-1][1], chunk.end_s)
        else:
            spans.append((chunk.text, chunk.start_s, chunk.end_s))
    return spans


def test_sentences_synthesized_concurrently_but_delivered_in_order_on_one_timeline() -> None:
    # Sentence 0 is slow to synthesize; sentences 1 and 2 finish first but must wait their turn.
    tts = ScriptedTTS(latency=lambda text: 1.0 if text.startswith("The cat") else 0.05)
    face, sink = ScriptedFace(), FakeSink()
    stage = Stage(tts=tts, sinks=[sink], face=face, lookahead=2)

    async def main() -> None:
        result = await run_turn(FIVE, stage, turn_id=7)
        assert result.status == "ok" and result.turn_id == 7
        assert result.text_spoken == FIVE
        assert result.sentences == 5

    run_virtual(main())
    assert tts.calls[1].ended_at < tts.calls[0].ended_at  # synthesized ahead, concurrently
    spans = sentence_spans(sink, 7)
    assert [text for text, _, _ in spans] == [
        "The cat sat down.",
        "It looked at me.",
        "Then it slept.",
        "The sun was warm.",
        "We all went home.",
    ]
    end = 0.0
    for text, start, stop in spans:  # continuous: each sentence starts where the previous one ended
        assert start == pytest.approx(end)
        assert stop - start == pytest.approx(tts.duration(text))
        end = stop
    assert {w.turn_id for w in sink.written} == {7}
    frames = sink.frames(7)
    assert [f.start_s for f in frames] == sorted(f.start_s for f in frames)
    assert frames[-1].start_s < end <= frames[-1].start_s + 1 / face.fps + 1e-9
    assert not sink.stale


@pytest.mark.parametrize("lookahead", [1, 2, 3])
def test_lookahead_bounds_concurrent_synthesis(lookahead: int) -> None:
    tts = ScriptedTTS(first_audio_s=0.5)
    stage = Stage(tts=tts, sinks=[FakeSink()], face=ScriptedFace(), lookahead=lookahead)
    result = run_virtual(run_turn(FIVE, stage))
    assert result.status == "ok"
    assert tts.activity.max_active == lookahead + 1


def test_delivery_is_paced_by_playback() -> None:
    # A TTS far faster than real time still leaves at most buffer_ahead_s (plus one chunk) in the sink.
    sink, tts = FakeSink(), ScriptedTTS(rtf=0.0)
    stage = Stage(tts=tts, sinks=[sink], face=ScriptedFace(), buffer_ahead_s=1.0)
    result = run_virtual(run_turn(FIVE * 3, stage))
    assert result.status == "ok"
    assert 1.0 <= sink.max_queued_s <= 1.0 + tts.chunk_s + 1e-6


async def test_task_cancel_stops_all_work_within_100ms_and_nothing_stale_plays() -> None:
    # Real clock: a slow LLM still streaming, TTS and face busy, audio playing.
    llm = ScriptedLLM([Reply(FIVE * 4, first_token_s=0.05, token_interval_s=0.03)])
    tts = ScriptedTTS(first_audio_s=0.05, rtf=0.5, chunk_s=0.1)
    face, sink = ScriptedFace(), FakeSink()
    usage = Usage()
    turn = Turn(3, llm.stream([], usage), Stage(tts=tts, sinks=[sink], face=face), usage=usage)
    task = asyncio.create_task(turn.run())
    while sink.played_s(3) < 0.3:
        await asyncio.sleep(0.01)
    assert llm.activity.active == 1 and tts.activity.active >= 1 and face.activity.active == 1
    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    stopped_s = time.monotonic() - cancelled_at
    assert stopped_s < 0.1
    assert llm.activity.active == 0 and tts.activity.active == 0 and face.activity.active == 0
    assert llm.calls[0].cancelled
    assert [turn_id for _, turn_id, _ in sink.cancels] == [3]
    await asyncio.sleep(0.3)
    assert sink.written_after(sink.cancels[0][0], 3) == []
    assert turn.result is not None and turn.result.status == "cut"
    assert FIVE.startswith(turn.result.text_spoken[:20])


def test_turn_cancel_returns_a_cut_result_with_exactly_the_heard_words() -> None:
    text = "One two three four. Five six seven eight."
    tts = ScriptedTTS(first_audio_s=0.1, seconds_per_char=0.1)
    sink = FakeSink()
    turn = Turn(1, text, Stage(tts=tts, sinks=[sink], face=ScriptedFace()))

    async def main() -> None:
        task = asyncio.create_task(turn.run())
        # Audio starts at 0.1 s; sentence one lasts 1.9 s; 1.0 s into sentence two "Five six" was played.
        await asyncio.sleep(0.1 + 1.9 + 1.0)
        turn.cancel()
        result = await task
        assert result.status == "cut"
        assert result.heard_s == pytest.approx(2.9)
        assert result.text_spoken == "One two three four. Five six"
        assert result.text_shown == text

    run_virtual(main())
    assert len(sink.cancels) == 1
    assert tts.word_timings("Five six seven eight.")[1] == Timing("six", 0.5, 0.8)


def test_without_word_timings_heard_text_is_proportional_and_whole_words() -> None:
    text = "One two three four. Five six seven eight."
    turn = Turn(1, text, Stage(tts=ScriptedTTS(seconds_per_char=0.1, words=False), sinks=[FakeSink()]))

    async def main() -> None:
        task = asyncio.create_task(turn.run())
        await asyncio.sleep(0.1 + 1.9 + 1.25)  # 1.25 of 2.1 s: 12 of 21 characters: "Five six sev"
        turn.cancel()
        assert (await task).text_spoken == "One two three four. Five six"

    run_virtual(main())


def test_cancel_before_start_and_after_the_end() -> None:
    async def main() -> None:
        sink = FakeSink()
        early = Turn(1, FIVE, Stage(tts=ScriptedTTS(), sinks=[sink]))
        early.cancel()
        result = await early.run()
        assert result.status == "cut" and result.text_spoken == "" and not sink.written
        done = Turn(2, "Short and sweet.", Stage(tts=ScriptedTTS(), sinks=[sink]))
        assert (await done.run()).status == "ok"
        done.cancel()  # too late: nothing happens
        assert done.result is not None and done.result.status == "ok"

    run_virtual(main())


def test_heard_prefix_mapping() -> None:
    words = (Timing("Hello", 0.0, 0.4), Timing("brave", 0.5, 0.9), Timing("world", 1.0, 1.4))
    assert heard_prefix("Hello, brave world!", 0.95, 1.5, words) == "Hello, brave"
    assert heard_prefix("Hello, brave world!", 0.3, 1.5, words) == ""
    assert heard_prefix("Hello, brave world!", 1.5, 1.5, words) == "Hello, brave world!"
    # Labels that do not occur in the text (a normalizing TTS): proportional instead.
    assert heard_prefix("Hello brave world", 1.0, 2.0, (Timing("HELO", 0, 0.4),)) == "Hello"
    # Chinese has no spaces: whole characters.
    assert heard_prefix("你好世界。", 1.0, 2.5) == "你好"
    # Phonemes give the span actually spoken (leading silence does not count).
    phonemes = (Timing("h", 1.0, 1.5), Timing("i", 1.5, 2.0))
    assert heard_prefix("ab cd", 1.5, 2.0, (), phonemes) == "ab"


def test_join_text() -> None:
    assert join_text(["Hi there.", " How are you? ", ""]) == "Hi there. How are you?"
    assert join_text(["你好。", "今天好吗？"]) == "你好。今天好吗？"
    assert join_text(["你好。", "OK."]) == "你好。OK."


def test_metrics_are_stamped_at_each_milestone() -> None:
    llm = ScriptedLLM([Reply("Good morning to you. The weather is fine.", 0.3, 0.02)])
    tts = ScriptedTTS(first_audio_s=0.2)
    stage = Stage(tts=tts, sinks=[FakeSink()], face=ScriptedFace())

    async def main() -> None:
        usage = Usage()
        result = await run_turn(llm.stream([], usage), stage, usage=usage)
        m = result.metrics
        assert m.llm_first_token_s == pytest.approx(0.3)
        assert m.first_sentence_s == pytest.approx(0.3 + 4 * 0.02)  # "Good morning to you." + next delta
        assert m.tts_first_audio_s == pytest.approx(m.first_sentence_s + 0.2)
        assert m.first_frame_s == pytest.approx(m.tts_first_audio_s)
        assert m.first_audio_played_s == pytest.approx(m.tts_first_audio_s)
        assert m.llm_done_s == pytest.approx(0.3 + 7 * 0.02)
        assert m.total_s == pytest.approx(m.first_audio_played_s + result.audio_s)
        assert result.usage.completion_tokens == 8

    run_virtual(main())


def test_say_text_has_no_llm_metrics() -> None:
    result = run_virtual(run_turn("Just this.", Stage(tts=ScriptedTTS(), sinks=[FakeSink()])))
    assert result.metrics.llm_first_token_s is None and result.metrics.llm_done_s is None
    assert result.metrics.first_frame_s is None  # no face
    assert result.metrics.total_s is not None


def test_slow_face_renders_the_next_sentence_while_the_current_one_plays() -> None:
    face = ScriptedFace(realtime=False, render_s_per_audio_s=0.5)
    tts, sink = ScriptedTTS(first_audio_s=0.1, rtf=0.1), FakeSink()
    result = run_virtual(run_turn(FIVE, Stage(tts=tts, sinks=[sink], face=face)))
    assert result.status == "ok" and result.text_spoken == FIVE
    assert face.activity.max_active == 1  # one render at a time
    playing = sink.turns[1]
    assert playing.first_played_at is not None
    first_render_done = face.calls[0].ended_at
    assert first_render_done is not None
    # Nothing is written while the first sentence renders (the sink shows the idle face meanwhile).
    assert min(w.at for w in sink.written) == pytest.approx(first_render_done)
    first_duration = tts.duration("The cat sat down.")
    assert face.calls[1].started_at < playing.first_played_at + first_duration
    # Rendering ahead keeps up, so the timeline has no gaps: the turn lasts its audio plus the first render.
    assert result.metrics.total_s == pytest.approx(result.metrics.first_audio_played_s + result.audio_s)
    assert len(sink.frames(1)) == sum(c.frames for c in face.calls)


@pytest.mark.parametrize(("render_rate", "fallback_sentences"), [(3.0, 5), (0.3, 1)])
def test_fallback_face_lets_audio_start_before_the_slow_face_is_ready(
    render_rate: float, fallback_sentences: int
) -> None:
    # 3.0: the slow face never keeps up, so every sentence falls back and its render is cancelled;
    # 0.3: only the first sentence falls back (audio first), the slow face renders the rest ahead.
    slow = ScriptedFace(realtime=False, render_s_per_audio_s=render_rate)
    fallback, sink = ScriptedFace(realtime=True), FakeSink()
    stage = Stage(tts=ScriptedTTS(first_audio_s=0.1), sinks=[sink], face=slow, fallback_face=fallback)
    result = run_virtual(run_turn(FIVE, stage))
    assert result.status == "ok" and result.text_spoken == FIVE
    assert result.metrics.first_audio_played_s == pytest.approx(result.metrics.tts_first_audio_s)
    # No gaps: audio plays straight through.
    assert result.metrics.total_s == pytest.approx(result.metrics.first_audio_played_s + result.audio_s)
    assert len(fallback.calls) == fallback_sentences
    finished = [c for c in slow.calls if not c.cancelled]
    assert len(finished) == 5 - fallback_sentences
    assert slow.activity.active == 0


def test_long_say_text_is_spoken_whole_in_bounded_sentences() -> None:
    words = [f"word{i % 97}" for i in range(900)]
    text = ", ".join(" ".join(words[i : i + 9]) for i in range(0, len(words), 9)) + "."
    assert len(text) > 5000
    tts = ScriptedTTS(seconds_per_char=0.01)
    result = run_virtual(run_turn(text, Stage(tts=tts, sinks=[FakeSink()], face=ScriptedFace())))
    assert result.status == "ok"
    assert result.text_spoken.split() == clean_for_speech(text).split()
    assert len(tts.calls) >= 900 // 60
    assert max(len(call.text.split()) for call in tts.calls) <= 60


def test_llm_failure_mid_reply_speaks_the_complete_sentences_and_reports_failed() -> None:
    llm = ScriptedLLM(
        [Reply("First sentence here. Second one is cut", error=LLMError("boom"), error_after=5)]
    )
    sink = FakeSink()

    async def main() -> None:
        result = await run_turn(llm.stream([]), Stage(tts=ScriptedTTS(), sinks=[sink]))
        assert result.status == "failed" and result.error == "boom"
        assert result.text_spoken == "First sentence here."

    run_virtual(main())
    assert not sink.cancels and sink.turns[1].ended


def test_tts_failure_fails_the_turn_after_what_was_spoken() -> None:
    tts, sink = ScriptedTTS(fail_on="slept"), FakeSink()
    result = run_virtual(run_turn(FIVE, Stage(tts=tts, sinks=[sink], face=ScriptedFace())))
    assert result.status == "failed" and "scripted TTS failure" in (result.error or "")
    assert result.text_spoken == "The cat sat down. It looked at me."
    assert not sink.cancels and sink.turns[1].ended  # what was delivered played to its end


def test_a_new_turn_after_a_cut_one_gets_only_its_own_chunks() -> None:
    sink = FakeSink()
    stage = Stage(tts=ScriptedTTS(), sinks=[sink], face=ScriptedFace())

    async def main() -> None:
        first = asyncio.create_task(run_turn(FIVE, stage, turn_id=1))
        await asyncio.sleep(1.0)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        second = await run_turn("A new reply.", stage, turn_id=2)
        assert second.status == "ok"

    run_virtual(main())
    cancelled_at = sink.cancels[0][0]
    assert all(w.turn_id == 2 for w in sink.written if w.at > cancelled_at)
    assert not sink.stale
    assert next(t.text for t in sink.audio(2)) == "A new reply."
