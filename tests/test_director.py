"""The Director's policy, on a virtual clock: when it speaks, what it drops, and an hour-long soak."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest

from digihuman.clock import run_virtual
from digihuman.config import DirectorSettings
from digihuman.director import Director
from digihuman.llm.base import LLMError, Message
from digihuman.llm.memory import CAMERA_TAG, ConversationMemory
from digihuman.testing.fakes import FakeSink, Reply, ScriptedFace, ScriptedLLM, ScriptedTTS
from digihuman.turn import Stage, TurnResult
from digihuman.vision.camera import CameraFrame
from digihuman.vision.scene import SceneEvent

SILENT = "<silent>"
REMARK = "I see something new. It looks interesting."


def frame(t: float) -> CameraFrame:
    return CameraFrame(t, np.zeros((2, 2, 3), np.uint8), f"jpeg@{t:.1f}".encode())


def is_proactive(messages: Sequence[Message]) -> bool:
    return messages[-1].content.startswith(CAMERA_TAG)


@dataclass
class Harness:
    llm: ScriptedLLM
    tts: ScriptedTTS
    sink: FakeSink
    memory: ConversationMemory
    director: Director
    results: list[TurnResult] = field(default_factory=list)
    says: list[float] = field(default_factory=list)

    def say(self, text: str) -> None:
        self.says.append(asyncio.get_running_loop().time())
        self.director.say(text)

    def scene(self, kind: str) -> None:
        t = asyncio.get_running_loop().time()
        self.director.on_scene(SceneEvent(kind, t, 0.5, frame(t)))  # type: ignore[arg-type]

    def proactive_calls(self) -> list[float]:
        return [c.started_at for c in self.llm.calls if is_proactive(c.messages)]


def make(
    script: Sequence[Reply] | Callable[[int, Sequence[Message]], Reply],
    *,
    greet: bool = True,
    face: bool = False,
    **settings: float,
) -> Harness:
    llm, tts, sink = ScriptedLLM(script), ScriptedTTS(first_audio_s=0.2), FakeSink()
    memory = ConversationMemory("You are Ada.", max_exchanges=6)
    stage = Stage(tts=tts, sinks=[sink], face=ScriptedFace() if face else None)
    director = Director(llm, stage, memory, DirectorSettings(**settings), greet=greet)
    harness = Harness(llm, tts, sink, memory, director)
    director.on_turn = harness.results.append
    return harness


async def drive(
    h: Harness,
    until_s: float,
    schedule: Sequence[tuple[float, Callable[[], None]]] = (),
    frames_every_s: float | None = 0.5,
) -> None:
    """Run the director for `until_s` virtual seconds, calling each scheduled input at its time."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for at, action in schedule:
        loop.call_at(start + at, action)

    async def camera() -> None:
        while True:
            h.director.observe(frame(loop.time()))
            await asyncio.sleep(frames_every_s or 0)

    feeder = asyncio.create_task(camera()) if frames_every_s else None
    runner = asyncio.create_task(h.director.run())
    await asyncio.sleep(until_s)
    h.director.stop()
    await runner
    if feeder is not None:
        feeder.cancel()


def test_greets_at_start_then_stays_quiet_while_static_except_once_per_static_gap() -> None:
    h = make([Reply(REMARK, first_token_s=1.0)])
    run_virtual(drive(h, 1800))
    calls = h.proactive_calls()
    assert len(calls) == 3 and calls[0] == 0.0
    ends = sorted(r.metrics.started_at + (r.metrics.total_s or 0) for r in h.results)
    assert calls[1] == pytest.approx(ends[0] + 600) and calls[2] == pytest.approx(ends[1] + 600)
    assert "Greet the user" in h.llm.calls[0].messages[-1].content
    assert h.director.stats.spoken == 3


def test_without_a_camera_only_the_greeting() -> None:
    h = make([Reply(REMARK)])
    run_virtual(drive(h, 1800, frames_every_s=None))
    assert len(h.llm.calls) == 1


def test_scene_change_speaks_once_the_cooldown_has_passed() -> None:
    h = make([Reply(REMARK, first_token_s=1.0)], min_gap_s=20)
    run_virtual(
        drive(h, 200, [(10, lambda: h.scene("scene_changed")), (100, lambda: h.scene("someone_arrived"))])
    )
    calls = h.proactive_calls()
    greeting_end = h.results[0].metrics.started_at + (h.results[0].metrics.total_s or 0)
    assert calls == [0.0, pytest.approx(greeting_end + 20), 100.0]
    assert "Someone just came into view" in h.llm.calls[2].messages[-1].content
    assert [m.images for m in h.llm.calls[2].messages[-1:]] == [(b"jpeg@99.0", b"jpeg@99.5", b"jpeg@100.0")]


