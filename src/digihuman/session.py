"""One conversation with one character: the object every front end (terminal, window, web page) drives.

A front end feeds it (`send_text`, `hear`, `user_speech_started`/`stopped`, `push_frame`, `interrupt`) and
listens to it: the sinks it was started with get the timed audio and frames, and `subscribe()` gives an event
stream of state changes, reply text as it is spoken, what was heard, turn records and errors.

It owns the character's performer (voice and face), the Director, the memory, the cost meter and the turn
log. It runs on the caller's event loop and never prints, reads stdin, exits or installs signal handlers:
those belong to the front end. Nothing in it is process-wide, so many sessions share one process; its log
lines carry its id (see logs.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Sequence
from contextvars import copy_context
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from digihuman.character import Character
from digihuman.config import Settings
from digihuman.errors import BackendError
from digihuman.llm.base import LLM
from digihuman.logs import session_context
from digihuman.output.base import Sink
from digihuman.performer import Performer
from digihuman.turn import Stage, Trigger, Turn, TurnResult

if TYPE_CHECKING:
    from digihuman.director import Director
    from digihuman.face.base import Face
    from digihuman.metrics import CostMeter
    from digihuman.vision.camera import CameraFrame
    from digihuman.vision.scene import SceneWatcher

logger = logging.getLogger(__name__)

State = Literal["idle", "listening", "thinking", "speaking"]
EventType = Literal["state", "reply_text", "transcript", "turn", "error"]
EVENT_BACKLOG = 1000  # events a subscriber may fall behind by before the oldest are dropped


@dataclass(frozen=True, slots=True)
class SessionEvent:
    type: EventType
    data: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"type": self.type, **self.data}


@dataclass(frozen=True, slots=True)
class Utterance:
    """What the user said, as the speech recognizer heard it: the text, its language, where the speech
    ended on the microphone's timeline, and how long after that the final transcript was ready."""

    text: str
    language: str = ""
    speech_end_s: float = 0.0
    asr_final_s: float = 0.0


class EventStream:
    """One subscriber's events, in order. A reader that falls far behind loses the oldest, never blocks."""

    def __init__(self, backlog: int = EVENT_BACKLOG) -> None:
        self._queue: asyncio.Queue[SessionEvent | None] = asyncio.Queue()
        self._backlog = backlog
        self.dropped = 0

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> SessionEvent:
        event = await self._queue.get()
        if event is None:
            self._queue.put_nowait(None)  # stay ended for any later read
            raise StopAsyncIteration
        return event

    def put(self, event: SessionEvent | None) -> None:
        if self._queue.qsize() >= self._backlog:
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(event)


