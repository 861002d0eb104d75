"""The conversation session in-process: its events, waiting, interruption, speech input, log lines."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from pathlib import Path

import pytest

from digihuman.character import find_character
from digihuman.config import Settings
from digihuman.logs import session_handler
from digihuman.performer import Performer
from digihuman.session import Conversation, SessionEvent, TurnLog, Utterance
from digihuman.testing.fakes import FakeSink, Reply, ScriptedFace, ScriptedLLM, ScriptedTTS, failing


def session(llm: ScriptedLLM | None, *, session_id: str = "s1", proactive: bool = False) -> Conversation:
    character, settings = find_character("ada"), Settings()
    performer = Performer(character, settings, ScriptedTTS(first_audio_s=0.05), ScriptedFace())
    return Conversation(
        character, settings, llm=llm, performer=performer, session_id=session_id, proactive=proactive
    )


async def collect(events: asyncio.Task[list[SessionEvent]]) -> list[SessionEvent]:
    return await asyncio.wait_for(events, 10)


async def drain(stream) -> list[SessionEvent]:  # type: ignore[no-untyped-def]
    return [event async for event in stream]


async def test_a_reply_goes_thinking_speaking_idle_with_its_text_and_record() -> None:
    conversation = session(ScriptedLLM([Reply("Hello there. Nice to meet you.", first_token_s=0.05)]))
    events = asyncio.create_task(drain(conversation.subscribe()))
    await conversation.start([FakeSink()])
    result = await conversation.ask("Hi!")
    await conversation.wait_idle()
    await conversation.aclose()
    seen = await collect(events)

    assert result.status == "ok" and result.text_spoken == "Hello there. Nice to meet you."
    states = [e.data["state"] for e in seen if e.type == "state"]
    assert states == ["thinking", "speaking", "idle"]
    replies = [e.data for e in seen if e.type == "reply_text"]
    assert [r["text"] for r in replies] == ["Hello there.", "Nice to meet you."]
    assert replies[0]["at_s"] == 0 and replies[1]["at_s"] > 0  # where each starts on the turn's timeline
    [turn] = [e.data for e in seen if e.type == "turn"]
    assert turn["status"] == "ok" and turn["text_spoken"] == result.text_spoken
    assert conversation.log.records == [turn] and conversation.turns == [result]
    assert not [e for e in seen if e.type == "error"]


async def test_a_failed_reply_is_one_error_event_and_a_failed_record() -> None:
    conversation = session(
        ScriptedLLM([Reply("Hello there. And then", error=failing("server died"), error_after=3)])
    )
    events = asyncio.create_task(drain(conversation.subscribe()))
    await conversation.start([FakeSink()])
    result = await conversation.ask("Hi!")
    await conversation.aclose()
    seen = await collect(events)

    assert result.status == "failed" and "server died" in (result.error or "")
    assert result.text_spoken == "Hello there."  # what was spoken before the failure is kept
    errors = [e.data["message"] for e in seen if e.type == "error"]
    assert len(errors) == 1 and "server died" in errors[0]


async def test_interrupt_cuts_the_reply_and_memory_keeps_what_was_heard() -> None:
    long = " ".join(["This sentence goes on for a while."] * 20)
    conversation = session(ScriptedLLM([Reply(long, first_token_s=0.01)]))
    await conversation.start([FakeSink()])
    conversation.send_text("Tell me everything.")
    while conversation.state != "speaking":
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)
    conversation.interrupt()
    await conversation.wait_idle()
    await conversation.aclose()

    [result] = conversation.turns
    assert result.status == "cut"
    assert 0 < len(result.text_spoken) < len(long)
    assert conversation.director is not None
    assert conversation.director.memory.messages()[-1].content == result.text_spoken


async def test_speech_input_listens_then_answers_the_utterance() -> None:
    llm = ScriptedLLM([Reply("Yes, I can hear you.", first_token_s=0.01)])
    conversation = session(llm)
    events = asyncio.create_task(drain(conversation.subscribe()))
    await conversation.start([FakeSink()])
    conversation.user_speech_started()
    assert conversation.state == "listening"
    conversation.hear_partial("can you")
    conversation.hear(Utterance("Can you hear me?", language="en"))
    await conversation.wait_idle()
    while not conversation.turns:
        await asyncio.sleep(0.01)
    await conversation.aclose()
    seen = await collect(events)

    transcripts = [e.data for e in seen if e.type == "transcript"]
    assert transcripts == [
        {"text": "can you", "final": False},
        {"text": "Can you hear me?", "language": "en", "final": True},
    ]
    assert [e.data["state"] for e in seen if e.type == "state"][:2] == ["listening", "thinking"]
    assert llm.calls[0].messages[-1].content == "Can you hear me?"


async def test_a_proactive_companion_keeps_quiet_while_the_user_speaks() -> None:
    llm = ScriptedLLM([Reply("Hello!", first_token_s=0.01)])
    conversation = session(llm, proactive=True)
    conversation.user_speech_started()  # before the greeting is due
    await conversation.start([FakeSink()])
    await asyncio.sleep(0.3)
    assert not llm.calls
    conversation.user_speech_stopped()
    await asyncio.sleep(0.3)
    await conversation.wait_idle()
    await conversation.aclose()
    assert len(llm.calls) == 1  # the greeting came once the user stopped


async def test_closing_ends_every_event_stream_and_cuts_a_pending_question() -> None:
    conversation = session(ScriptedLLM([Reply("Hm.", first_token_s=30)]))
    stream = conversation.subscribe()
    await conversation.start([FakeSink()])
    question = asyncio.create_task(conversation.ask("Are you there?"))
    await asyncio.sleep(0.05)
    await conversation.aclose()
    assert [e.data["state"] for e in await drain(stream) if e.type == "state"] == ["thinking", "idle"]
    assert (await question).status == "cut"
    assert [e.type for e in await drain(conversation.subscribe())] == []  # a late subscriber ends at once


async def test_each_log_line_carries_its_session_id() -> None:
    out = io.StringIO()
    handler = session_handler(logging.StreamHandler(out))
    logger = logging.getLogger("digihuman")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        sessions = [
            session(ScriptedLLM([Reply("Hi.", error=failing(f"down {i}"))]), session_id=f"id{i}")
            for i in (1, 2)
        ]
        for conversation in sessions:
            await conversation.start([FakeSink()])
        await asyncio.gather(*(c.ask("Hello") for c in sessions))
        for conversation in sessions:
            await conversation.aclose()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    lines = [line for line in out.getvalue().splitlines() if "down " in line]
    assert any("[id1]" in line and "down 1" in line for line in lines), lines
    assert any("[id2]" in line and "down 2" in line for line in lines), lines
    assert not [line for line in lines if "[id1]" in line and "down 2" in line], lines


def test_the_turn_log_appends_one_json_line_per_turn(tmp_path: Path) -> None:
    log = TurnLog(tmp_path)
    log.add({"turn": 1, "status": "ok"})
    log.add({"turn": 2, "status": "failed", "error": "无法连接"})
    lines = (tmp_path / "turns.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == log.records
    assert "无法连接" in lines[1]  # readable, not \\u-escaped


async def test_a_session_without_a_brain_speaks_fixed_text_and_refuses_user_text() -> None:
    conversation = session(None)
    await conversation.start([FakeSink()])
    result = await conversation.speak("Just this.")
    assert result.status == "ok" and result.text_spoken == "Just this."
    with pytest.raises(RuntimeError, match="no brain"):
        conversation.send_text("Hello?")
    await conversation.aclose()
