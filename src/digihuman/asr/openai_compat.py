"""Any OpenAI-compatible `/v1/audio/transcriptions` server, through the official `openai` client.

whisper.cpp's server (`whisper-server --inference-path /v1/audio/transcriptions`), vLLM (`vllm serve
openai/whisper-large-v3`), speaches/faster-whisper-server, SenseVoice wrappers and OpenAI itself speak it:
multipart `file` + `model` (+ `language`, `prompt`, `response_format`, `timestamp_granularities[]`), answer
`{"text": ...}` (json) or with `language`, `duration`, `words` (verbose_json). We ask for verbose_json with
word timings and fall back to plain json for servers that refuse it. Audio goes up as 16-bit WAV in memory.
"""

from __future__ import annotations

import io
import logging
import wave
from typing import Any

import numpy as np

from digihuman.asr.base import SIMPLIFIED_PROMPT, Transcript, clean_text, is_chinese, normalize_language
from digihuman.audio.source import SAMPLE_RATE
from digihuman.errors import BackendError
from digihuman.media import Timing

logger = logging.getLogger(__name__)

# verbose_json names the language in English words (OpenAI) or by code (whisper.cpp, vLLM).
_LANGUAGE_NAMES = {
    "english": "en",
    "chinese": "zh",
    "mandarin": "zh",
    "cantonese": "yue",
    "japanese": "ja",
    "korean": "ko",
    "french": "fr",
    "german": "de",
    "spanish": "es",
    "russian": "ru",
}


def wav_bytes(audio: np.ndarray) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes((np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def _error_text(exc: Any) -> str:
    body: Any = getattr(exc, "body", None)
    if isinstance(body, dict):
        body = body.get("error", body)
    if isinstance(body, dict):
        body = body.get("message") or body.get("detail") or body
    text = str(body if body else getattr(exc, "message", exc)).strip()
    return (text.splitlines() or [""])[0][:300]


class OpenAICompatASR:
    """Transcription by an OpenAI-compatible server. Safe to share: the client is async and stateless."""

    def __init__(
        self,
        url: str,
        model: str,
        *,
        api_key: str = "not-needed",
        language: str | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        import openai

        self.url = url.rstrip("/")
        self.model = model
        self.language = normalize_language(language)
        self._openai = openai
        self._client = openai.AsyncOpenAI(
            base_url=self.url,
            api_key=api_key or "not-needed",
            timeout=openai.Timeout(timeout_s, connect=min(10.0, timeout_s)),
            max_retries=1,
        )
        self._verbose = True  # cleared when the server refuses verbose_json

    async def transcribe(
        self, audio: np.ndarray, language: str | None = None, prompt: str | None = None
    ) -> Transcript:
        duration = len(audio) / SAMPLE_RATE
        lang = normalize_language(language) or self.language
        prompt = (SIMPLIFIED_PROMPT + (prompt or "")) if is_chinese(lang) else prompt
        body = wav_bytes(audio)
        try:
            response = await self._request(body, lang, prompt)
        except self._openai.BadRequestError as exc:
            if not self._verbose or "format" not in _error_text(exc).lower():
                raise self._backend_error(exc) from None
            logger.info("%s refuses verbose_json (%s); asking for json", self.url, _error_text(exc))
            self._verbose = False
            try:
                response = await self._request(body, lang, prompt)
            except self._openai.OpenAIError as again:
                raise self._backend_error(again) from None
        except self._openai.OpenAIError as exc:
            raise self._backend_error(exc) from None
        return self._transcript(response, lang, duration)

    async def _request(self, body: bytes, language: str | None, prompt: str | None) -> Any:
        omit = self._openai.omit
        return await self._client.audio.transcriptions.create(
            file=("speech.wav", body, "audio/wav"),
            model=self.model,
            language=language or omit,
            prompt=prompt or omit,
            response_format="verbose_json" if self._verbose else "json",
            timestamp_granularities=["word"] if self._verbose else omit,
            temperature=0.0,
        )

    def _transcript(self, response: Any, language: str | None, duration: float) -> Transcript:
        text: str | None
        if isinstance(response, str):  # a server that answers text/plain whatever was asked
            text, detected, raw_words = response, None, None
        else:
            text = getattr(response, "text", None)
            if text is None:
                raise BackendError(
                    f"ASR server {self.url} answered without a text field: is it a transcription server?"
                )
            detected = getattr(response, "language", None)
            raw_words = getattr(response, "words", None)
        code = str(detected or language or "").strip().lower()
        code = _LANGUAGE_NAMES.get(code, code)
        words = tuple(
            Timing(
                clean_text(str(_field(w, "word")).strip(), code),
                float(_field(w, "start")),
                float(_field(w, "end")),
            )
            for w in raw_words or ()
            if _field(w, "word") is not None
        )
        return Transcript(clean_text(str(text), code), code, words, duration)

    def _backend_error(self, exc: Exception) -> BackendError:
        openai = self._openai
        if isinstance(exc, openai.APIConnectionError | openai.APITimeoutError):
            return BackendError(
                f"cannot reach the ASR server at {self.url}: start it (e.g. whisper-server --port 8000 "
                "--inference-path /v1/audio/transcriptions) or set [asr] url"
            )
        if isinstance(exc, openai.AuthenticationError):
            return BackendError(f"the ASR server at {self.url} refused the API key: set [asr] api_key")
        if isinstance(exc, openai.NotFoundError):
            return BackendError(
                f"the ASR server at {self.url} has no /audio/transcriptions or no model '{self.model}' "
                f"({_error_text(exc)}): check [asr] url and model"
            )
        status = getattr(exc, "status_code", None)
        return BackendError(f"the ASR server at {self.url} failed ({status or 'error'}): {_error_text(exc)}")

    async def aclose(self) -> None:
        await self._client.close()


def _field(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)
