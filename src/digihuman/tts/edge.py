"""Microsoft Edge's online voices through edge-tts (optional extra "edge"; needs internet).

`Communicate(text, voice, rate=..., boundary="WordBoundary").stream()` yields MP3 audio (24 kHz mono)
and word boundaries in 100 ns ticks. The MP3 is decoded as it arrives, so playback can start with the
first packets; word timings ride on the chunks that follow them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import numpy as np

from digihuman.errors import BackendError, MissingExtraError
from digihuman.media import AudioChunk, Timing
from digihuman.tts.audio_decode import Mp3StreamDecoder

logger = logging.getLogger(__name__)

TICKS_PER_SECOND = 10_000_000
# One natural-sounding neural voice per language; the character's voice param wins.
DEFAULT_VOICES = {
    "en": "en-US-AriaNeural",
    "zh": "zh-CN-XiaoxiaoNeural",
    "yue": "zh-HK-HiuMaanNeural",
    "ja": "ja-JP-NanamiNeural",
    "ko": "ko-KR-SunHiNeural",
    "fr": "fr-FR-DeniseNeural",
    "de": "de-DE-KatjaNeural",
    "es": "es-ES-ElviraNeural",
    "it": "it-IT-ElsaNeural",
    "pt": "pt-BR-FranciscaNeural",
    "ru": "ru-RU-SvetlanaNeural",
}
OFFLINE_HINT = "edge-tts is an online Microsoft service and needs internet access (espeak works offline)"


def default_voice(language: str) -> str:
    return DEFAULT_VOICES.get(language.lower().split("-")[0], DEFAULT_VOICES["en"])


def _import_edge_tts() -> ModuleType:
    try:
        import edge_tts
    except ImportError:
        raise MissingExtraError("edge-tts", "edge") from None
    return edge_tts


class EdgeTTS:
    """An edge-tts voice. `voice` None picks one per call from the language (see DEFAULT_VOICES)."""

    name = "edge"

    def __init__(
        self, voice: str | None = None, rate: str = "+0%", volume: str = "+0%", pitch: str = "+0Hz"
    ) -> None:
        self._edge = _import_edge_tts()
        self.voice, self.rate, self.volume, self.pitch = voice, rate, volume, pitch
        # Communicate validates voice, rate, volume and pitch without touching the network: fail now,
        # not in the middle of a conversation. Raises ValueError or TypeError naming the bad one.
        self._communicate("check", voice or DEFAULT_VOICES["en"])
        self._network_errors = self._network_error_types()

    async def synthesize(self, text: str, language: str) -> AsyncIterator[AudioChunk]:
        if not text.strip():
            return
        voice = self.voice or default_voice(language)
        stream = self._communicate(text, voice).stream()
        decoder = Mp3StreamDecoder()
        words: list[Timing] = []
        samples_sent = 0
        try:
            async for event in stream:
                if event["type"] == "WordBoundary":
                    start = event["offset"] / TICKS_PER_SECOND
                    words.append(Timing(event["text"], start, start + event["duration"] / TICKS_PER_SECOND))
                elif event["type"] == "audio":
                    pcm = await asyncio.to_thread(decoder.feed, event["data"])
                    if len(pcm):
                        yield self._chunk(pcm, decoder, samples_sent, words, text)
                        samples_sent, words = samples_sent + len(pcm), []
            tail = await asyncio.to_thread(decoder.flush)
            if len(tail) or words:
                yield self._chunk(tail, decoder, samples_sent, words, text)
        except self._edge.exceptions.NoAudioReceived:
            raise BackendError(
                f"edge-tts got no audio for voice '{voice}': check the name (`edge-tts --list-voices`); "
                f"{OFFLINE_HINT}"
            ) from None
        except self._network_errors as exc:
            raise BackendError(
                f"edge-tts could not reach the speech service ({exc}); {OFFLINE_HINT}"
            ) from None
        finally:
            await stream.aclose()  # closes the websocket when the turn is cancelled

    async def aclose(self) -> None:
        return None  # each sentence opens and closes its own connection

    def _communicate(self, text: str, voice: str) -> Any:  # edge_tts.Communicate (the extra is untyped)
        return self._edge.Communicate(
            text, voice, rate=self.rate, volume=self.volume, pitch=self.pitch, boundary="WordBoundary"
        )

    def _network_error_types(self) -> tuple[type[BaseException], ...]:
        errors: tuple[type[BaseException], ...] = (
            OSError,  # aiohttp's connection errors are OSErrors
            TimeoutError,
            self._edge.exceptions.EdgeTTSException,
        )
        try:
            import aiohttp  # edge-tts's own dependency
        except ImportError:
            return errors
        return (*errors, aiohttp.ClientError)

    @staticmethod
    def _chunk(
        pcm: np.ndarray, decoder: Mp3StreamDecoder, samples_sent: int, words: list[Timing], text: str
    ) -> AudioChunk:
        rate = decoder.sample_rate or 24000  # only unknown when no frame decoded: an empty last chunk
        return AudioChunk(
            pcm=pcm, sample_rate=rate, start_s=samples_sent / rate, words=tuple(words), text=text
        )
