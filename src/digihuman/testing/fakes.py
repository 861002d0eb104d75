"""Scripted stand-ins for the LLM, TTS, Face and Sink, driven by settable latencies on the loop clock.

Every wait is an `asyncio.sleep`, so on `digihuman.clock.VirtualEventLoop` a whole conversation runs in
virtual time, exactly and fast; on a normal loop they behave like slow real backends. Each fake records
what it did (calls, start and end times, concurrency) for assertions, and stops at once when cancelled.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from digihuman.errors import BackendError
from digihuman.llm.base import LLMError, Message, Usage
from digihuman.media import AudioChunk, Timing, VideoFrame


def now() -> float:
    return asyncio.get_running_loop().time()


class Activity:
    """Counts work in flight: how many at once now, the most ever, and when the last one stopped."""

    def __init__(self) -> None:
        self.active = 0
        self.max_active = 0
        self.last_stop = -math.inf

    def start(self) -> None:
        self.active += 1
        self.max_active = max(self.max_active, self.active)

    def stop(self) -> None:
        self.active -= 1
        self.last_stop = now()


# -- LLM ----------------------------------------------------------------------------------------------


@dataclass
class Reply:
    """One scripted LLM answer: `text` streamed word by word after `first_token_s`."""

    text: str = "Hello there. How are you today?"
    first_token_s: float = 0.2
    token_interval_s: float = 0.02
    error: Exception | None = None  # raised after `error_after` deltas
    error_after: int = 0
    prompt_tokens: int = 500
    image_tokens: int = 0  # per attached image, added to prompt_tokens
    deltas: Sequence[str] | None = None  # exact deltas instead of `text` cut into words


@dataclass
class LLMCall:
    messages: Sequence[Message]
    started_at: float
    ended_at: float | None = None
    cancelled: bool = False
    deltas: int = 0
    delta_times: list[float] = field(default_factory=list)  # when each delta was yielded


class ScriptedLLM:
    """Answers each call with the next `Reply` (or `script(call_index, messages)`)."""

    name = "scripted"
    model = "scripted-vlm"

    def __init__(self, script: Sequence[Reply] | Callable[[int, Sequence[Message]], Reply] = ()) -> None:
        self._script = script
        self.calls: list[LLMCall] = []
        self.activity = Activity()

    def _reply(self, index: int, messages: Sequence[Message]) -> Reply:
        if callable(self._script):
            return self._script(index, messages)
        if not self._script:
            return Reply()
        return self._script[min(index, len(self._script) - 1)]

    async def stream(self, messages: Sequence[Message], usage: Usage | None = None) -> AsyncIterator[str]:
        reply = self._reply(len(self.calls), messages)
        call = LLMCall(messages, now())
        self.calls.append(call)
        images = sum(len(m.images) for m in messages)
        if usage is not None:
            usage.images = images
            usage.prompt_tokens = reply.prompt_tokens + images * reply.image_tokens
        self.activity.start()
        try:
            await asyncio.sleep(reply.first_token_s)
            if usage is not None:
                usage.first_token_s = now() - call.started_at
            for index, delta in enumerate(reply.deltas or _deltas(reply.text)):
                if reply.error is not None and index >= reply.error_after:
                    raise reply.error
                if index:
                    await asyncio.sleep(reply.token_interval_s)
                call.deltas += 1
                call.delta_times.append(now())
                if usage is not None:
                    usage.completion_tokens += 1
                yield delta
            if reply.error is not None:
                raise reply.error
            if usage is not None:
                usage.done_reason = "stop"
        except (asyncio.CancelledError, GeneratorExit):
            call.cancelled = True
            raise
        finally:
            call.ended_at = now()
            if usage is not None:
                usage.duration_s = call.ended_at - call.started_at
            self.activity.stop()

    async def preload(self, system: str = "") -> None:
        return None

    async def aclose(self) -> None:
        return None


def _deltas(text: str) -> list[str]:
    return re.findall(r"\s*\S+", text)


# -- TTS ----------------------------------------------------------------------------------------------


@dataclass
class TTSCall:
    text: str
    started_at: float
    ended_at: float | None = None
    first_audio_at: float | None = None
    cancelled: bool = False


class ScriptedTTS:
    """Speech of `seconds_per_char` per character, in `chunk_s` chunks, with evenly spread word timings.

    The first chunk comes after `first_audio_s` (or `latency(text)`), the rest every `chunk_s * rtf`.
    """

    name = "scripted"

    def __init__(
        self,
        *,
        first_audio_s: float = 0.1,
        rtf: float = 0.2,
        seconds_per_char: float = 0.06,
        chunk_s: float = 0.5,
        sample_rate: int = 16000,
        words: bool = True,
        latency: Callable[[str], float] | None = None,
        fail_on: str | None = None,
    ) -> None:
        self.first_audio_s = first_audio_s
        self.rtf = rtf
        self.seconds_per_char = seconds_per_char
        self.chunk_s = chunk_s
        self.sample_rate = sample_rate
        self.words = words
        self.latency = latency
        self.fail_on = fail_on
        self.calls: list[TTSCall] = []
        self.activity = Activity()

    def duration(self, text: str) -> float:
        samples = round(max(0.2, len(text) * self.seconds_per_char) * self.sample_rate)
        return samples / self.sample_rate

    def word_timings(self, text: str) -> tuple[Timing, ...]:
        """Words share the duration in proportion to their length (spaces count too)."""
        total = self.duration(text)
        timings = []
        for match in re.finditer(r"\S+", text):
            start = total * match.start() / len(text)
            end = total * match.end() / len(text)
            timings.append(Timing(match.group(0), start, end))
        return tuple(timings)

    async def synthesize(self, text: str, language: str) -> AsyncIterator[AudioChunk]:
        call = TTSCall(text, now())
        self.calls.append(call)
        self.activity.start()
        try:
            await asyncio.sleep(self.latency(text) if self.latency else self.first_audio_s)
            if self.fail_on is not None and self.fail_on in text:
                raise BackendError(f"scripted TTS failure on {text!r}")  # what real voices raise
            total = round(self.duration(text) * self.sample_rate)
            step = round(self.chunk_s * self.sample_rate)
            words = self.word_timings(text) if self.words else ()
            for index, start in enumerate(range(0, total, step)):
                if index:
                    await asyncio.sleep(self.chunk_s * self.rtf)
                n = min(step, total - start)
                t = (start + np.arange(n)) / self.sample_rate
                pcm = (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
                if call.first_audio_at is None:
                    call.first_audio_at = now()
                yield AudioChunk(
                    pcm, self.sample_rate, start_s=start / self.sample_rate, words=words if index == 0 else ()
                )
        except (asyncio.CancelledError, GeneratorExit):
            call.cancelled = True
            raise
        finally:
            call.ended_at = now()
            self.activity.stop()

    async def aclose(self) -> None:
        return None


# -- Face ---------------------------------------------------------------------------------------------


@dataclass
class FaceCall:
    started_at: float
    ended_at: float | None = None
    cancelled: bool = False
    frames: int = 0


class ScriptedFace:
    """Tiny frames at `fps` covering the audio.

    Real-time: frames follow each chunk as it arrives. Not real-time: collects the whole utterance, waits
    `render_s_per_audio_s` per second of audio, then yields them all.
    """

    name = "scripted"

    def __init__(self, *, realtime: bool = True, fps: int = 25, render_s_per_audio_s: float = 0.0) -> None:
        self.realtime = realtime
        self.fps = fps
        self.size = 8
        self.render_s_per_audio_s = render_s_per_audio_s
        self.calls: list[FaceCall] = []
        self.activity = Activity()

    def _frame(self, index: int) -> VideoFrame:
        return VideoFrame(np.full((8, 8, 3), index % 256, np.uint8), index / self.fps)

    async def animate(self, audio: AsyncIterator[AudioChunk]) -> AsyncIterator[VideoFrame]:
        call = FaceCall(now())
        self.calls.append(call)
        self.activity.start()
        try:
            next_index = 0
            if self.realtime:
                async for chunk in audio:
                    end = chunk.start_s + chunk.duration_s
                    while next_index / self.fps < end:
                        call.frames += 1
                        yield self._frame(next_index)
                        next_index += 1
                return
            chunks = [chunk async for chunk in audio]
            end = max((c.start_s + c.duration_s for c in chunks), default=0.0)
            await asyncio.sleep(end * self.render_s_per_audio_s)
            for next_index in range(math.ceil(end * self.fps)):
                call.frames += 1
                yield self._frame(next_index)
        except (asyncio.CancelledError, GeneratorExit):
            call.cancelled = True
            raise
        finally:
            call.ended_at = now()
            self.activity.stop()

    def idle_frame(self, t_s: float) -> np.ndarray:
        return np.zeros((8, 8, 3), np.uint8)

    async def aclose(self) -> None:
        return None


# -- Sink ---------------------------------------------------------------------------------------------


@dataclass
class Written:
    at: float
    kind: str  # "audio" | "frame"
    turn_id: int
    start_s: float  # on the turn timeline
    end_s: float
    text: str = ""


@dataclass
class TurnPlayback:
    """One turn's playback: audio plays at 1x from when it is written, stalling when the buffer runs dry."""

    begun_at: float = 0.0
    buffered_s: float = 0.0
    position_s: float = 0.0
    last_update: float = 0.0
    first_played_at: float | None = None
    cancelled_at: float | None = None
    ended: bool = False
    ended_at: float | None = None  # played to the end, or cancelled


