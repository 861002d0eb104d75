"""The page's microphone and camera into a session: the adapter between the browser and the Listener.

Microphone PCM (16 kHz int16 from the page, whose getUserMedia already cancels the character's echo and
suppresses noise) goes into a `PushSource`; the session's `Listener` runs VAD, end of turn and ASR on it and
`ears.hear` turns its events into the session's inputs (speech started, partials, the utterance,
barge-in). Camera JPEGs are decoded in memory into `CameraFrame`s. Nothing from either is written to disk.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import cv2
import numpy as np

from digihuman.config import CameraSettings
from digihuman.logs import session_context
from digihuman.server.protocol import MIC_RATE, ProtocolError
from digihuman.session import Conversation

if TYPE_CHECKING:
    from digihuman.asr.base import ASR, Transcript
    from digihuman.audio.listener import Listener
    from digihuman.vision.camera import CameraFrame

logger = logging.getLogger(__name__)


class QueuedASR:
    """One speech recognizer for every session, one utterance at a time (the model is not shareable)."""

    def __init__(self, asr: ASR) -> None:
        self._asr = asr
        self._lock = asyncio.Lock()

    async def transcribe(
        self, audio: np.ndarray, language: str | None = None, prompt: str | None = None
    ) -> Transcript:
        async with self._lock:
            return await self._asr.transcribe(audio, language, prompt)

    async def aclose(self) -> None:
        """A session letting go: the model stays for the others (the manager closes it)."""

    async def close_shared(self) -> None:
        await self._asr.aclose()


class MicInput:
    """One session's microphone: a push source fed while the mic is on, heard by `ears.hear`."""

    RELEASE_S = 2.0  # silence pushed when the mic goes off: any end-of-turn rule decides within it

    def __init__(
        self, conversation: Conversation, listener: Listener, on_error: Callable[[str], None]
    ) -> None:
        from digihuman.audio.source import PushSource

        self.conversation = conversation
        self.listener = listener
        self.on_error = on_error
        self.source = PushSource(MIC_RATE)
        self.listening = False
        self._task = asyncio.create_task(self._hear(), name=f"mic-{conversation.id}")

    @classmethod
    async def open(cls, conversation: Conversation, asr: ASR, on_error: Callable[[str], None]) -> MicInput:
        from digihuman.audio.listener import create_listener

        # Loading the VAD and turn models blocks: off the event loop.
        listener = await asyncio.to_thread(create_listener, conversation.settings, asr)
        return cls(conversation, listener, on_error)

    def start(self) -> None:
        self.listening = True

    def stop(self) -> None:
        """Mic off (push-to-talk released, page gone): a turn in progress ends now and is answered."""
        if self.listening:
            self.listening = False
            self.source.push(np.zeros(round(self.RELEASE_S * MIC_RATE), np.float32))

    def push(self, pcm: np.ndarray, sample_rate: int) -> None:
        if not self.listening:
            raise ProtocolError('send {"type": "mic", "state": "start"} before microphone audio')
        if sample_rate != MIC_RATE:
            raise ProtocolError(f"microphone audio must be {MIC_RATE} Hz mono 16-bit PCM")
        self.source.push(pcm)

    async def _hear(self) -> None:
        from digihuman.ears import hear

        with session_context(self.conversation.id):
            try:
                await hear(self.conversation, self.listener, self.source)
            except Exception as exc:
                logger.exception("listening failed")
                self.conversation.user_speech_stopped()
                self.on_error(f"listening failed: {exc}")

    async def aclose(self) -> None:
        self.listening = False
        self.source.end()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self.listener.aclose()


def decode_camera_frame(jpeg: bytes, settings: CameraSettings, t_s: float) -> CameraFrame:
    """A page's camera JPEG as the frame the Director sees (cropped, downscaled, re-encoded in memory)."""
    from digihuman.vision.camera import CameraFrame, shrink

    bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ProtocolError("a camera frame must be a JPEG image")
    small = shrink(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), settings.crop, settings.width)
    ok, data = cv2.imencode(
        ".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, settings.jpeg_quality]
    )
    if not ok:
        raise ProtocolError("the camera frame could not be re-encoded")
    return CameraFrame(t_s, small, data.tobytes())
