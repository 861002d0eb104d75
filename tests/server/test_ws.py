"""The live session WebSocket on the real server: a typed turn end to end, bad messages, reconnects."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from digihuman.server import media, protocol
from tests.llm.ollama_server import OllamaTestServer
from tests.server.conftest import RunningServer, server_settings, start_server
from tests.server.wsclient import Received, SessionClient, stalled_page


def new_session(server: RunningServer, character: str = "ada") -> str:
    with server.client() as client:
        response = client.post("/v1/sessions", json={"character": character})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def turn_done(turn: int = 1) -> Callable[[Received], bool]:
    """The turn's record arrived and the session is idle again."""

    def done(r: Received) -> bool:
        states = r.of("state")
        finished = any(e["type"] == "turn" and e["turn"] == turn for e in r.events)
        return finished and bool(states) and states[-1]["state"] == "idle"

    return done


def test_a_typed_turn_streams_state_text_media_and_its_record(server: RunningServer) -> None:
    session_id = new_session(server)
    with SessionClient(server.ws_url, session_id) as client:
        got = client.pump(lambda r: bool(r.frames(protocol.IDLE)), timeout=20)
        hello = got.events[0]
        assert hello["type"] == "hello" and hello["protocol"] == 1 and hello["session"] == session_id
        assert hello["render"] == "frames" and "frames" in hello["render_modes"] and hello["resumed"] is False
        assert got.of("idle_clip")[0]["frames"] == 100
        client.send({"type": "hello", "protocol": 1, "capabilities": {"render": ["frames", "rig"]}})
        client.send({"type": "user_text", "text": "Hello there"})
        got = client.pump(turn_done(1), timeout=60)

    states = [e["state"] for e in got.of("state")]
    assert states[0] == "idle" and "thinking" in states and "speaking" in states and states[-1] == "idle"
    texts = got.of("reply_text")
    assert texts[0]["turn"] == 1 and texts[0]["at_s"] == 0.0 and "Hello there" in texts[0]["text"]
    assert [t["at_s"] for t in texts] == sorted(t["at_s"] for t in texts)
    audio = got.frames(protocol.AUDIO, turn=1)
    video = got.frames(protocol.VIDEO, turn=1)
    assert audio and audio[0].t == 0.0 and audio[0].extra in (16000, 22050, 24000)
    audio_s = sum(len(a.payload) / 2 / a.extra for a in audio)
    assert [a.t for a in audio] == sorted(a.t for a in audio)
    assert video and video[0].payload[:2] == b"\xff\xd8"  # JPEG
    assert len(video) >= 0.8 * audio_s * 25  # no client is slow here: (nearly) every frame is sent
    [end] = got.of("end")
    assert abs(end["audio_s"] - audio_s) < 0.05
    [record] = got.of("turn")
    assert record["status"] == "ok" and "You said: Hello there" in record["text_spoken"]
    assert record["metrics"]["first_audio_played_s"] is not None
    with server.client() as http:
        assert http.get(f"/v1/sessions/{session_id}/turns").json()["turns"] == [
            {k: v for k, v in record.items() if k != "type"}
        ]


BAD_MESSAGES: list[tuple[str | bytes, str]] = [
    ('{"type": "hello", "protocol": 2}', "protocol 2 is not supported"),
    ('{"type": "hello", "protocol": 1}', "hello was already received"),
    ("not json", "not JSON"),
    ("[1, 2]", 'a JSON object with a "type"'),
    ('{"type": "dance"}', "unknown message type 'dance'"),
    ('{"type": "user_text"}', "user_text: 'text' must be a string"),
    ('{"type": "user_text", "text": "   "}', "the text is empty"),
    (json.dumps({"type": "user_text", "text": "x" * 10_001}), "at most 10,000 characters"),
    (json.dumps({"type": "ping", "pad": "x" * 70_000}), "message too large"),
    ('{"type": "played", "turn": 7, "played_s": 1.0}', "played: turn 7 has not started"),
    ('{"type": "played", "turn": true, "played_s": 1.0}', "'turn' must be an integer"),
    ('{"type": "mic", "state": "sideways"}', "mic: state must be start or stop"),
    (b"\x01\x02", "20-byte header"),
    (protocol.pack(99, 0, 0.0, 0, b"x"), "unknown media kind 99"),
    (protocol.pack(protocol.MIC, 0, 0.0, 16000, b"\0\0" * 320), "before microphone audio"),
    (protocol.pack(protocol.CAMERA, 0, 0.0, 0, b"not a jpeg"), "must be a JPEG image"),
    (protocol.pack(protocol.CAMERA, 0, 0.0, 0, b"\0" * (1024 * 1024 + 1)), "media message too large"),
]


