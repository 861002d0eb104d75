"""Web sessions: one `Conversation` per page, their limits, their lifetimes, and what they share.

Each session has its own character, memory, Director and LLM client (`make_llm` per session); they share
only the read-only idle clips and the backends that cannot serve two sessions at once (the in-process
llama.cpp model and the speech recognizer), which are behind a queue. A session survives its page
disconnecting for `resume_s` (a reconnect resumes it) and closes after `idle_timeout_s` without input. One
session failing is logged and closes that session alone.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from digihuman.character import Character, find_character
from digihuman.config import Settings
from digihuman.errors import UserError
from digihuman.llm import make_llm
from digihuman.llm.base import LLM, Message, Usage
from digihuman.logs import session_context
from digihuman.server.listening import MicInput, QueuedASR
from digihuman.server.media import IdleClip, Outbox, WebSink
from digihuman.server.protocol import ProtocolError
from digihuman.session import Conversation, SessionEvent

if TYPE_CHECKING:
    from digihuman.asr.base import ASR

logger = logging.getLogger(__name__)

REAP_EVERY_S = 5.0


class ServerBusy(UserError):
    """Too many sessions are open (HTTP 503)."""


class UnknownSession(UserError):
    """No such session, or it has closed (HTTP 404)."""


def session_ids_match(a: str, b: str) -> bool:
    return secrets.compare_digest(a.encode(), b.encode())


class SharedLLM:
    """One in-process model for every session, one request at a time (llama.cpp cannot run two)."""

    def __init__(self, llm: LLM) -> None:
        self._llm = llm
        self._lock = asyncio.Lock()

    @property
    def name(self) -> str:
        return self._llm.name

    @property
    def model(self) -> str:
        return self._llm.model

    @property
    def accepts_images(self) -> bool | None:
        """The wrapped model's (not in the LLM protocol: read and learned by llm/scene_words.py)."""
        accepts: bool | None = getattr(self._llm, "accepts_images", None)
        return accepts

    @accepts_images.setter
    def accepts_images(self, value: bool | None) -> None:
        setattr(self._llm, "accepts_images", value)  # noqa: B010 - not in the LLM protocol

    async def stream(self, messages: Sequence[Message], usage: Usage | None = None) -> AsyncIterator[str]:
        async with self._lock:
            async for delta in self._llm.stream(messages, usage):
                yield delta

    async def preload(self, system: str = "") -> None:
        async with self._lock:
            await self._llm.preload(system)

    async def aclose(self) -> None:
        """A session letting go: the model stays for the others (the manager closes it)."""

    async def close_shared(self) -> None:
        await self._llm.aclose()


def character_info(character: Character) -> dict[str, Any]:
    return {"id": character.id, "name": character.name, "language": character.language}