class FakeSink:
    """A player that keeps time on the loop clock (or, with `realtime=False`, a recorder that saves at once).

    It drops (and counts) anything written for a turn that is not the current one or was cancelled.
    """

    def __init__(self, *, realtime: bool = True) -> None:
        self.realtime = realtime
        self.current: int | None = None
        self.turns: dict[int, TurnPlayback] = {}
        self.written: list[Written] = []
        self.stale: list[Written] = []
        self.cancels: list[tuple[float, int, float]] = []  # (at, turn_id, heard_s)
        self.begun: list[int] = []
        self.max_queued_s = 0.0  # most audio ever waiting to be played

    def _advance(self, turn: TurnPlayback) -> None:
        t = now()
        if self.realtime and turn.cancelled_at is None and turn.position_s < turn.buffered_s:
            if turn.first_played_at is None:
                turn.first_played_at = turn.last_update
            turn.position_s = min(turn.buffered_s, turn.position_s + (t - turn.last_update))
        turn.last_update = t

    def begin_turn(self, turn_id: int) -> None:
        self.current = turn_id
        self.begun.append(turn_id)
        self.turns[turn_id] = TurnPlayback(begun_at=now(), last_update=now())

    def _accept(self, item: Written) -> TurnPlayback | None:
        turn = self.turns.get(item.turn_id)
        if item.turn_id != self.current or turn is None or turn.cancelled_at is not None:
            self.stale.append(item)
            return None
        self.written.append(item)
        return turn

    async def write_audio(self, chunk: AudioChunk) -> None:
        item = Written(
            now(), "audio", chunk.turn_id, chunk.start_s, chunk.start_s + chunk.duration_s, chunk.text
        )
        if (turn := self._accept(item)) is None:
            return
        self._advance(turn)
        turn.buffered_s = max(turn.buffered_s, item.end_s)
        if not self.realtime:
            turn.position_s = turn.buffered_s
        self.max_queued_s = max(self.max_queued_s, turn.buffered_s - turn.position_s)

    async def write_frame(self, frame: VideoFrame) -> None:
        self._accept(Written(now(), "frame", frame.turn_id, frame.pts_s, frame.pts_s))

    async def end_turn(self, turn_id: int) -> None:
        turn = self.turns[turn_id]
        while turn.cancelled_at is None:
            self._advance(turn)
            left = turn.buffered_s - turn.position_s
            if left <= 1e-9:
                break
            await asyncio.sleep(left)
        turn.ended = True
        turn.ended_at = turn.cancelled_at or now()

    def cancel_turn(self, turn_id: int) -> float:
        turn = self.turns.get(turn_id)
        if turn is None:
            return 0.0
        if turn.cancelled_at is None:
            self._advance(turn)
            turn.cancelled_at = turn.ended_at = now()
            self.cancels.append((turn.cancelled_at, turn_id, turn.position_s))
        return turn.position_s

    def played_s(self, turn_id: int) -> float:
        turn = self.turns.get(turn_id)
        if turn is None:
            return 0.0
        self._advance(turn)
        return turn.position_s

    async def aclose(self) -> None:
        return None

    # -- for assertions --

    def audio(self, turn_id: int | None = None) -> list[Written]:
        return [w for w in self.written if w.kind == "audio" and (turn_id is None or w.turn_id == turn_id)]

    def frames(self, turn_id: int | None = None) -> list[Written]:
        return [w for w in self.written if w.kind == "frame" and (turn_id is None or w.turn_id == turn_id)]

    def written_after(self, t: float, turn_id: int) -> list[Written]:
        return [w for w in self.written + self.stale if w.turn_id == turn_id and w.at > t]


# -- a splitter for tests that must not depend on tts/text.py's rules -----------------------------


@dataclass
class PeriodSplitter:
    """Cuts after ". " / "? " / "! " only: predictable sentences for timing tests."""

    buffer: str = ""
    sentences: list[str] = field(default_factory=list)

    def feed(self, delta: str) -> list[str]:
        self.buffer += delta
        out = []
        while (match := re.search(r"[.!?]\s", self.buffer)) is not None:
            out.append(self.buffer[: match.end()].strip())
            self.buffer = self.buffer[match.end() :]
        return out

    def flush(self) -> list[str]:
        rest, self.buffer = self.buffer.strip(), ""
        return [rest] if rest else []


def failing(message: str = "model crashed") -> LLMError:
    return LLMError(message)