def test_bad_messages_get_an_error_each_and_the_session_carries_on(server: RunningServer) -> None:
    session_id = new_session(server)
    with SessionClient(server.ws_url, session_id) as client:
        for message, expected in BAD_MESSAGES:
            client.send_raw(message)
            error = client.next_error()
            assert expected in error, (message[:60], error)
        client.send({"type": "interrupt"})  # nothing to cut: harmless
        client.send({"type": "ping"})
        client.pump(lambda r: bool(r.of("pong")))
        client.send({"type": "user_text", "text": "Still there?"})
        got = client.pump(turn_done(1), timeout=60)
    assert got.of("turn")[0]["status"] == "ok"


def test_an_oversized_frame_closes_only_the_socket_and_a_reconnect_resumes(server: RunningServer) -> None:
    session_id = new_session(server)
    with SessionClient(server.ws_url, session_id) as client:
        client.pump(lambda r: bool(r.of("hello")))
        client.send_raw(b"\0" * (5 * 1024 * 1024))  # beyond ws_max_size: the server closes the socket (1009)
        try:
            client.pump(lambda r: False, timeout=5)
        except Exception as exc:
            assert "1009" in str(exc) or "closed" in str(exc).lower() or "timed out" in str(exc)
    with SessionClient(server.ws_url, session_id) as client:
        got = client.pump(lambda r: bool(r.of("hello")))
        assert got.of("hello")[0]["resumed"] is True
        client.send({"type": "user_text", "text": "Are you still there"})
        assert client.pump(turn_done(1), timeout=60).of("turn")[0]["status"] == "ok"


def test_a_reconnect_keeps_the_conversation(server: RunningServer, ollama: OllamaTestServer) -> None:
    session_id = new_session(server)
    with SessionClient(server.ws_url, session_id) as client:
        client.send({"type": "user_text", "text": "My name is Robin"})
        client.pump(turn_done(1), timeout=60)
    with SessionClient(server.ws_url, session_id) as client:
        assert client.pump(lambda r: bool(r.of("hello"))).of("hello")[0]["resumed"] is True
        client.send({"type": "user_text", "text": "What is my name"})
        got = client.pump(turn_done(2), timeout=60)
    assert "What is my name" in got.of("turn")[0]["text_spoken"]
    last = ollama.bodies()[-1]
    said = json.dumps(last, ensure_ascii=False)
    assert "My name is Robin" in said and "What is my name" in said  # memory survived the reconnect


def test_a_second_page_takes_the_session_over(server: RunningServer) -> None:
    session_id = new_session(server)
    first = SessionClient(server.ws_url, session_id)
    first.pump(lambda r: bool(r.of("hello")))
    with SessionClient(server.ws_url, session_id) as second:
        second.pump(lambda r: bool(r.of("hello")))
        second.send({"type": "user_text", "text": "Only to me"})
        got = second.pump(turn_done(1), timeout=60)
    assert got.of("turn")
    assert not first.got.of("turn")
    first.close()


def test_interrupt_cuts_the_reply(server: RunningServer) -> None:
    session_id = new_session(server)
    with SessionClient(server.ws_url, session_id) as client:
        client.send({"type": "user_text", "text": "Tell me something"})
        client.pump(lambda r: bool(r.frames(protocol.AUDIO, turn=1)), timeout=60)
        client.send({"type": "interrupt"})
        got = client.pump(turn_done(1), timeout=30)
    [cancel] = got.of("cancel")
    assert cancel["turn"] == 1 and cancel["heard_s"] >= 0
    assert got.of("turn")[0]["status"] == "cut"


def test_sessions_are_independent(server: RunningServer) -> None:
    ids = [new_session(server), new_session(server, "xiaomei")]
    clients = [SessionClient(server.ws_url, i) for i in ids]
    try:
        clients[0].send({"type": "user_text", "text": "I am the first"})
        clients[1].send({"type": "user_text", "text": "我是第二个"})
        with server.client() as http:
            assert http.delete(f"/v1/sessions/{ids[1]}").status_code == 204  # one closes mid-turn
        first = clients[0].pump(turn_done(1), timeout=60)
        second = clients[1].pump(lambda r: bool(r.of("closed")), timeout=30)
    finally:
        for client in clients:
            client.close()
    assert "I am the first" in first.of("turn")[0]["text_spoken"]
    assert not any("I am the first" in json.dumps(e) for e in second.events)
    assert second.of("closed")[0]["reason"] == "closed by the API"


