"""A Turn is one reply: text (an LLM stream or fixed text) -> sentences -> speech -> face frames -> sinks.

Sentences are synthesized ahead, up to `Stage.lookahead` at once, but delivered strictly in order on one
continuous turn timeline: sentence k's audio and frames are shifted by the length of sentences 0..k-1.
Delivery is paced by the sinks' playback clock (`Sink.played_s`), so no more than `buffer_ahead_s` of audio
and frames waits in the sinks; that bounds memory for long `say` texts and keeps cancellation cheap.

A slow face (`Face.realtime` False) renders ahead in its own worker (slow_face.py).

Cancelling (`Turn.cancel()` or cancelling the task that runs `Turn.run()`) tells every sink to drop the turn
at once, stops LLM, TTS and face work, and keeps as `text_spoken` only the text whose audio was played.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
from collections.abc import AsyncIterable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from digihuman.clock import Clock, LoopClock
from digihuman.face.base import Face
from digihuman.heard import heard_text, join_text
from digihuman.llm.base import LLMError, Usage
from digihuman.media import AudioChunk, VideoFrame
from digihuman.metrics import TurnMetrics
from digihuman.output.base import Sink
from digihuman.sentence import Sentence
from digihuman.slow_face import SlowFaceRenderer
from digihuman.streams import close_stream, drain, once
from digihuman.tts.base import TTS
from digihuman.tts.clean import clean_for_speech
from digihuman.tts.text import Splitter, reply_splitter

logger = logging.getLogger(__name__)

Trigger = Literal["user", "proactive"]
TurnStatus = Literal["ok", "cut", "failed"]

# How often playback is polled while waiting for the sinks (first audio, a slow face's due time).
POLL_S = 0.01
# Cancelled work gets this long to unwind before the turn stops waiting for it.
STOP_GRACE_S = 0.1
# A sink whose clock stands still this long while it holds audio is not pacing us; stop waiting on it.
STALL_S = 5.0


@dataclass(slots=True)
class Stage:
    """What performs a turn: the voice, the face, the outputs, and how far ahead to work."""

    tts: TTS
    sinks: Sequence[Sink]
    face: Face | None = None
    language: str = "en"
    lookahead: int = 2
    fallback_face: Face | None = None
    buffer_ahead_s: float = 1.5
    splitter: Callable[[], Splitter] = reply_splitter
    clean: Callable[[str], str] = clean_for_speech
    clock: Clock = field(default_factory=LoopClock)
    # Told when a sentence's first audio goes to the sinks: (turn id, its shown text, its start on the turn
    # timeline). Subtitles and the "speaking" state come from here.
    on_sentence: Callable[[int, str, float], None] | None = None


@dataclass(slots=True)
class TurnResult:
    turn_id: int
    trigger: Trigger
    status: TurnStatus
    error: str | None
    text_shown: str
    text_spoken: str
    metrics: TurnMetrics
    usage: Usage
    sentences: int = 0  # sentences that reached the sinks
    audio_s: float = 0.0  # length of the turn timeline delivered to the sinks
    heard_s: float = 0.0  # how much of it was played
    user_text: str = ""  # what the user said or typed that this turn answers
    user_language: str = ""  # as the speech recognizer heard it


async def run_turn(
    text: str | AsyncIterable[str],
    stage: Stage,
    *,
    turn_id: int = 1,
    trigger: Trigger = "user",
    usage: Usage | None = None,
    metrics: TurnMetrics | None = None,
) -> TurnResult:
    """Speak one reply; see `Turn`."""
    return await Turn(turn_id, text, stage, trigger=trigger, usage=usage, metrics=metrics).run()


class Turn:
    """One interruptible reply. Create it, `await turn.run()`, and `turn.cancel()` to cut it."""

    def __init__(
        self,
        turn_id: int,
        text: str | AsyncIterable[str],
        stage: Stage,
        *,
        trigger: Trigger = "user",
        usage: Usage | None = None,
        metrics: TurnMetrics | None = None,
    ) -> None:
        self.turn_id = turn_id
        self.trigger: Trigger = trigger
        self.stage = stage
        self.usage = usage or Usage()
        self.metrics = metrics or TurnMetrics(clock=stage.clock)
        self.result: TurnResult | None = None
        self.user_text = ""  # what the turn answers, for its record
        self.user_language = ""
        self._from_llm = not isinstance(text, str)
        self._source: AsyncIterable[str] = once(text) if isinstance(text, str) else text
        self._clock = stage.clock
        self._sentences: list[Sentence] = []
        self._pending_shown = ""  # text that had nothing speakable; shown with the next sentence
        self._produced = False
        self._llm_error: LLMError | None = None
        self._speech_error: BaseException | None = None
        self._fatal: BaseException | None = None
        self._changed = asyncio.Event()
        self.delivering = 0
        self._next_tts = 0
        self._delivered: list[Sentence] = []
        self._timeline_s = 0.0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._task: asyncio.Task[Any] | None = None
        self._cancel_requested = False
        self._finishing = False  # delivered, failed or cut: only cleanup is left
        self._silenced = False
        self._heard_s: float | None = None
        self._pacing = True
        self._first_write_at: float | None = None
        face = stage.face
        self._slow_face = (
            SlowFaceRenderer(face, stage.fallback_face, self, self._clock)
            if face is not None and not face.realtime
            else None
        )

    # -- what the slow-face renderer reads -------------------------------------------------------------

    async def progress(self) -> None:
        self._changed.clear()
        await self._changed.wait()

    def notify(self) -> None:
        self._changed.set()

    # -- control --------------------------------------------------------------------------------------

    def cancel(self) -> None:
        """Cut the turn now: the sinks go silent at once and `run()` returns a "cut" result."""
        if self._cancel_requested or self._finishing:
            return
        self._cancel_requested = True
        self._silence()
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def run(self) -> TurnResult:
        self._task = asyncio.current_task()
        for sink in self.stage.sinks:
            sink.begin_turn(self.turn_id)
        if self._cancel_requested:  # cancelled before it started
            self._finishing = True
            self.result = self._finish("cut", None)
            return self.result
        self._spawn(self._watch_first_audio())
        # The result is settled before cleanup awaits anything, so a second cancellation cannot lose it.
        try:
            await self._perform()
        except asyncio.CancelledError:
            self._finishing = True
            self._silence()
            self.result = self._finish("cut", None)
            own_cut = self._cancel_requested and self._task is not None and self._task.uncancel() == 0
            await self._stop_work()
            if own_cut:
                return self.result  # cut by `cancel()`: a result, not an exception
            raise
        except Exception as exc:
            self._finishing = True
            error = _first_error(exc)
            logger.info("turn %d failed: %s", self.turn_id, error)
            self._silence()
            self.result = self._finish("failed", error)
            await self._stop_work()
            return self.result
        self._finishing = True
        if (failure := self._speech_error or self._llm_error) is not None:
            self.result = self._finish("failed", _first_error(failure))
        else:
            self.result = self._finish("ok", None)
        await self._stop_work()
        return self.result

    # -- the pipeline ---------------------------------------------------------------------------------

    async def _perform(self) -> None:
        self._spawn(self._produce())
        if self._slow_face is not None:
            self._spawn(self._slow_face.render_ahead())
        index = 0
        while (sentence := await self.sentence_at(index)) is not None:
            self.delivering = index
            self._schedule_tts()
            self._changed.set()  # the render worker waits for delivery progress
            try:
                await self._deliver(sentence)
            except Exception:
                if sentence.error is None:
                    raise
                # The voice failed: what was already delivered still plays; the turn reports the error.
                logger.info("turn %d: speech failed: %s", self.turn_id, sentence.error)
                self._speech_error = sentence.error
                break
            index += 1
        await asyncio.gather(*(sink.end_turn(self.turn_id) for sink in self.stage.sinks))
        self.metrics.mark("total_s")

    async def _produce(self) -> None:
        """LLM deltas (or the fixed text) -> sentences."""
        splitter = self.stage.splitter()
        stream = aiter(self._source)
        try:
            async for delta in stream:
                if not delta:
                    continue
                if self._from_llm:
                    self.metrics.mark("llm_first_token_s")
                for text in splitter.feed(delta):
                    self._add_sentence(text)
            for text in splitter.flush():
                self._add_sentence(text)
            if self._from_llm:
                self.metrics.mark("llm_done_s")
        except LLMError as exc:
            # Speak what was complete before the failure; the turn reports the error.
            logger.info("turn %d: LLM failed: %s", self.turn_id, exc)
            self._llm_error = exc
        finally:
            self._produced = True
            self._changed.set()
            await close_stream(stream)

    def _add_sentence(self, shown: str) -> None:
        spoken = self.stage.clean(shown).strip()
        if not spoken:  # only symbols or markup: nothing to say, but it is still shown
            self._pending_shown = join_text([self._pending_shown, shown])
            return
        shown = join_text([self._pending_shown, shown])
        self._pending_shown = ""
        sentence = Sentence(len(self._sentences), shown, spoken)
        self._sentences.append(sentence)
        if sentence.index == 0:
            self.metrics.mark("first_sentence_s")
        self._schedule_tts()
        self._changed.set()

    async def sentence_at(self, index: int) -> Sentence | None:
        """Sentence `index` once it exists; None when the text ended before it."""
        while True:
            if self._fatal is not None:
                raise self._fatal
            if index < len(self._sentences):
                return self._sentences[index]
            if self._produced:
                return None
            self._changed.clear()
            await self._changed.wait()

    def _schedule_tts(self) -> None:
        """Start synthesis for every known sentence up to `lookahead` beyond the one being delivered."""
        limit = self.delivering + self.stage.lookahead
        while self._next_tts <= limit and self._next_tts < len(self._sentences):
            self._spawn(self._synthesize(self._sentences[self._next_tts]))
            self._next_tts += 1

    async def _synthesize(self, sentence: Sentence) -> None:
        stream = aiter(self.stage.tts.synthesize(sentence.spoken, self.stage.language))
        try:
            async for chunk in stream:
                if sentence.index == 0 and not sentence.chunks:
                    self.metrics.mark("tts_first_audio_s")
                sentence.add(chunk)
            sentence.finish()
        except asyncio.CancelledError:
            sentence.finish(asyncio.CancelledError())
            raise
        except Exception as exc:
            sentence.finish(exc)
        finally:
            await close_stream(stream)

    async def _deliver(self, sentence: Sentence) -> None:
        sentence.offset_s = self._timeline_s
        self._delivered.append(sentence)
        face = self.stage.face
        if face is None or face.realtime:
            await self._deliver_streaming(sentence, face)
        else:
            assert self._slow_face is not None
            frames = await self._slow_face.frames_for(sentence)
            if frames is None:
                await self._deliver_streaming(sentence, self.stage.fallback_face)
            else:
                await self._deliver_rendered(sentence, frames)
        self._timeline_s = sentence.offset_s + sentence.duration_s

    async def _deliver_streaming(self, sentence: Sentence, face: Face | None) -> None:
        """Audio to the sinks as it is synthesized, and through a real-time face into frames."""
        face_input: asyncio.Queue[AudioChunk | None] = asyncio.Queue()

        async def feed_audio() -> None:
            try:
                async for chunk in sentence.stream():
                    await self._pace(sentence.offset_s + chunk.start_s)
                    await self._write_audio(sentence, chunk)
                    face_input.put_nowait(chunk)
            finally:
                face_input.put_nowait(None)

        async def show_frames(face: Face) -> None:
            frames = aiter(face.animate(drain(face_input)))
            try:
                async for frame in frames:
                    await self._write_frame(sentence, frame)
            finally:
                await close_stream(frames)

        async with asyncio.TaskGroup() as group:
            group.create_task(feed_audio())
            if face is not None:
                group.create_task(show_frames(face))

    async def _deliver_rendered(self, sentence: Sentence, frames: list[VideoFrame]) -> None:
        """A slow face's finished sentence: audio and frames interleaved in time order, paced."""
        timed: list[tuple[float, int, AudioChunk | VideoFrame]] = [(c.start_s, 0, c) for c in sentence.chunks]
        timed += [(f.pts_s, 1, f) for f in frames]
        timed.sort(key=lambda item: (item[0], item[1]))
        for at_s, _, item in timed:
            await self._pace(sentence.offset_s + at_s)
            if isinstance(item, AudioChunk):
                await self._write_audio(sentence, item)
            else:
                await self._write_frame(sentence, item)

    # -- the sinks ------------------------------------------------------------------------------------

    async def _write_audio(self, sentence: Sentence, chunk: AudioChunk) -> None:
        if self._silenced:
            return
        offset = sentence.offset_s
        stamped = dataclasses.replace(
            chunk,
            start_s=offset + chunk.start_s,
            phonemes=tuple(t.shifted(offset) for t in chunk.phonemes),
            words=tuple(t.shifted(offset) for t in chunk.words),
            turn_id=self.turn_id,
            text=sentence.shown,
        )
        if not sentence.announced and self.stage.on_sentence is not None:
            sentence.announced = True
            self.stage.on_sentence(self.turn_id, sentence.shown, offset)
        sentence.duration_s = max(sentence.duration_s, chunk.start_s + chunk.duration_s)
        if self._first_write_at is None:
            self._first_write_at = self._clock.now()
        for sink in self.stage.sinks:
            await sink.write_audio(stamped)

    async def _write_frame(self, sentence: Sentence, frame: VideoFrame) -> None:
        if self._silenced:
            return
        stamped = dataclasses.replace(frame, pts_s=sentence.offset_s + frame.pts_s, turn_id=self.turn_id)
        self.metrics.mark("first_frame_s")
        for sink in self.stage.sinks:
            await sink.write_frame(stamped)

    def played(self) -> float:
        """The turn's playback position: the slowest sink is the one the user is still hearing."""
        sinks = self.stage.sinks
        return min((sink.played_s(self.turn_id) for sink in sinks), default=math.inf)

    async def _pace(self, timeline_s: float) -> None:
        """Wait until writing what starts at `timeline_s` keeps at most `buffer_ahead_s` queued."""
        last_played, still_since = -1.0, self._clock.now()
        while self._pacing:
            played = self.played()
            early_s = timeline_s - self.stage.buffer_ahead_s - played
            if early_s <= 0:
                return
            now = self._clock.now()
            if played != last_played:
                last_played, still_since = played, now
            elif now - still_since > STALL_S:
                logger.warning("turn %d: sinks' clock stopped at %.2f s; not pacing", self.turn_id, played)
                self._pacing = False
                return
            # Playback advances at most in real time: nothing can change before `early_s` has passed.
            await self._clock.sleep(max(POLL_S, early_s))

    async def _watch_first_audio(self) -> None:
        if not self.stage.sinks:
            return
        while (played := self.played()) <= 0 or self._first_write_at is None:
            await self._clock.sleep(POLL_S)
        # Back-date to when playback began; a recorder "plays" faster than real time, so never before
        # the first audio reached the sinks.
        self.metrics.mark("first_audio_played_s", at=max(self._clock.now() - played, self._first_write_at))

    def _silence(self) -> None:
        """Tell every sink to drop the turn now, and remember how much of it was heard."""
        if self._silenced:
            return
        self._silenced = True
        heard: list[float] = []
        for sink in self.stage.sinks:
            try:
                heard.append(sink.cancel_turn(self.turn_id))
            except Exception:
                logger.exception("turn %d: a sink failed to cancel", self.turn_id)
        self._heard_s = min(heard, default=0.0)

    # -- bookkeeping ----------------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and self._fatal is None:
            self._fatal = task.exception()
            self._changed.set()

    async def _stop_work(self) -> None:
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        for sentence in self._sentences:
            if sentence.render is not None and not sentence.render.done():
                sentence.render.cancel()
                tasks.append(sentence.render)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=STOP_GRACE_S)
            if pending:
                logger.warning("turn %d: %d tasks ignored cancellation", self.turn_id, len(pending))

    def _finish(self, status: TurnStatus, error: str | None) -> TurnResult:
        audio_s = sum(s.duration_s for s in self._delivered)
        if status != "cut" and self._heard_s is None:
            heard_s = audio_s  # delivered to the end (sinks' end_turn returned)
        else:
            heard_s = self._heard_s if self._heard_s is not None else self.played()
            heard_s = min(heard_s, audio_s)
        ending = self._pending_shown if status == "ok" else ""
        return TurnResult(
            turn_id=self.turn_id,
            trigger=self.trigger,
            status=status,
            error=error,
            text_shown=join_text([*(s.shown for s in self._delivered), ending]),
            text_spoken=heard_text(self._delivered, heard_s),
            metrics=self.metrics,
            usage=self.usage,
            sentences=len(self._delivered),
            audio_s=audio_s,
            heard_s=heard_s,
            user_text=self.user_text,
            user_language=self.user_language,
        )


def _first_error(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return str(exc) or type(exc).__name__
