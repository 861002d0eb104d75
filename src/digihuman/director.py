"""The Director: the only place that decides to speak.

Inputs are typed (or transcribed) user text and camera scene events. One activity runs at a time: a user
reply, or a proactive "camera round" (one VLM request, then possibly a spoken remark). So there is never more
than one model request in flight, and never two turns at once.

- User text has priority: it cancels whatever runs (a proactive request is dropped, a speaking turn is cut
  and memory keeps only what was heard) and is answered next.
- Proactive rounds: a scene event waits in a single slot (a newer one replaces it: latest wins) until
  `min_gap_s` has passed since the last activity; with no scene events, a round comes at most once per
  `static_gap_s`; a greeting round opens the session. The round sends the persona, the recent conversation
  and the K most recent frames. The model may answer with the silence token (nothing is said, nothing is
  stored). A reply whose first words arrive more than `max_age_s` after its frames were taken is stale and
  dropped. A failed round is logged and the companion carries on; its cooldown still applies.

A round is superseded when a newer scene event arrives while its request runs: the reply describes a scene
that has changed again, so it is dropped unspoken and the newer event (waiting in the slot) gets its own round
after the cooldown. A burst of changes therefore earns one remark, about how the scene settled. Everything
reads time through an injectable clock, so the policy runs on a virtual clock in tests and benchmarks.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from digihuman.clock import Clock
from digihuman.config import DirectorSettings
from digihuman.llm.base import LLM, LLMError, Message, Usage
from digihuman.llm.memory import ConversationMemory, proactive_prompt
from digihuman.llm.scene_words import SceneNotes, ask
from digihuman.metrics import CostMeter, TurnMetrics
from digihuman.streams import close_stream
from digihuman.turn import Stage, Trigger, Turn, TurnResult

if TYPE_CHECKING:
    from digihuman.vision.camera import CameraFrame
    from digihuman.vision.scene import SceneEvent

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProactiveTrigger:
    kind: str  # greeting | scene_changed | someone_arrived | someone_left | static
    at: float  # clock time it arrived


class ActivityListener(Protocol):
    """Told when an activity (a user reply or a camera round) starts and ends, with its error if any."""

    def activity_started(self, kind: Trigger) -> None: ...

    def activity_ended(self, kind: Trigger, error: str | None) -> None: ...


@dataclass(frozen=True, slots=True)
class SpokenInput:
    """How user text was heard: the speech's end (clock time, and on the microphone's timeline), the time
    the final transcript took after it, and the language."""

    ended_at: float
    speech_end_s: float
    asr_final_s: float
    language: str = ""


@dataclass(slots=True)
class DirectorStats:
    user_turns: int = 0
    rounds: int = 0  # proactive model requests
    spoken: int = 0  # proactive rounds that reached the speakers
    silent: int = 0  # the model chose silence
    stale: int = 0  # the reply came later than max_age_s: dropped
    superseded: int = 0  # user text or a newer scene event arrived before the reply was spoken: dropped
    failed: int = 0  # the model failed; the companion carried on
    replaced: int = 0  # waiting triggers replaced by a newer one
    in_flight: int = 0
    max_in_flight: int = 0


class Director:
    """Run with `await director.run()`; feed it with `say`, `observe` and `on_scene` from the event loop."""

    def __init__(
        self,
        llm: LLM,
        stage: Stage,
        memory: ConversationMemory,
        settings: DirectorSettings | None = None,
        *,
        keep_frames: int = 3,
        greet: bool = True,
        proactive: bool = True,
        frames_with_user: bool = True,
        cost: CostMeter | None = None,
        on_turn: Callable[[TurnResult], None] | None = None,
        listener: ActivityListener | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.llm = llm
        self.stage = stage
        self.memory = memory
        self.settings = settings or DirectorSettings()
        self.greet = greet
        self.proactive = proactive
        self.frames_with_user = frames_with_user
        self.clock = clock or stage.clock
        self.cost = cost or CostMeter(self.clock)
        self.on_turn = on_turn
        self.listener = listener
        self.stats = DirectorStats()
        self._frames: deque[CameraFrame] = deque(maxlen=keep_frames)
        self.scene = SceneNotes(self.clock.now())  # the frames in words, for brains that read no pictures
        self._pending_user: list[str] = []
        self._user_since = 0.0
        self._user_speech: SpokenInput | None = None  # how the pending text was heard, if it was spoken
        self._pending_trigger: ProactiveTrigger | None = None
        self._activity: asyncio.Task[None] | None = None
        self._activity_kind: Trigger = "user"
        self._activity_error: str | None = None  # a failure the activity handled (and carried on from)
        self._turn: Turn | None = None
        self._interrupted = False
        self._last_activity = self.clock.now()
        self._wake = asyncio.Event()
        self._stopping = False
        self._turn_ids = itertools.count(1)
        self.user_speaking = False  # set by the listener: no proactive remark starts while it is

    # -- inputs (call on the event loop thread) ----------------------------------------------------

    def say(self, text: str, speech: SpokenInput | None = None) -> None:
        """User text (typed, or heard: `speech`): barges in on whatever runs and is answered next."""
        if not text.strip():
            return
        if not self._pending_user:
            # The turn's metrics count from the first unanswered text, or the end of the speech it came from.
            self._user_since = self.clock.now() if speech is None else speech.ended_at
            self._user_speech = speech
        self._pending_user.append(text.strip())
        self._last_activity = self.clock.now()
        self.interrupt()
        self._wake.set()

    def set_user_speaking(self, speaking: bool) -> None:
        """The user speaks (or stopped): the companion keeps quiet while they do."""
        self.user_speaking = speaking
        self._wake.set()

    def interrupt(self) -> None:
        """Cut what runs now: silent at once; the activity unwinds and memory keeps what was heard."""
        if self.busy and not self._interrupted:
            self._interrupted = True
            if self._turn is not None:
                self._turn.cancel()
            if self._activity is not None:
                self._activity.cancel()

    def observe(self, frame: CameraFrame) -> None:
        """A sampled camera frame; the K most recent go with the next request."""
        if self._frames and self._frames[-1].t_s == frame.t_s:
            return  # a scene event carries a frame that was usually observed already
        self._frames.append(frame)

    def on_scene(self, event: SceneEvent) -> None:
        """A meaningful scene change: it waits for the cooldown in a single slot (latest wins)."""
        self.observe(event.frame)
        self.scene.note(event, self.clock.now())
        waiting = self._pending_trigger
        if waiting is None or waiting.kind != "greeting":  # the greeting is never replaced
            self.stats.replaced += waiting is not None
            self._pending_trigger = ProactiveTrigger(event.kind, self.clock.now())
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    @property
    def busy(self) -> bool:
        return self._activity is not None and not self._activity.done()

    @property
    def idle(self) -> bool:
        """Nothing runs and no user text waits to be answered."""
        return not self.busy and not self._pending_user

    # -- the loop ---------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Decide, start, wait; until `stop()` (or cancellation). Logs the cost summary on the way out."""
        self._last_activity = self.clock.now()
        if self.greet and self.proactive and self._pending_trigger is None:
            self._pending_trigger = ProactiveTrigger("greeting", self.clock.now())
        try:
            while not self._stopping:
                self._wake.clear()
                deadline = self._start_next()
                await self._wait_for_wake(deadline)
        finally:
            if self._activity is not None and not self._activity.done():
                self._activity.cancel()
                await asyncio.wait([self._activity])
            logger.info("%s", self.cost.summary_line())

    async def _wait_for_wake(self, deadline: float | None) -> None:
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._wake.wait())]
        if deadline is not None:
            waits.append(asyncio.ensure_future(self.clock.sleep(deadline - self.clock.now())))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    def _start_next(self) -> float | None:
        """Start the next activity if one is due; return when to look again (None: when woken)."""
        if self.busy:
            return None
        if self._pending_user:
            text, self._pending_user = "\n".join(self._pending_user), []
            self._launch("user", self._user_activity(text, self._user_since, self._user_speech))
            return None
        due = self._proactive_due_at()
        if due is None:
            return None
        if due > self.clock.now():
            return due
        trigger = self._pending_trigger or ProactiveTrigger("static", self.clock.now())
        self._pending_trigger = None
        self._launch("proactive", self._proactive_activity(trigger))
        return None

    def _proactive_due_at(self) -> float | None:
        if not self.proactive or self.user_speaking:
            return None
        trigger = self._pending_trigger
        if trigger is not None:
            if trigger.kind == "greeting":
                return trigger.at
            return self._last_activity + self.settings.min_gap_s
        if self._frames:  # the camera runs, the scene stays static
            return self._last_activity + self.settings.static_gap_s
        return None

    def _launch(self, kind: Trigger, coro: Coroutine[Any, Any, None]) -> None:
        self._interrupted = False
        self._activity_kind, self._activity_error = kind, None
        self._activity = asyncio.create_task(coro)
        self._activity.add_done_callback(self._activity_done)
        if self.listener is not None:
            self.listener.activity_started(kind)

    def _activity_done(self, task: asyncio.Task[None]) -> None:
        self._last_activity = self.clock.now()
        self._turn = None
        error = self._activity_error
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.error("an activity failed; carrying on", exc_info=exc)
            error = str(exc) or type(exc).__name__
        if self.listener is not None:
            self.listener.activity_ended(self._activity_kind, error)
        self._wake.set()

    # -- activities -------------------------------------------------------------------------------------

    async def _user_activity(self, text: str, triggered_at: float, speech: SpokenInput | None) -> None:
        self.stats.user_turns += 1
        self.memory.add_user(text)
        images = [f.jpeg for f in self._frames] if self.frames_with_user else []
        usage = Usage()
        metrics = TurnMetrics(clock=self.clock, started_at=triggered_at)
        if speech is not None:
            metrics.user_speech_end_s, metrics.asr_final_s = speech.speech_end_s, speech.asr_final_s
        stream = self._tracked(self._ask(self.memory.messages(images=images), usage))
        turn = Turn(next(self._turn_ids), stream, self.stage, usage=usage, metrics=metrics)
        turn.user_text, turn.user_language = text, speech.language if speech is not None else ""
        try:
            await self._perform(turn)
        finally:
            if turn.result is None:  # the turn never settled: its request still counts
                self.cost.record(usage, "user")

    async def _proactive_activity(self, trigger: ProactiveTrigger) -> None:
        self.stats.rounds += 1
        issued_at = self.clock.now()
        self._last_activity = issued_at
        token = self.settings.silence_token
        images = [f.jpeg for f in self._frames]
        messages = self.memory.messages(prompt=proactive_prompt(trigger.kind, token), images=images)
        usage = Usage()
        metrics = TurnMetrics(clock=self.clock, started_at=issued_at)
        stream = aiter(self._tracked(self._ask(messages, usage)))
        handed_over = False
        try:
            head, ended = await _read_head(stream, token, metrics)
            if head.lstrip().startswith(token) or (ended and not head.strip()):
                self.stats.silent += 1
                logger.info("camera round (%s): the model chose silence", trigger.kind)
                return
            newer = self._pending_trigger
            if newer is not None and newer.kind != "greeting" and newer.at > issued_at:
                self.stats.superseded += 1
                logger.info("camera round (%s): superseded by %s; dropped", trigger.kind, newer.kind)
                return
            age_s = self.clock.now() - issued_at
            if age_s > self.settings.max_age_s:
                self.stats.stale += 1
                logger.info("camera round (%s): reply %.1f s old is stale; dropped", trigger.kind, age_s)
                return
            handed_over = True
            turn = Turn(
                next(self._turn_ids),
                _without_token(head, stream, token),
                self.stage,
                trigger="proactive",
                usage=usage,
                metrics=metrics,
            )
            await self._perform(turn, observation=trigger.kind)
        except asyncio.CancelledError:
            if not handed_over:
                self.stats.superseded += 1
            raise
        except LLMError as exc:
            self.stats.failed += 1
            self._activity_error = f"camera round failed: {exc}"
            logger.warning("camera round (%s) failed: %s; carrying on", trigger.kind, exc)
        finally:
            if not handed_over:
                self.cost.record(usage, "proactive")
                await close_stream(stream)

    async def _perform(self, turn: Turn, observation: str | None = None) -> TurnResult:
        """Run a turn; whatever happens, memory gets what was heard and `on_turn` gets the result."""
        self._turn = turn
        try:
            return await turn.run()
        finally:
            self._turn = None
            result = turn.result
            if result is not None:
                # Counted before `on_turn`, so the turn's record includes its own request.
                self.cost.record(result.usage, result.trigger)
                if result.trigger == "proactive":
                    self.stats.spoken += bool(result.text_spoken)
                    self.stats.failed += result.status == "failed"
                if result.text_spoken and observation is not None:
                    self.memory.add_observation(observation)
                self.memory.add_assistant(result.text_spoken)
                if self.on_turn is not None:
                    try:
                        self.on_turn(result)
                    except Exception:
                        logger.exception("the on_turn callback failed")

    def _ask(self, messages: list[Message], usage: Usage) -> AsyncIterator[str]:
        """The model's reply; a brain that reads no pictures gets the scene in words instead."""

        def describe() -> str:
            latest = self._frames[-1].rgb_small if self._frames else None
            return self.scene.describe(self.clock.now(), latest)

        return ask(self.llm, messages, usage, describe)

    async def _tracked(self, stream: AsyncIterable[str]) -> AsyncIterator[str]:
        """Counts model requests in flight (the policy allows one)."""
        self.stats.in_flight += 1
        self.stats.max_in_flight = max(self.stats.max_in_flight, self.stats.in_flight)
        iterator = aiter(stream)
        try:
            async for delta in iterator:
                yield delta
        finally:
            self.stats.in_flight -= 1
            await close_stream(iterator)


