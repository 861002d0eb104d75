"""A stand-in for the `edge_tts` package (rany2/edge-tts 7.x) with no network.

`Communicate` validates its arguments like the real one and `stream()` yields what the service sends:
{"type": "WordBoundary", "offset", "duration", "text"} (100 ns ticks) and {"type": "audio", "data"} with
real 24 kHz 48 kbit/s mono MP3 bytes. A voice the service does not know gives no audio
(NoAudioReceived); `state.online = False` fails the connection like aiohttp does (an OSError).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np
from tests.tts.mp3_audio import encode_mp3

from . import exceptions

__all__ = ["Communicate", "exceptions", "state"]

DEFAULT_VOICE = "en-US-EmmaMultilingualNeural"
RATE = 24000
TICKS_PER_SECOND = 10_000_000
MP3_BYTES_PER_SECOND = 48000 // 8
MESSAGE_BYTES = 1500
WORD_GAP_S = 0.05
KNOWN_VOICES = {
    "en-US-AriaNeural",
    "en-US-EmmaMultilingualNeural",
    "zh-CN-XiaoxiaoNeural",
    "en-GB-SoniaNeural",
}


@dataclass
class State:
    """Knobs and observations for tests."""

    online: bool = True
    message_delay_s: float = 0.0
    communicates: list[Communicate] = field(default_factory=list)
    streams_closed: int = 0
    messages_sent: int = 0


state = State()


def word_seconds(word: str) -> float:
    return 0.1 + 0.03 * len(word)


class Communicate:
    def __init__(
        self,
        text: str,
        voice: str = DEFAULT_VOICE,
        *,
        rate: str = "+0%",
        volume: str = "+0%",
        pitch: str = "+0Hz",
        boundary: str = "SentenceBoundary",
        connector: object = None,
        proxy: str | None = None,
        connect_timeout: int | None = 10,
        receive_timeout: int | None = 60,
    ) -> None:
        if not isinstance(text, str):
            raise TypeError("text must be str")
        if not isinstance(voice, str):
            raise TypeError("voice must be str")
        if re.match(r"^([a-z]{2,})-([A-Z]{2,})-(.+Neural)$", voice) is None:
            raise ValueError(f"Invalid voice '{voice}'.")
        for name, value, pattern in (
            ("rate", rate, r"^[+-]\d+%$"),
            ("volume", volume, r"^[+-]\d+%$"),
            ("pitch", pitch, r"^[+-]\d+Hz$"),
        ):
            if not isinstance(value, str):
                raise TypeError(f"{name} must be str")
            if re.match(pattern, value) is None:
                raise ValueError(f"Invalid {name} '{value}'.")
        self.text, self.voice, self.rate, self.boundary = text, voice, rate, boundary
        self._streamed = False
        state.communicates.append(self)

    async def stream(self) -> AsyncIterator[dict]:
        if self._streamed:
            raise RuntimeError("stream can only be called once.")
        self._streamed = True
        try:
            await asyncio.sleep(0)
            if not state.online:
                raise OSError(
                    "Cannot connect to host speech.platform.bing.com:443 ssl:default "
                    "[Temporary failure in name resolution]"
                )
            if self.voice not in KNOWN_VOICES:
                raise exceptions.NoAudioReceived(
                    "No audio was received. Please verify that your parameters are correct."
                )
            words = self.text.split()
            mp3 = encode_mp3(np.concatenate([self._word_audio(w) for w in words]))
            sent, offset_s = 0, 0.0
            for word in words:
                if self.boundary == "WordBoundary":
                    yield {
                        "type": "WordBoundary",
                        "offset": int(offset_s * TICKS_PER_SECOND),
                        "duration": int(word_seconds(word) * TICKS_PER_SECOND),
                        "text": word,
                    }
                offset_s += word_seconds(word) + WORD_GAP_S
                until = min(len(mp3), int(offset_s * MP3_BYTES_PER_SECOND))
                if word == words[-1]:
                    until = len(mp3)
                while sent < until:
                    data = mp3[sent : min(until, sent + MESSAGE_BYTES)]
                    sent += len(data)
                    if state.message_delay_s:
                        await asyncio.sleep(state.message_delay_s)
                    state.messages_sent += 1
                    yield {"type": "audio", "data": data}
        finally:
            state.streams_closed += 1

    @staticmethod
    def _word_audio(word: str) -> np.ndarray:
        n = int(word_seconds(word) * RATE)
        tone = 0.3 * np.sin(2 * np.pi * (200 + 20 * len(word)) * np.arange(n) / RATE)
        return np.concatenate([tone, np.zeros(int(WORD_GAP_S * RATE))]).astype(np.float32)