class WebSession:
    """A page's conversation: the session, its web sink, its event forwarding and its microphone."""

    def __init__(self, manager: SessionManager, character: Character, llm: LLM | None) -> None:
        self.id = secrets.token_urlsafe(12)  # the id is the capability to resume it: unguessable
        self.manager = manager
        self.character = character
        self.sink = WebSink()
        self.conversation = Conversation(character, manager.settings, llm=llm, session_id=self.id[:8])
        self.outbox: Outbox | None = None
        self.created_at = time.monotonic()
        self.last_input_at = self.created_at
        self.disconnected_at: float | None = self.created_at
        self.mic: MicInput | None = None
        self.connections = 0  # pages that have connected so far (a later one resumes)
        self.closed = False
        self.close_reason = ""
        self.stopped = False  # the Director ended (it failed): the session is closed soon
        self._forwarder: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._last_camera_at = 0.0

    async def start(self) -> None:
        # A spare session may have waited a while: its lifetime starts now.
        self.created_at = self.last_input_at = time.monotonic()
        self.disconnected_at = self.created_at
        await self.conversation.start([self.sink])
        self._forwarder = asyncio.create_task(self._forward(), name=f"events-{self.id[:8]}")
        self._watcher = asyncio.create_task(self._watch(), name=f"director-{self.id[:8]}")

    async def _watch(self) -> None:
        """The Director stops only when it fails: say so on the page; the reaper then closes the session."""
        try:
            await self.conversation.wait_stopped()
        except Exception as exc:
            with session_context(self.conversation.id):
                logger.exception("web session failed")
            if self.outbox is not None:
                self.outbox.send_json({"type": "error", "message": f"the session failed: {exc}"})
        if self.conversation.director is not None:
            self.stopped = True

    @property
    def fps(self) -> int:
        return self.manager.settings.face.fps

    def idle_clip(self) -> IdleClip:
        return self.manager.idle_clip(self.character, self.conversation)

    # -- connection ------------------------------------------------------------------------------------

    def attach(self, outbox: Outbox) -> None:
        """A page connected: it gets the media and events from now on (a previous page is dropped)."""
        if self.outbox is not None:
            self.outbox.close()
        self.outbox = outbox
        self.connections += 1
        self.sink.attach(outbox)
        self.disconnected_at = None
        self.touch()

    def detach(self, outbox: Outbox) -> None:
        if self.outbox is outbox:
            self.outbox = None
            self.sink.attach(None)
            self.disconnected_at = time.monotonic()
            if self.mic is not None:
                self.mic.stop()  # a page that is gone does not speak

    def touch(self) -> None:
        self.last_input_at = time.monotonic()

    # -- inputs ----------------------------------------------------------------------------------------

    def send_text(self, text: str) -> None:
        self.touch()
        self.conversation.send_text(text)

    def interrupt(self) -> None:
        self.touch()
        self.conversation.interrupt()

    async def mic_start(self) -> None:
        self.touch()
        if self.mic is None:
            asr = await self.manager.shared_asr()
            self.mic = await MicInput.open(self.conversation, asr, self._send_error)
        self.mic.start()

    def _send_error(self, message: str) -> None:
        if self.outbox is not None:
            self.outbox.send_json({"type": "error", "message": message})

    def mic_stop(self) -> None:
        if self.mic is not None:
            self.mic.stop()

    def mic_audio(self, pcm: np.ndarray, sample_rate: int) -> None:
        if self.mic is None or not self.mic.listening:
            raise ProtocolError('send {"type": "mic", "state": "start"} before microphone audio')
        self.touch()
        self.mic.push(pcm, sample_rate)

    async def camera_jpeg(self, jpeg: bytes) -> None:
        """A camera frame from the page, decoded in memory only (beyond 2x sample_fps: skipped)."""
        from digihuman.server.listening import decode_camera_frame

        now = time.monotonic()
        if now - self._last_camera_at < 0.5 / self.manager.settings.camera.sample_fps:
            return
        self._last_camera_at = now
        frame = await asyncio.to_thread(decode_camera_frame, jpeg, self.manager.settings.camera, now)
        await self.conversation.push_frame(frame)

    # -- outputs ---------------------------------------------------------------------------------------

    async def _forward(self) -> None:
        """Session events to the page."""
        async for event in self.conversation.subscribe():
            if self.outbox is not None:
                self.outbox.send_json(event_message(event))

    async def aclose(self, reason: str = "closed") -> None:
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        with session_context(self.conversation.id):
            logger.info("web session closing: %s", reason)
            if self.outbox is not None:
                self.outbox.send_json({"type": "closed", "reason": reason})
            if self.mic is not None:
                await self.mic.aclose()
            await self.conversation.aclose()
            for task in (self._forwarder, self._watcher):
                if task is not None:
                    await asyncio.gather(task, return_exceptions=True)
            if self.outbox is not None:
                self.outbox.close(drain=True)


def event_message(event: SessionEvent) -> dict[str, Any]:
    return event.as_json()


