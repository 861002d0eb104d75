"""Media to the browser: the session's web Sink, each connection's bounded send queue, the idle clip.

`WebSink` is the Sink a web session performs into. It outlives connections (a reconnect within a minute
resumes the session), so it hands media to whichever `Outbox` is attached, or drops it when none is.

The playback clock (`played_s`) cannot stall a turn: it is a server-side estimate that runs in real time
from the first audio sent (mirroring how the page schedules audio: a small lead, and a late chunk pushes
the turn's start later rather than being clipped), raised by what the browser acknowledges having played,
and capped by the audio written. A slow or vanished browser therefore never slows the turn, the server or
other sessions.

`Outbox` is one connection's send queue. Control messages and audio are never dropped (their volume is
bounded by the turn's pacing: at most `buffer_ahead_s` ahead of the clock); video frames wait in a short
bounded queue, the oldest are dropped when it is full, and a frame whose time has passed is dropped before
it is JPEG-encoded, so a slow client costs no encoding work.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from digihuman.face.base import Face
from digihuman.media import AudioChunk, VideoFrame
from digihuman.server import protocol

logger = logging.getLogger(__name__)

LEAD_S = 0.06  # the page schedules a turn's first audio this far ahead (jitter room): keep both in step
VIDEO_QUEUE = 64  # frames per connection (> buffer_ahead_s at 25 fps); older ones are dropped
LATE_AUDIO_S = 0.02  # audio due sooner than this is late (the page uses the same margin)
LATE_FRAME_S = 0.1  # a frame this far behind the clock is not worth encoding
MAX_AUDIO_BACKLOG_S = 20.0  # a client this far behind on audio is gone: the connection is closed
JPEG_QUALITY = 80
IDLE_CLIP_S = 4.0  # one breath (0.25 Hz); the page plays it forwards then backwards, so it never jumps
IDLE_CLIP_QUALITY = 75


def encode_jpeg(image: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    bgr = cv2.cvtColor(np.ascontiguousarray(image[..., :3], dtype=np.uint8), cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return data.tobytes()


Send = Callable[[str | bytes], Awaitable[None]]


@dataclass(slots=True)
class _Frame:
    turn: int
    pts_s: float
    image: np.ndarray


@dataclass(slots=True)
class OutboxStats:
    sent_frames: int = 0
    dropped_frames: int = 0
    late_frames: int = 0
    sent_audio_s: float = 0.0
    sent_bytes: int = 0
    encode_s: float = 0.0


class Outbox:
    """One connection's send queue and the task that drains it (`run`)."""

    def __init__(self, send: Send, clock: Callable[[int], float] | None = None) -> None:
        self._send = send
        self._clock = clock  # a turn's playback position: frames behind it are dropped unencoded
        self._control: deque[str | bytes] = deque()  # JSON and audio, in order
        self._video: deque[_Frame] = deque()
        self._audio_backlog_s = 0.0
        self._wake = asyncio.Event()
        self._closed = False
        self.closed_event = asyncio.Event()
        self._draining = False
        self.stats = OutboxStats()
        self.failed: BaseException | None = None

    def send_json(self, message: dict[str, Any]) -> None:
        self._put(json.dumps(message, ensure_ascii=False))

    def send_bytes(self, data: bytes, audio_s: float = 0.0) -> None:
        self._audio_backlog_s += audio_s
        if self._audio_backlog_s > MAX_AUDIO_BACKLOG_S:
            logger.warning("client %.0f s behind on audio: closing its connection", self._audio_backlog_s)
            self.close()
            return
        self._put(data)

    def send_frame(self, turn: int, pts_s: float, image: np.ndarray) -> None:
        if self._closed:
            return
        if len(self._video) >= VIDEO_QUEUE:
            self._video.popleft()
            self.stats.dropped_frames += 1
        self._video.append(_Frame(turn, pts_s, image))
        self._wake.set()

    def drop_turn(self, turn: int) -> None:
        """Forget the turn's queued media (it was cut); control messages stay."""
        self._video = deque(f for f in self._video if f.turn != turn)
        kept: deque[str | bytes] = deque()
        for item in self._control:
            if isinstance(item, bytes) and protocol.unpack(item[: protocol.HEADER.size]).turn == turn:
                continue
            kept.append(item)
        self._control = kept

    def close(self, drain: bool = False) -> None:
        """Stop sending; with `drain`, control messages already queued (a last `closed`) still go out."""
        if drain and not self._closed:
            self._control = deque(item for item in self._control if isinstance(item, str))
            self._draining = True
        self._closed = True
        self.closed_event.set()
        self._wake.set()

    @property
    def closed(self) -> bool:
        return self._closed

    def backlog(self) -> tuple[float, int]:
        """(seconds of audio, video frames) waiting to be sent."""
        return self._audio_backlog_s, len(self._video)

    def _put(self, item: str | bytes) -> None:
        if not self._closed:
            self._control.append(item)
            self._wake.set()

    async def run(self) -> None:
        """Send until closed; a send failure (the client went away) closes the outbox."""
        try:
            while not self._closed or (self._draining and self._control):
                if self._control:
                    item = self._control.popleft()
                    await self._send_item(item)
                elif self._video:
                    await self._send_frame(self._video.popleft())
                else:
                    self._wake.clear()
                    await self._wake.wait()
        except Exception as exc:  # the socket closed under us: the connection handler notices
            self.failed = exc
            self.close()

    async def _send_item(self, item: str | bytes) -> None:
        await self._send(item)
        if isinstance(item, bytes):
            header = protocol.unpack(item[: protocol.HEADER.size])
            if header.kind == protocol.AUDIO and header.extra:
                seconds = (len(item) - protocol.HEADER.size) / 2 / header.extra
                self._audio_backlog_s = max(0.0, self._audio_backlog_s - seconds)
                self.stats.sent_audio_s += seconds
        self.stats.sent_bytes += len(item)

    async def _send_frame(self, frame: _Frame) -> None:
        if self._clock is not None and frame.pts_s < self._clock(frame.turn) - LATE_FRAME_S:
            self.stats.late_frames += 1
            return
        started = time.perf_counter()
        jpeg = await asyncio.to_thread(encode_jpeg, frame.image)
        self.stats.encode_s += time.perf_counter() - started
        data = protocol.pack(protocol.VIDEO, frame.turn, frame.pts_s, 0, jpeg)
        await self._send(data)
        self.stats.sent_frames += 1
        self.stats.sent_bytes += len(data)