def test_triggers_arriving_during_a_request_collapse_into_one_round_latest_wins() -> None:
    h = make([Reply(REMARK, first_token_s=5.0)], greet=False, min_gap_s=20)
    kinds = [
        "scene_changed",
        "someone_arrived",
        "scene_changed",
        "someone_left",
        "scene_changed",
        "someone_left",
    ]
    schedule = [(50 + i, lambda kind=kind: h.scene(kind)) for i, kind in enumerate(kinds)]
    run_virtual(drive(h, 300, schedule))
    calls = h.proactive_calls()
    assert len(calls) == 2 and calls[0] == 50.0
    assert h.director.stats.replaced == 4  # five later events, one slot
    assert h.director.stats.superseded == 1  # the first reply describes a scene that changed again
    assert [r.trigger for r in h.results] == ["proactive"]  # one remark, about the latest scene
    assert "Someone just left" in h.llm.calls[1].messages[-1].content
    assert h.director.stats.max_in_flight == 1 and h.llm.activity.max_active == 1


def test_the_model_may_choose_silence_even_split_across_deltas() -> None:
    replies = [Reply(deltas=[" <sil", "ent>"]), Reply(SILENT), Reply(f"Nice hat! {SILENT}")]
    h = make(replies, greet=True, min_gap_s=20)
    run_virtual(
        drive(h, 200, [(50, lambda: h.scene("scene_changed")), (100, lambda: h.scene("scene_changed"))])
    )
    assert h.director.stats.rounds == 3 and h.director.stats.silent == 2
    assert [r.text_spoken for r in h.results] == ["Nice hat!"]  # the token is never spoken
    assert len(h.memory) == 2  # silent rounds leave no trace
    assert h.director.cost.total().calls == 3


def test_a_reply_older_than_max_age_is_dropped() -> None:
    h = make([Reply(REMARK, first_token_s=16.0), Reply(REMARK, first_token_s=14.0)], max_age_s=15)
    run_virtual(drive(h, 120, [(60, lambda: h.scene("scene_changed"))]))
    assert h.director.stats.stale == 1 and h.director.stats.spoken == 1
    assert len(h.results) == 1 and h.results[0].metrics.started_at == 60.0
    assert len(h.sink.begun) == 1


def test_user_text_cuts_a_proactive_remark_and_memory_keeps_what_was_heard() -> None:
    def script(i: int, messages: Sequence[Message]) -> Reply:
        return Reply(REMARK, first_token_s=1.0) if is_proactive(messages) else Reply("Sure thing.")

    h = make(script, face=True)
    run_virtual(drive(h, 60, [(1.0 + 0.2 + 1.5, lambda: h.say("Wait, look at me."))]))
    proactive, answer = h.results
    assert proactive.trigger == "proactive" and proactive.status == "cut"
    assert answer.trigger == "user" and answer.status == "ok" and answer.text_spoken == "Sure thing."
    assert proactive.text_spoken == "I see something new. It"  # 1.5 s of 2.5 s, whole words
    cut_at = h.sink.cancels[0][0]
    assert cut_at == pytest.approx(h.says[0])  # silent the moment the user typed
    assert h.sink.written_after(cut_at, proactive.turn_id) == [] and not h.sink.stale
    assert [(e.role, e.content) for e in h.memory.entries] == [
        ("user", "[camera] The session started."),
        ("assistant", proactive.text_spoken),
        ("user", "Wait, look at me."),
        ("assistant", "Sure thing."),
    ]
    assert h.director.stats.spoken == 1 and h.director.stats.user_turns == 1


def test_user_text_during_a_camera_request_drops_it_unspoken() -> None:
    def script(i: int, messages: Sequence[Message]) -> Reply:
        return (
            Reply(REMARK, first_token_s=5.0) if is_proactive(messages) else Reply("Hello!", first_token_s=0.5)
        )

    h = make(script)
    run_virtual(drive(h, 60, [(2.0, lambda: h.say("Hi"))]))
    assert h.llm.calls[0].cancelled and h.llm.calls[0].ended_at == 2.0
    assert h.director.stats.superseded == 1 and h.director.stats.spoken == 0
    assert [r.trigger for r in h.results] == ["user"]
    assert h.results[0].metrics.llm_first_token_s == pytest.approx(0.5)
    assert h.llm.calls[1].messages[-1].images  # the user turn sees the camera too


def test_user_text_barges_in_on_a_user_reply() -> None:
    h = make([Reply("One two three four five. Six seven eight nine ten.", first_token_s=0.1)], greet=False)
    run_virtual(drive(h, 30, [(1.0, lambda: h.say("First")), (2.5, lambda: h.say("Second"))]))
    first, second = h.results
    assert first.status == "cut" and second.status == "ok"
    assert h.llm.activity.max_active == 1


def test_a_failed_round_is_logged_and_the_companion_carries_on() -> None:
    replies = [Reply(error=LLMError("model not found"), first_token_s=0.5), Reply(REMARK)]
    h = make(replies, min_gap_s=20)
    run_virtual(drive(h, 100, [(50, lambda: h.scene("someone_arrived"))]))
    assert h.director.stats.failed == 1 and h.director.stats.spoken == 1
    assert h.proactive_calls() == [0.0, 50.0]


