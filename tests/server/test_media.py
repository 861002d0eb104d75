"""The web sink and a connection's send queue: a slow page loses video frames, never audio, never time."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from digihuman.media import AudioChunk, VideoFrame
from digihuman.server import media, protocol
from digihuman.server.media import Outbox, WebSink

RATE = 16000


def chunk(turn: int, start_s: float, seconds: float = 0.2) -> AudioChunk:
    return AudioChunk(np.full(round(seconds * RATE), 0.1, np.float32), RATE, start_s, turn_id=turn)


def frame(turn: int, pts_s: float) -> VideoFrame:
    return VideoFrame(np.full((64, 64, 3), 128, np.uint8), pts_s, turn)


class SlowPage:
    """A page on a slow link: each send takes `delay_s`."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.sent: list[str | bytes] = []

    async def send(self, item: str | bytes) -> None:
        await asyncio.sleep(self.delay_s)
        self.sent.append(item)

    def audio(self) -> list[protocol.MediaFrame]:
        frames = [protocol.unpack(i) for i in self.sent if isinstance(i, bytes)]
        return [f for f in frames if f.kind == protocol.AUDIO]

    def video(self) -> list[protocol.MediaFrame]:
        frames = [protocol.unpack(i) for i in self.sent if isinstance(i, bytes)]
        return [f for f in frames if f.kind == protocol.VIDEO]


async def test_a_slow_page_drops_video_never_audio_and_never_slows_the_turn() -> None:
    page = SlowPage(delay_s=0.06)  # 16 messages/s: fewer than the 25 frames + 5 chunks each second
    sink = WebSink()
    outbox = Outbox(page.send, clock=sink.clock)
    sink.attach(outbox)
    sender = asyncio.create_task(outbox.run())
    sink.begin_turn(1)
    started = time.monotonic()
    for index in range(10):  # 2 s of speech, written as fast as the turn would (no pacing here)
        await sink.write_audio(chunk(1, index * 0.2))
        for n in range(5):
            await sink.write_frame(frame(1, index * 0.2 + n * 0.04))
    await sink.end_turn(1)
    took = time.monotonic() - started
    await asyncio.sleep(0.5)
    outbox.close()
    await sender
    # The turn took its audio's length by the server's clock, whatever the page did.
    assert 2.0 <= took < 2.0 + media.LEAD_S + 0.3
    audio = page.audio()
    assert [round(a.t, 6) for a in audio] == [round(i * 0.2, 6) for i in range(10)]  # every chunk, in order
    assert outbox.stats.sent_audio_s == pytest.approx(2.0)
    assert len(page.video()) < 50 and outbox.stats.dropped_frames + outbox.stats.late_frames > 0
    assert [v.t for v in page.video()] == sorted(v.t for v in page.video())


async def test_the_clock_runs_without_acks_never_backwards_never_past_the_audio() -> None:
    sink = WebSink()  # no page at all: media goes nowhere, the clock still runs
    sink.begin_turn(3)
    assert sink.played_s(3) == 0.0
    await sink.write_audio(chunk(3, 0.0, seconds=0.3))
    readings = []
    for _ in range(8):
        readings.append(sink.played_s(3))
        await asyncio.sleep(0.06)
    assert readings == sorted(readings) and readings[-1] == 0.3
    # A late chunk (the voice was slow): the page starts it late instead of clipping; heard never goes back.
    await sink.write_audio(chunk(3, 0.3, seconds=0.2))
    assert sink.played_s(3) == 0.3
    sink.ack(3, 0.45)  # the page says it heard more: believed, up to what was written
    assert sink.played_s(3) == 0.45
    sink.ack(3, 9.0)
    assert sink.played_s(3) == 0.5
    sink.ack(42, 1.0)  # an unknown turn: ignored
    assert sink.played_s(42) == 0.0


async def test_cancel_drops_queued_media_and_tells_the_page() -> None:
    sent: list[str | bytes] = []
    gate = asyncio.Event()

    async def send(item: str | bytes) -> None:
        await gate.wait()
        sent.append(item)

    sink = WebSink()
    outbox = Outbox(send, clock=sink.clock)
    sink.attach(outbox)
    sender = asyncio.create_task(outbox.run())
    sink.begin_turn(1)
    for index in range(5):
        await sink.write_audio(chunk(1, index * 0.2))
        await sink.write_frame(frame(1, index * 0.2))
    heard = sink.cancel_turn(1)
    await sink.write_audio(chunk(1, 1.0))  # late chunks of the cut turn: dropped
    await sink.write_frame(frame(1, 1.0))
    gate.set()
    await asyncio.sleep(0.1)
    outbox.close()
    await sender
    media_sent = [protocol.unpack(i) for i in sent if isinstance(i, bytes)]
    texts = [i for i in sent if isinstance(i, str)]
    assert heard < 0.2
    assert len(media_sent) <= 1  # at most the one already being sent when the cut came
    assert any('"cancel"' in t and '"turn": 1' in t for t in texts)


async def test_a_page_far_behind_on_audio_is_disconnected() -> None:
    gate = asyncio.Event()

    async def never(item: str | bytes) -> None:
        await gate.wait()

    outbox = Outbox(never)
    sender = asyncio.create_task(outbox.run())
    for index in range(int(media.MAX_AUDIO_BACKLOG_S / 0.2) + 2):
        data = protocol.pack(protocol.AUDIO, 1, index * 0.2, RATE, b"\0\0" * round(0.2 * RATE))
        outbox.send_bytes(data, 0.2)
    assert outbox.closed
    gate.set()
    await sender


async def test_the_idle_clip_is_rendered_once_and_streamed() -> None:
    class Face:
        fps = 25
        calls = 0

        def idle_frame(self, t_s: float) -> np.ndarray:
            Face.calls += 1
            return np.full((32, 32, 3), int(t_s * 40) % 256, np.uint8)

    clip = media.IdleClip(fps=25, seconds=0.4)
    clip.start(Face())  # type: ignore[arg-type]
    first = [index async for index, _ in clip.stream()]
    second = [jpeg[:2] async for _, jpeg in clip.stream()]
    assert first == list(range(10)) and second == [b"\xff\xd8"] * 10 and Face.calls == 10