@dataclass(slots=True)
class _TurnClock:
    origin: float | None = None  # monotonic time at which the turn's timeline is at 0 s in the browser
    written_s: float = 0.0  # end of the audio written so far, on the turn timeline
    acked_s: float = 0.0  # what the browser says it has played
    done: bool = False  # the browser played it all

    def position(self, now: float) -> float:
        return now - self.origin if self.origin is not None else 0.0

    heard_s: float = 0.0  # never runs backwards (a late chunk moves the origin later, not what was heard)
    cut: bool = False  # cancelled: the clock stops where the page stopped

    def estimate(self, now: float) -> float:
        if self.origin is not None and not self.cut:
            self.heard_s = max(self.heard_s, min(max(self.position(now), self.acked_s), self.written_s))
        return self.heard_s


class WebSink:
    """The Sink of one web session: media to the attached connection, a playback clock that never stalls."""

    def __init__(self) -> None:
        self.outbox: Outbox | None = None
        self._turn: int | None = None
        self.latest_turn = 0
        self._clocks: dict[int, _TurnClock] = {}
        self._ended = asyncio.Event()

    def attach(self, outbox: Outbox | None) -> None:
        self.outbox = outbox

    def clock(self, turn: int) -> float:
        return self.played_s(turn)

    def ack(self, turn: int, played_s: float, done: bool = False) -> None:
        """The browser's playback position for `turn`; ignored for unknown turns (a stale message)."""
        clock = self._clocks.get(turn)
        if clock is None:
            return
        clock.acked_s = max(clock.acked_s, min(float(played_s), clock.written_s))
        clock.done = clock.done or done

    # -- Sink ----------------------------------------------------------------------------------------

    def begin_turn(self, turn_id: int) -> None:
        self._turn = turn_id
        self.latest_turn = max(self.latest_turn, turn_id)
        self._clocks[turn_id] = _TurnClock()
        for old in [t for t in self._clocks if t < turn_id - 8]:
            del self._clocks[old]  # keep a few for late acks
        if self.outbox is not None:
            self.outbox.send_json({"type": "begin", "turn": turn_id})

    async def write_audio(self, chunk: AudioChunk) -> None:
        clock = self._clocks.get(chunk.turn_id)
        if clock is None or chunk.turn_id != self._turn:
            return
        now = time.monotonic()
        if clock.origin is None or clock.position(now) > chunk.start_s - LATE_AUDIO_S:
            # First audio, or a chunk the page would get too late to play in time: like the page, start
            # it `LEAD_S` from now (the turn's start moves later) rather than clip it.
            clock.origin = now + LEAD_S - chunk.start_s
        clock.written_s = max(clock.written_s, chunk.start_s + chunk.duration_s)
        if self.outbox is not None:
            payload = protocol.pcm16(chunk.pcm)
            data = protocol.pack(protocol.AUDIO, chunk.turn_id, chunk.start_s, chunk.sample_rate, payload)
            self.outbox.send_bytes(data, chunk.duration_s)

    async def write_frame(self, frame: VideoFrame) -> None:
        if frame.turn_id == self._turn and self.outbox is not None:
            self.outbox.send_frame(frame.turn_id, frame.pts_s, frame.image)

    async def end_turn(self, turn_id: int) -> None:
        """Return once the turn has (by the clock) been heard to its end."""
        clock = self._clocks.get(turn_id)
        if clock is None or clock.cut:
            return  # nothing is left to play after a cancel
        if self.outbox is not None:
            self.outbox.send_json({"type": "end", "turn": turn_id, "audio_s": round(clock.written_s, 3)})
        while True:
            remaining = clock.written_s - clock.estimate(time.monotonic())
            if remaining <= 0 or clock.done or clock.cut:
                return
            await asyncio.sleep(min(remaining, 0.05))

    def cancel_turn(self, turn_id: int) -> float:
        heard = self.played_s(turn_id)
        if (clock := self._clocks.get(turn_id)) is not None:
            clock.cut = True
        if turn_id == self._turn:
            self._turn = None
        if self.outbox is not None:
            self.outbox.drop_turn(turn_id)
            self.outbox.send_json({"type": "cancel", "turn": turn_id, "heard_s": round(heard, 3)})
        return heard

    def audio_s(self, turn_id: int) -> float:
        """Seconds of the turn's audio written so far."""
        clock = self._clocks.get(turn_id)
        return clock.written_s if clock is not None else 0.0

    def played_s(self, turn_id: int) -> float:
        clock = self._clocks.get(turn_id)
        return clock.estimate(time.monotonic()) if clock is not None else 0.0

    async def aclose(self) -> None:
        self._turn = None