def test_soak_one_hour_of_camera_input() -> None:
    """18 scene changes (each a burst of 4 events 2 s apart) in an hour; the VLM answers in 5 s (slower than
    the events) or, on every 7th call, in 18 s (stale); every 5th call chooses silence; one remark lasts 30 s;
    the user interrupts a camera request once and a camera remark once. The policy predicts every count:
    per burst, the first round is superseded by the burst's later events and the second (after the
    cooldown) speaks about the settled scene."""
    proactive_index = 0
    h: Harness

    def script(i: int, messages: Sequence[Message]) -> Reply:
        nonlocal proactive_index
        loop = asyncio.get_running_loop()
        if not is_proactive(messages):
            return Reply("Sure. Let me tell you.", first_token_s=1.0)
        index, proactive_index = proactive_index, proactive_index + 1
        assert sum(len(m.images) for m in messages) <= 3
        assert len(messages) <= 2 + 2 * h.memory.max_exchanges
        if index == 8:
            loop.call_later(2.0, h.say, "What was that?")  # during the request: superseded
        if index == 12:
            loop.call_later(5.0 + 0.2 + 1.0, h.say, "Tell me more.")  # one second into the remark: cut
        if index == 22:  # a 30 s remark: the next trigger falls due while it plays, and must wait
            return Reply(" ".join([REMARK] * 12), first_token_s=5.0)
        if index % 7 == 3:
            return Reply(REMARK, first_token_s=18.0)
        if index % 5 == 4:
            return Reply(SILENT, first_token_s=5.0)
        return Reply(REMARK, first_token_s=5.0)

    h = make(script, face=True, min_gap_s=20, static_gap_s=600, max_age_s=15)
    changes = [90.0 + 200 * k for k in range(18)]
    kinds = ["scene_changed", "someone_arrived", "scene_changed", "scene_changed"]
    schedule = [(t + 2 * j, lambda kind=kind: h.scene(kind)) for t in changes for j, kind in enumerate(kinds)]
    started = time.perf_counter()
    run_virtual(drive(h, 3600, schedule))
    assert time.perf_counter() - started < 10

    stats = h.director.stats
    rounds = 1 + 2 * len(changes)  # the greeting, then per burst: a round now, one after the cooldown
    # Odd rounds start with a burst, so newer events supersede them (silence is decided first); even
    # rounds run on the settled scene. Round 8 is dropped for user text.
    outcomes = []
    for i in range(rounds):
        scripted = "stale" if i % 7 == 3 else "silent" if i % 5 == 4 else "remark"
        if i % 2 == 1:
            outcomes.append("silent" if scripted == "silent" else "superseded")
        else:
            outcomes.append("superseded" if i == 8 and scripted == "remark" else scripted)
    assert (stats.rounds, stats.stale, stats.silent, stats.superseded, stats.failed) == (
        rounds,
        outcomes.count("stale"),
        outcomes.count("silent"),
        outcomes.count("superseded"),
        0,
    )
    assert stats.spoken == outcomes.count("remark") > 10
    assert stats.user_turns == 2 and stats.replaced == 2 * len(changes)  # T+4 and T+6 replace T+2

    # One turn at a time, and zero overlapping model requests.
    turns = sorted((t.begun_at, t.ended_at or 0) for t in h.sink.turns.values())
    assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(turns))
    assert max(end - start for start, end in turns) > 25
    assert h.llm.activity.max_active == 1 and stats.max_in_flight == 1
    spans = sorted((c.started_at, c.ended_at or 0) for c in h.llm.calls)
    assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(spans))

    # Zero stale replies spoken: each remark started within max_age of its frames, with no user text between.
    proactive = [r for r in h.results if r.trigger == "proactive"]
    assert len(proactive) == stats.spoken
    for result in proactive:
        assert result.metrics.llm_first_token_s is not None and result.metrics.llm_first_token_s <= 15
        first_audio = result.metrics.started_at + (result.metrics.first_audio_played_s or 0)
        assert not [t for t in h.says if result.metrics.started_at < t < first_audio]
        assert not [t for t, _ in schedule if result.metrics.started_at < t < first_audio]  # not superseded
    assert [r.status for r in proactive].count("cut") == 1
    for _, turn_id, _ in h.sink.cancels:
        assert h.sink.written_after(h.sink.cancels[0][0], turn_id) == []
    assert not h.sink.stale

    # The cooldown held: every round after the greeting started min_gap_s after the previous activity.
    activity_ends = [c.ended_at or 0 for c in h.llm.calls] + h.says
    activity_ends += [t.ended_at for t in h.sink.turns.values() if t.ended_at is not None]
    for start in h.proactive_calls()[1:]:
        assert start - max(t for t in activity_ends if t <= start) >= 20 - 1e-6

    # Bounded memory and queues.
    assert len(h.memory) <= 2 * h.memory.max_exchanges
    assert h.sink.max_queued_s <= h.director.stage.buffer_ahead_s + h.tts.chunk_s + 1e-6
    assert not h.director._pending_user and h.director._pending_trigger is None
    assert h.director.cost.total().calls == len(h.llm.calls) == rounds + 2
