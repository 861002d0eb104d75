"""One page's WebSocket to its session: hello, the idle clip, then control messages and media both ways.

Every bad message (malformed, oversized, out of order, unknown) is answered with an `error` event and the
connection and session carry on. The connection ends when the page goes (the session waits `resume_s`
for it to come back) or when another page takes the session over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from digihuman.errors import UserError
from digihuman.logs import session_context
from digihuman.server import protocol
from digihuman.server.media import Outbox
from digihuman.server.protocol import ProtocolError
from digihuman.server.sessions import WebSession, character_info

logger = logging.getLogger(__name__)

MIC_STATES = ("start", "stop")
REPEAT_ERROR_S = 2.0


class Connection:
    def __init__(self, websocket: WebSocket, session: WebSession) -> None:
        self.ws = websocket
        self.session = session
        self.outbox = Outbox(self._send, clock=session.sink.clock)
        self.hello_received = False
        self._last_error = ""
        self._last_error_at = 0.0

    async def _send(self, item: str | bytes) -> None:
        if isinstance(item, bytes):
            await self.ws.send_bytes(item)
        else:
            await self.ws.send_text(item)

    async def serve(self) -> None:
        session = self.session
        resumed = session.connections > 0
        session.attach(self.outbox)
        sender = asyncio.create_task(self.outbox.run(), name="ws-send")
        settings = session.manager.settings.face
        self.outbox.send_json(
            protocol.server_hello(
                session.id,
                character_info(session.character),
                fps=settings.fps,
                size=settings.size,
                resumed=resumed,
            )
        )
        self.outbox.send_json({"type": "state", "state": session.conversation.state})
        idle = asyncio.create_task(self._send_idle_clip(), name="ws-idle")
        try:
            with session_context(session.conversation.id):
                await self._receive_loop()
        finally:
            session.detach(self.outbox)
            if session.closed:  # let the last `closed` event reach the page
                await asyncio.wait({sender}, timeout=2.0)
            self.outbox.close()
            for task in (idle, sender):
                task.cancel()
            await asyncio.gather(idle, sender, return_exceptions=True)
            if session.outbox is not None or session.closed:
                # Another page took the session over, or it closed: end this socket cleanly.
                code, reason = (1000, "closed") if session.closed else (4409, "taken over by another page")
                with contextlib.suppress(Exception):
                    await self.ws.close(code=code, reason=reason)

    async def _send_idle_clip(self) -> None:
        clip = self.session.idle_clip()
        self.outbox.send_json(
            {"type": "idle_clip", "frames": clip.count, "fps": clip.fps, "loop": "pingpong"}
        )
        async for index, jpeg in clip.stream():
            self.outbox.send_bytes(protocol.pack(protocol.IDLE, 0, index / clip.fps, index, jpeg))

    async def _receive_loop(self) -> None:
        while not self.outbox.closed and not self.session.closed:
            receive = asyncio.ensure_future(self.ws.receive())
            closed = asyncio.ensure_future(self._wait_closed())
            done, _ = await asyncio.wait({receive, closed}, return_when=asyncio.FIRST_COMPLETED)
            closed.cancel()
            if receive not in done:
                receive.cancel()
                with contextlib.suppress(BaseException):
                    await receive
                return
            message = receive.result()
            if message["type"] == "websocket.disconnect":
                return
            await self._handle(dict(message))

    async def _wait_closed(self) -> None:
        await self.outbox.closed_event.wait()  # replaced by another page, or the session closed

    async def _handle(self, message: dict[str, Any]) -> None:
        try:
            if message.get("text") is not None:
                await self._on_json(protocol.parse_json(message["text"]))
            elif message.get("bytes") is not None:
                await self._on_media(message["bytes"])
        except (ProtocolError, UserError) as exc:
            self.error(str(exc))
        except WebSocketDisconnect:
            raise
        except Exception as exc:
            logger.exception("handling a page message failed")
            self.error(f"internal error: {exc}")

    def error(self, message: str) -> None:
        # The same error again within a moment (every microphone chunk after a failed `mic start`) is
        # said once: a page must not be flooded.
        now = time.monotonic()
        if self._last_error == message and now - self._last_error_at < REPEAT_ERROR_S:
            return
        self._last_error, self._last_error_at = message, now
        self.outbox.send_json({"type": "error", "message": message})

    async def _on_json(self, message: dict[str, Any]) -> None:
        session = self.session
        kind = message["type"]
        if kind == "hello":
            if self.hello_received:
                raise ProtocolError("hello was already received on this connection")
            self.hello_received = True
            if message["protocol"] != protocol.PROTOCOL_VERSION:
                raise ProtocolError(
                    f"protocol {message['protocol']} is not supported; this server speaks "
                    f"{protocol.PROTOCOL_VERSION}: reload the page"
                )
        elif kind == "user_text":
            session.send_text(message["text"])
        elif kind == "interrupt":
            session.interrupt()
        elif kind == "played":
            turn = message["turn"]
            if turn <= 0 or turn > session.sink.latest_turn:
                raise ProtocolError(f"played: turn {turn} has not started")
            session.sink.ack(turn, float(message["played_s"]), bool(message.get("done", False)))
        elif kind == "mic":
            state = message["state"]
            if state not in MIC_STATES:
                raise ProtocolError(f"mic: state must be {' or '.join(MIC_STATES)}")
            if state == "start":
                try:
                    await session.mic_start()
                except Exception as exc:  # e.g. a speech model missing: the page turns its mic off
                    logger.warning("the microphone cannot start: %s", exc)
                    problem = f"the microphone cannot be used: {exc}"
                    self.outbox.send_json({"type": "error", "message": problem, "source": "mic"})
            else:
                session.mic_stop()
        elif kind == "ping":
            self.outbox.send_json({"type": "pong"})

    async def _on_media(self, data: bytes) -> None:
        if len(data) > protocol.MAX_MEDIA_BYTES:
            raise ProtocolError(f"media message too large: at most {protocol.MAX_MEDIA_BYTES // 1024} kB")
        frame = protocol.unpack(data)
        if frame.kind == protocol.MIC:
            self.session.mic_audio(protocol.from_pcm16(frame.payload), frame.extra)
        elif frame.kind == protocol.CAMERA:
            await self.session.camera_jpeg(frame.payload)
        else:
            raise ProtocolError(
                f"unknown media kind {frame.kind}: send {protocol.MIC} (mic) or {protocol.CAMERA} (camera)"
            )