def test_idle_and_abandoned_sessions_are_closed(server: RunningServer) -> None:
    manager = server.manager
    left, idle = manager.get(new_session(server)), manager.get(new_session(server))
    with SessionClient(server.ws_url, idle.id) as client:
        client.pump(lambda r: bool(r.of("hello")))
        # Reaping runs on the server's loop: ask it to reap as if time had passed.
        later = idle.last_input_at + manager.settings.server.idle_timeout_s + 1
        assert manager.loop is not None
        asyncio.run_coroutine_threadsafe(manager.reap(now=later), manager.loop).result(30)
        got = client.pump(lambda r: bool(r.of("closed")))
    assert got.of("closed")[0]["reason"] == "idle too long" and idle.closed
    assert left.closed and left.close_reason == "the page left"  # never connected within resume_s
    with httpx.Client(base_url=server.url) as http:
        assert http.get(f"/v1/sessions/{idle.id}/turns").status_code == 404


def test_a_page_that_stops_reading_slows_neither_its_turn_nor_another_session(server: RunningServer) -> None:
    stalled_id, healthy_id = new_session(server), new_session(server)
    stalled = stalled_page(server.ws_url, stalled_id, "I will not listen")
    healthy = SessionClient(server.ws_url, healthy_id)
    try:
        healthy.send({"type": "user_text", "text": "I am listening"})
        got = healthy.pump(turn_done(1), timeout=60)
        [record] = got.of("turn")
        audio = got.frames(protocol.AUDIO, turn=1)
        audio_s = sum(len(a.payload) / 2 / a.extra for a in audio)
        assert record["status"] == "ok" and record["metrics"]["total_s"] < audio_s + 2.0
        assert len(got.frames(protocol.VIDEO, turn=1)) >= 0.8 * audio_s * 25
        # The stalled page's turn ran on the server's clock all the same...
        with server.client() as http:
            for _ in range(100):
                turns = http.get(f"/v1/sessions/{stalled_id}/turns").json()["turns"]
                if turns:
                    break
                time.sleep(0.1)
        assert turns[0]["status"] == "ok" and turns[0]["metrics"]["total_s"] < audio_s + 3.0
        # ...its video waits in a bounded queue (the oldest dropped) while every audio chunk waits for it.
        page = server.manager.get(stalled_id)
        outbox, stalled_audio_s = page.outbox, page.sink.audio_s(1)
        assert outbox is not None
        queued_audio_s, queued_frames = outbox.backlog()
        assert queued_frames <= media.VIDEO_QUEUE and outbox.stats.sent_frames < stalled_audio_s * 25
        assert outbox.stats.sent_audio_s + queued_audio_s == pytest.approx(stalled_audio_s), outbox.stats
    finally:
        stalled.close()
        healthy.close()


def test_a_microphone_that_cannot_start_says_so_once(ollama: OllamaTestServer, tmp_path: Path) -> None:
    from digihuman.config import ListenSettings

    settings = server_settings(ollama.url)
    settings.listen = ListenSettings(vad_model=str(tmp_path / "missing-vad.onnx"))
    running = start_server(settings)
    try:
        with running.client() as http:
            session_id = http.post("/v1/sessions").json()["id"]
        with SessionClient(running.ws_url, session_id) as client:
            client.send({"type": "mic", "state": "start"})
            error = client.pump(lambda r: bool(r.of("error")), timeout=30).of("error")[0]
            assert error["source"] == "mic" and error["message"].startswith("the microphone cannot be used")
            for _ in range(10):  # a page that keeps sending audio gets one error, not ten
                client.send_raw(protocol.pack(protocol.MIC, 0, 0.0, 16000, b"\0\0" * 640))
            client.send({"type": "ping"})
            got = client.pump(lambda r: bool(r.of("pong")))
            assert len(got.of("error")) == 2
            client.send({"type": "user_text", "text": "Typing still works"})
            assert client.pump(turn_done(1), timeout=60).of("turn")[0]["status"] == "ok"
    finally:
        running.stop()
