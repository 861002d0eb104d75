"""Ears for a conversation: a microphone stream, through the Listener, into the session.

VAD, end of turn and speech recognition happen in the Listener; this maps its events onto the session's
inputs (speech started, partial text, the utterance, a barge-in) and tells the Listener when the character
speaks, so that talking over it is heard as an interruption. Used by `talk`, `run --mic` and the web page.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from digihuman.audio.listener import (
    FalseInterruption,
    Interruption,
    Listener,
    Partial,
    SpeechStarted,
    Utterance,
)
from digihuman.audio.source import FRAME_SAMPLES, SAMPLE_RATE, AudioFrame, AudioSource
from digihuman.session import Conversation
from digihuman.session import Utterance as HeardUtterance

logger = logging.getLogger(__name__)


async def hear(
    session: Conversation, listener: Listener, source: AudioSource, *, record: Path | None = None
) -> int:
    """Listen until the source ends; return how many utterances reached the session. With `record`, each
    one is also saved as `NNN-user.wav` there (otherwise the audio never leaves memory)."""
    watcher = asyncio.create_task(_follow_speaking(session, listener))
    heard = 0
    try:
        async for event in listener.events(source):
            if isinstance(event, SpeechStarted):
                session.user_speech_started()
            elif isinstance(event, Partial):
                session.hear_partial(event.text)
            elif isinstance(event, Interruption):
                logger.info("barge-in: %r", event.text)
                session.interrupt()
            elif isinstance(event, FalseInterruption):
                logger.info("not an interruption: %r", event.text)
                session.user_speech_stopped()  # a cough, "mm-hm": the character goes on
            elif isinstance(event, Utterance):
                if not event.text.strip():
                    session.user_speech_stopped()
                    continue
                heard += 1
                if record is not None:
                    _save_wav(record / f"{heard:03d}-user.wav", event.audio)
                session.hear(
                    HeardUtterance(event.text, event.language, event.user_speech_end_s, event.asr_final_s)
                )
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    return heard


async def _follow_speaking(session: Conversation, listener: Listener) -> None:
    async for event in session.subscribe():
        if event.type == "state":
            listener.set_speaking(event.data["state"] == "speaking")


def _save_wav(path: Path, audio: np.ndarray) -> None:
    import soundfile

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(str(path), audio, SAMPLE_RATE, subtype="PCM_16")
    except OSError as exc:
        logger.error("cannot save %s: %s", path, exc)


class PushToTalk:
    """A source that passes the microphone only while talking is on; releasing ends the turn at once."""

    RELEASE_S = 2.0  # silence sent in one burst on release: enough for any end-of-turn rule to decide

    def __init__(self, source: AudioSource) -> None:
        self.source = source
        self.talking = False
        self._released = False

    def press(self) -> None:
        self.talking = True

    def release(self) -> None:
        if self.talking:
            self.talking, self._released = False, True

    def toggle(self) -> None:
        self.release() if self.talking else self.press()

    async def frames(self) -> AsyncIterator[AudioFrame]:
        silence = np.zeros(FRAME_SAMPLES, np.float32)
        frame_s = FRAME_SAMPLES / SAMPLE_RATE
        shift_s = 0.0  # the burst of silence moves the rest of the stream later on its timeline
        async for frame in self.source.frames():
            if self._released:
                self._released = False
                for _ in range(round(self.RELEASE_S / frame_s)):
                    yield AudioFrame(silence, frame.t_s + shift_s, frame.at)
                    shift_s += frame_s
            samples = frame.samples if self.talking else silence
            yield AudioFrame(samples, frame.t_s + shift_s, frame.at)

    async def close(self) -> None:
        await self.source.close()