class SessionManager:
    """Every web session of one server, with the limits from `[server]`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sessions: dict[str, WebSession] = {}
        self._clips: dict[tuple[str, int, int], IdleClip] = {}
        self._asr: QueuedASR | None = None
        self._asr_lock = asyncio.Lock()
        self._shared_llm: SharedLLM | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._warming: asyncio.Task[None] | None = None
        self._spare: WebSession | None = None
        self._spare_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._creating = 0
        self.loop: asyncio.AbstractEventLoop | None = None  # the server's, once started
        self.say_slots = asyncio.Semaphore(max(1, settings.server.max_sessions))

    @property
    def limit(self) -> int:
        return self.settings.server.max_sessions

    def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        if self._reaper is None:
            self._reaper = asyncio.create_task(self._reap_forever(), name="session-reaper")
            self._warming = asyncio.create_task(self._warm_up(), name="warm-up")

    async def _warm_up(self) -> None:
        """Import the conversation machinery and render the default character's idle clip now, so the
        first page shows a face as fast as later ones."""
        try:
            import digihuman.director
            import digihuman.llm.memory  # noqa: F401

            character = await asyncio.to_thread(find_character, self.settings.character)
            key = self._clip_key(character)
            if key not in self._clips:
                from digihuman.performer import make_face

                face = await asyncio.to_thread(make_face, character, self.settings)
                clip = self._clips[key] = IdleClip(self.settings.face.fps)
                clip.start(face)
                try:
                    async for _ in clip.stream():
                        pass
                finally:
                    await face.aclose()
        except Exception as exc:  # a broken default character is reported when a page asks for it
            logger.info("warming up failed: %s", exc)
        self._refill_spare()

    def check_capacity(self) -> None:
        if len(self.sessions) + self._creating >= self.limit:
            raise ServerBusy(
                f"the server is full: {self.limit} sessions are open (server.max_sessions); "
                "try again later or close another page"
            )

    async def create(self, character_name: str | None = None) -> WebSession:
        self.check_capacity()
        self._creating += 1
        try:
            character = find_character(character_name or self.settings.character)
            session = self._take_spare(character)
            if session is None:
                session = WebSession(self, character, self._llm())
            try:
                await session.start()
            except BaseException:
                await session.aclose("failed to start")
                raise
        finally:
            self._creating -= 1
        self.sessions[session.id] = session
        session.idle_clip()  # start rendering it before the page asks
        self._refill_spare()
        logger.info("web session %s: %s (%d open)", session.id[:8], character.id, len(self.sessions))
        return session

    # A spare session for the default character, its voice and face already loaded, makes a page's face
    # appear sooner; it is not counted as open and holds nothing but memory.

    def _take_spare(self, character: Character) -> WebSession | None:
        spare, self._spare = self._spare, None
        if spare is not None and spare.character.path == character.path:
            return spare
        if spare is not None:
            self._background(spare.aclose("not needed"))
        return None

    def _refill_spare(self) -> None:
        if self._spare is None and self._spare_task is None and self.loop is not None:
            self._spare_task = asyncio.create_task(self._make_spare(), name="spare-session")

    async def _make_spare(self) -> None:
        try:
            character = await asyncio.to_thread(find_character, self.settings.character)
            spare = WebSession(self, character, self._llm())
            try:
                await spare.conversation.prepare()
            except BaseException:
                await spare.aclose("failed to prepare")
                raise
            self._spare = spare
        except Exception as exc:  # a broken default character is reported when a page asks for it
            logger.info("no spare session: %s", exc)
        finally:
            self._spare_task = None

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def get(self, session_id: str) -> WebSession:
        for known, session in self.sessions.items():
            if session_ids_match(known, session_id) and not session.closed:
                return session
        raise UnknownSession(f"no session {session_id[:40]!r}: it closed or never existed; start a new one")

    async def close(self, session_id: str, reason: str) -> None:
        session = self.sessions.pop(session_id, None)
        if session is not None:
            try:
                await session.aclose(reason)
            except Exception:
                logger.exception("closing web session %s failed", session_id[:8])

    def _llm(self) -> LLM:
        if self.settings.llm.backend == "llamacpp":
            if self._shared_llm is None:
                self._shared_llm = SharedLLM(make_llm(self.settings.llm))
            return self._shared_llm
        return make_llm(self.settings.llm)

    async def shared_asr(self) -> ASR:
        async with self._asr_lock:
            if self._asr is None:
                from digihuman.asr.factory import create_asr

                self._asr = QueuedASR(await asyncio.to_thread(create_asr, self.settings.asr))
            return self._asr

    def idle_clip(self, character: Character, conversation: Conversation) -> IdleClip:
        key = self._clip_key(character)
        clip = self._clips.get(key)
        if clip is None or clip.error is not None:
            clip = self._clips[key] = IdleClip(self.settings.face.fps)
            clip.start(conversation.face)
        return clip

    def _clip_key(self, character: Character) -> tuple[str, int, int]:
        return (str(character.path), self.settings.face.size, self.settings.face.fps)

    # -- lifetimes -------------------------------------------------------------------------------------

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(REAP_EVERY_S)
            try:
                await self.reap()
            except Exception:
                logger.exception("closing idle sessions failed")

    async def reap(self, now: float | None = None) -> None:
        """Close sessions left without a page for `resume_s`, or without input for `idle_timeout_s`."""
        now = time.monotonic() if now is None else now
        server = self.settings.server
        for session_id, session in list(self.sessions.items()):
            gone = session.disconnected_at is not None and now - session.disconnected_at > server.resume_s
            idle = now - session.last_input_at > server.idle_timeout_s and session.conversation.idle
            failed = session.stopped
            if gone or idle or failed:
                reason = "the page left" if gone else "idle too long" if idle else "the session failed"
                await self.close(session_id, reason)

    async def aclose(self) -> None:
        for task in (self._reaper, self._warming, self._spare_task, *self._tasks):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self._spare is not None:
            await self._spare.aclose("the server stopped")
        await asyncio.gather(*(self.close(sid, "the server stopped") for sid in list(self.sessions)))
        if self._asr is not None:
            await self._asr.close_shared()
        if self._shared_llm is not None:
            await self._shared_llm.close_shared()