class TurnLog:
    """Every turn's record, kept in memory and, with a record folder, appended to `turns.jsonl`."""

    def __init__(self, directory: Path | None) -> None:
        self.path = directory / "turns.jsonl" if directory is not None else None
        self.records: list[dict[str, Any]] = []

    def add(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        if self.path is not None:
            try:
                with self.path.open("a", encoding="utf-8") as file:
                    file.write(json.dumps(record, ensure_ascii=False) + "\n")
            except OSError as exc:
                logger.error("cannot append to %s: %s", self.path, exc)


class Conversation:
    """A conversation session. `await start(sinks)`, feed it, `subscribe()` to it, then `await aclose()`.

    With an `llm`, a Director decides when to speak (replies, and with `proactive` remarks on the camera
    scene). Without one, `speak(text)` performs fixed text.
    """

    def __init__(
        self,
        character: Character,
        settings: Settings,
        *,
        llm: LLM | None = None,
        proactive: bool = False,
        record: Path | None = None,
        session_id: str | None = None,
        performer: Performer | None = None,
    ) -> None:
        self.id = session_id or uuid.uuid4().hex[:8]
        self.character = character
        self.settings = settings.model_copy(deep=True)  # its own: a front end may change the original
        self.llm = llm
        self.proactive = proactive
        self.record = record
        self.state: State = "idle"
        self.turns: list[TurnResult] = []
        self.log = TurnLog(record)
        self.performer = performer  # built by `prepare()` unless given (tests give scripted ones)
        self.director: Director | None = None
        self.first_frame = asyncio.Event()  # set by the first camera frame pushed
        self._cost: CostMeter | None = None
        self._sinks: list[Sink] = []
        self._stage: Stage | None = None
        self._streams: list[EventStream] = []
        self._runner: asyncio.Task[None] | None = None
        self._watcher: SceneWatcher | None = None
        self._frame_lock = asyncio.Lock()
        self._busy = False
        self._speaking = False
        self._user_speaking = False
        self._spoken_turns = 0
        self._waiters: list[asyncio.Future[TurnResult]] = []
        self._changed = asyncio.Event()
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------------------------

    @property
    def face(self) -> Face:
        """The character's face (a window sink shows its idle frames); available after `prepare()`."""
        if self.performer is None:
            raise RuntimeError("call prepare() or start() first")
        return self.performer.face

    @property
    def cost(self) -> CostMeter:
        from digihuman.metrics import CostMeter

        if self._cost is None:
            self._cost = CostMeter()
        return self._cost

    async def prepare(self) -> None:
        """Build the voice and face (a front end that shows the face needs it before `start`)."""
        if self.performer is None:
            with session_context(self.id):
                self.performer = await Performer.open(self.character, self.settings)

    async def start(self, sinks: Sequence[Sink] = (), *, wait_for_frame_s: float = 0.0) -> None:
        """Start performing into `sinks`. With a brain, the Director starts; with `wait_for_frame_s`, a
        proactive greeting waits that long for the first camera frame so that it can see the room."""
        await self.prepare()
        assert self.performer is not None
        self._sinks = list(sinks)
        if self.record is not None:
            from digihuman.output.recorder import TurnRecorder

            face = self.settings.face
            self._sinks.append(TurnRecorder(self.record, fps=face.fps, size=face.size))
        self._stage = Stage(
            tts=self.performer.tts,
            sinks=self._sinks,
            face=self.performer.face,
            language=self.character.language,
            lookahead=self.settings.tts.lookahead,
            fallback_face=self.performer.fallback_face,
            on_sentence=self._on_sentence,
        )
        if self.llm is None:
            return
        from digihuman.director import Director
        from digihuman.llm.memory import ConversationMemory

        with session_context(self.id):
            if self.proactive:
                from digihuman.vision.scene import SceneWatcher

                self._watcher = SceneWatcher()
            self.director = Director(
                self.llm,
                self._stage,
                ConversationMemory(self.character.persona),
                self.settings.director,
                keep_frames=self.settings.camera.keep_frames,
                greet=self.proactive,
                proactive=self.proactive,
                cost=self.cost,
                on_turn=self._on_turn,
                listener=self,
            )
            self.director.set_user_speaking(self._user_speaking)
            context = copy_context()
        self._runner = asyncio.create_task(self._run_director(wait_for_frame_s), context=context)

    async def _run_director(self, wait_for_frame_s: float) -> None:
        assert self.director is not None and self.llm is not None
        try:
            await self.llm.preload(self.director.memory.system_prompt)
        except BackendError as exc:  # reported by the first turn as well; say it now, once
            logger.info("preloading the model failed: %s", exc)
        if wait_for_frame_s > 0:
            try:
                await asyncio.wait_for(self.first_frame.wait(), wait_for_frame_s)
            except TimeoutError:
                logger.info("no camera frame within %.0f s; starting without one", wait_for_frame_s)
        await self.director.run()

    async def wait_stopped(self) -> None:
        """Return when the Director has stopped (after `stop()`); re-raises its failure."""
        if self._runner is not None:
            await self._runner

    def stop(self) -> None:
        """Stop once the current activity is done (a reply in progress is cut by `aclose`)."""
        if self.director is not None:
            self.director.stop()

    async def aclose(self) -> None:
        """Stop: cut and record the turn in progress, then close the outputs, the face, voice and brain."""
        if self._closed:
            return
        self._closed = True
        with session_context(self.id):
            if self._runner is not None:
                self.stop()
                self._runner.cancel()  # the Director cuts its activity; the turn is logged on the way out
                await asyncio.gather(self._runner, return_exceptions=True)
            for waiter in self._waiters:
                if not waiter.done():
                    waiter.set_exception(BackendError("the session closed before the reply"))
            closeables: list[Any] = [*self._sinks]
            if self.performer is not None:
                closeables.append(self.performer)
            if self.llm is not None:
                closeables.append(self.llm)
            for closeable in closeables:
                try:
                    await closeable.aclose()
                except Exception as exc:
                    logger.warning("closing %s failed: %s", type(closeable).__name__, exc)
            self._set_state(force="idle")
            for stream in self._streams:
                stream.put(None)

    # -- inputs ----------------------------------------------------------------------------------------

    def send_text(self, text: str) -> None:
        """Typed user text: it cuts whatever is being said and is answered next."""
        with session_context(self.id):
            self._brain().say(text)
            self._set_state()

    async def ask(self, text: str) -> TurnResult:
        """Send user text and wait for the reply's turn to end."""
        waiter: asyncio.Future[TurnResult] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self.send_text(text)
        return await waiter

    def hear(self, utterance: Utterance) -> None:
        """A finished user utterance from speech recognition: answered like typed text; the turn's
        metrics count from the end of the speech."""
        from digihuman.director import SpokenInput

        self._emit("transcript", {"text": utterance.text, "language": utterance.language, "final": True})
        self._user_speaking = False  # the state goes straight from listening to thinking
        self._brain().set_user_speaking(False)
        asr_final_s = utterance.asr_final_s
        ended_at = asyncio.get_running_loop().time() - asr_final_s
        speech = SpokenInput(ended_at, utterance.speech_end_s, asr_final_s, utterance.language)
        with session_context(self.id):
            self._brain().say(utterance.text, speech)
            self._set_state()

    def hear_partial(self, text: str) -> None:
        """What the recognizer has so far, while the user still speaks."""
        self._emit("transcript", {"text": text, "final": False})

    def user_speech_started(self) -> None:
        self._user_speaking = True
        if self.director is not None:
            self.director.set_user_speaking(True)
        self._set_state()

    def user_speech_stopped(self) -> None:
        self._user_speaking = False
        if self.director is not None:
            self.director.set_user_speaking(False)
        self._set_state()

    def interrupt(self) -> None:
        """Cut the reply being spoken (memory keeps what was heard)."""
        with session_context(self.id):
            if self.director is not None:
                self.director.interrupt()

    async def push_frame(self, frame: CameraFrame) -> None:
        """A camera frame: kept for the next request and, for a proactive companion, watched for change."""
        self.first_frame.set()
        director = self._brain()
        director.observe(frame)
        if self._watcher is None:
            return
        async with self._frame_lock:  # the watcher compares each frame with the previous one
            events = await asyncio.to_thread(self._watcher.observe, frame)
        with session_context(self.id):
            for event in events:
                logger.info("scene: %s (score %.2f)", event.kind, event.score)
                director.on_scene(event)

    async def speak(self, text: str) -> TurnResult:
        """Perform fixed text (a session without a brain): one turn, returned when it has ended."""
        if self._stage is None or self.director is not None:
            raise RuntimeError("speak() needs a started session without a brain")
        turn = Turn(len(self.turns) + 1, text, self._stage)
        self.activity_started("user")
        try:
            with session_context(self.id):
                return await turn.run()
        finally:
            if turn.result is not None:
                self._on_turn(turn.result)
            self.activity_ended("user", None)

    # -- waiting ---------------------------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """Nothing is being said or prepared, and no user text waits for a reply."""
        director_idle = self.director is None or self.director.idle
        return director_idle and not self._busy

    async def wait_idle(self) -> None:
        """Return once the session is idle (or its Director has stopped)."""
        while True:
            self._changed.clear()
            if self.idle or (self._runner is not None and self._runner.done()):
                return
            await self._changed.wait()

    # -- outputs ---------------------------------------------------------------------------------------

    def subscribe(self, backlog: int = EVENT_BACKLOG) -> EventStream:
        """A stream of this session's events from now on; it ends when the session closes."""
        stream = EventStream(backlog)
        self._streams.append(stream)
        if self._closed:
            stream.put(None)
        return stream

    def unsubscribe(self, stream: EventStream) -> None:
        if stream in self._streams:
            self._streams.remove(stream)

    def _emit(self, type_: EventType, data: dict[str, Any]) -> None:
        event = SessionEvent(type_, data)
        for stream in self._streams:
            stream.put(event)

    def _set_state(self, force: State | None = None) -> None:
        if force is not None:
            state = force
        elif self._user_speaking:
            state = "listening"
        elif self._speaking:
            state = "speaking"
        elif not self.idle:
            state = "thinking"
        else:
            state = "idle"
        self._changed.set()
        if state != self.state:
            self.state = state
            self._emit("state", {"state": state})

    # -- callbacks from the Director and the turn -------------------------------------------------------

    def activity_started(self, kind: Trigger) -> None:
        self._busy = True
        self._set_state()

    def activity_ended(self, kind: Trigger, error: str | None) -> None:
        self._busy = False
        self._speaking = False
        if error is not None:
            self._emit("error", {"message": error})
        self._set_state()

    def _on_sentence(self, turn_id: int, text: str, at_s: float) -> None:
        self._speaking = True
        self._emit("reply_text", {"turn": turn_id, "text": text, "at_s": round(at_s, 3)})
        self._set_state()

    def _on_turn(self, result: TurnResult) -> None:
        from digihuman.metrics import turn_record

        self.turns.append(result)
        record = turn_record(result, self.cost)
        self.log.add(record)
        self._emit("turn", record)
        if result.status == "failed":
            self._emit("error", {"message": f"turn {result.turn_id} failed: {result.error}"})
        if result.trigger == "user":
            for waiter in self._waiters:
                if not waiter.done():
                    waiter.set_result(result)
            self._waiters.clear()
        self._set_state()

    def _brain(self) -> Director:
        if self.director is None:
            raise RuntimeError("this session has no brain: start it with an llm")
        return self.director