async def _read_head(stream: AsyncIterator[str], token: str, metrics: TurnMetrics) -> tuple[str, bool]:
    """Read until the reply is known to be speech or the silence token; (text so far, stream ended)."""
    head = ""
    async for delta in stream:
        if delta:
            metrics.mark("llm_first_token_s")
        head += delta
        start = head.lstrip()
        if start and not token.startswith(start[: len(token)]):
            return head, False  # cannot be the token: it is speech
        if start.startswith(token):
            return head, False  # it is the token: silence
    return head, True


async def _without_token(head: str, stream: AsyncIterator[str], token: str) -> AsyncIterator[str]:
    """The reply with every silence token removed (also one split across deltas)."""
    pending = head
    try:
        while True:
            pending = pending.replace(token, "")
            keep = _token_prefix_len(pending, token)  # a tail that may be the start of a token
            if len(pending) > keep:
                yield pending[: len(pending) - keep]
                pending = pending[len(pending) - keep :]
            try:
                pending += await anext(stream)
            except StopAsyncIteration:
                break
        if pending := pending.replace(token, ""):
            yield pending
    finally:
        await close_stream(stream)


def _token_prefix_len(text: str, token: str) -> int:
    for size in range(min(len(text), len(token) - 1), 0, -1):
        if token.startswith(text[-size:]):
            return size
    return 0