class IdleClip:
    """A character's idle face as a short JPEG loop, rendered once and shared by every session with it.

    Measured (see benchmarks/server_idle.py): sending live idle frames costs a render and an encode per
    frame, several percent of a core per session even at a low rate; the loop costs nothing after the
    first render, and the page shows it at its own pace.
    """

    def __init__(self, fps: int, seconds: float = IDLE_CLIP_S) -> None:
        self.fps = fps
        self.count = max(1, round(seconds * fps))
        self.frames: list[bytes] = []
        self.error: BaseException | None = None
        self._progress = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    def start(self, face: Face) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._render(face))

    async def _render(self, face: Face) -> None:
        def one(index: int) -> bytes:
            return encode_jpeg(face.idle_frame(index / self.fps), IDLE_CLIP_QUALITY)

        try:
            for index in range(self.count):
                jpeg = await asyncio.to_thread(one, index)
                async with self._progress:
                    self.frames.append(jpeg)
                    self._progress.notify_all()
        except Exception as exc:
            logger.exception("rendering the idle clip failed")
            self.error = exc
            async with self._progress:
                self._progress.notify_all()

    @property
    def complete(self) -> bool:
        return len(self.frames) >= self.count or self.error is not None

    def _ready(self, index: int) -> bool:
        return index < len(self.frames) or self.complete

    async def stream(self) -> AsyncIterator[tuple[int, bytes]]:
        """(index, JPEG) for every frame, waiting for those still being rendered."""
        index = 0
        while True:
            async with self._progress:
                await self._progress.wait_for(functools.partial(self._ready, index))
                if index >= len(self.frames):
                    return
                jpeg = self.frames[index]
            yield index, jpeg
            index += 1
