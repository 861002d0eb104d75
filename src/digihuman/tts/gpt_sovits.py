"""GPT-SoVITS voice cloning through its `api_v2.py` HTTP server (run in GPT-SoVITS's own environment).

Protocol (RVC-Boss/GPT-SoVITS api_v2.py): `POST /tts` with a JSON body; 200 is audio, 400 is
`{"message": ...}` (inference failures add `"Exception"`). Streaming WAV is a header with data
length 0 followed by raw int16 PCM; the sample rate depends on the model and is read from the header.

`streaming_mode`: newer servers take 0..3 (1 = one fragment per text segment, the old `true`;
2 = token streaming; 3 = fixed-length chunks), the 20250606v2pro release only a bool. Modes 0 and 1
are sent as false/true, which every version reads the same way. Modes 2 and 3 are sent as ints;
a server that rejects that (FastAPI's 422, or a 400 naming streaming_mode) gets the bool form
instead, and the adapter remembers it. A server without `POST /tts` (405) is asked with GET.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx

from digihuman.errors import BackendError
from digihuman.media import AudioChunk
from digihuman.tts.audio_decode import WavStreamDecoder

logger = logging.getLogger(__name__)

Emit = Callable[[AudioChunk], None]

DEFAULT_URL = "http://127.0.0.1:9880"
START_COMMAND = "python api_v2.py -a 127.0.0.1 -p 9880 -c GPT_SoVITS/configs/tts_infer.yaml"
# "zh" is GPT-SoVITS's Chinese-with-English mode; "all_zh" would read English words in a reply as Chinese.
LANGUAGES = {"en": "en", "zh": "zh", "ja": "ja", "ko": "ko", "yue": "yue"}
KNOWN_PARAMS = frozenset(
    {
        "aux_ref_audio_paths", "top_k", "top_p", "temperature", "text_split_method", "batch_size",
        "batch_threshold", "split_bucket", "speed_factor", "fragment_interval", "seed", "parallel_infer",
        "repetition_penalty", "sample_steps", "super_sampling", "overlap_length", "min_chunk_length",
    }
)  # fmt: skip
# Known failure messages and what the user should do about them.
HINTS = (
    ("3~10", "the reference audio must be 3-10 s long: trim the character's voice sample"),
    (
        "not exists",
        "ref_audio is read from the GPT-SoVITS server's disk: set voice param ref_audio to a path there",
    ),
    (
        "is not supported in version",
        "set voice params text_lang/prompt_lang to a language this model supports",
    ),
    (
        "prompt_text cannot be empty",
        "v3/v4 models need voice param prompt_text: the words said in the reference audio",
    ),
)


def gpt_sovits_language(language: str) -> str:
    """Our language code ("en", "zh-CN") as a GPT-SoVITS language; "auto" for the rest."""
    return LANGUAGES.get(language.lower().split("-")[0], "auto")


class _StreamBroken(Exception):
    """The server closed a 200 response before its end (api_v2 raises inside its stream generator)."""

    def __init__(self, audio_received: bool, cause: Exception) -> None:
        super().__init__(str(cause))
        self.audio_received = audio_received


class GptSovitsTTS:
    """A GPT-SoVITS api_v2 server as a voice. One request at a time: the server's pipeline is shared."""

    name = "gpt-sovits"

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        ref_audio_path: str,
        prompt_text: str = "",
        prompt_lang: str = "en",
        text_lang: str | None = None,
        streaming: bool | int = True,
        timeout_s: float = 120.0,
        connect_timeout_s: float = 5.0,
        sample_rate: int | None = None,
        **extra: Any,
    ) -> None:
        """`text_lang` None follows each call's language. `timeout_s` is the longest wait for the next
        bytes. `sample_rate` overrides the WAV header: older api_v2 releases wrote 32000 into streaming
        headers whatever the model's rate. `extra` is passed through (top_k, speed_factor, ...)."""
        mode = int(streaming)
        if mode not in (0, 1, 2, 3):
            raise ValueError(f"streaming must be true/false or 0..3, not {streaming!r}")
        if not ref_audio_path:
            raise ValueError("ref_audio_path is required: a 3-10 s recording on the server's disk")
        unknown = sorted(set(extra) - KNOWN_PARAMS)
        if unknown:
            logger.warning("passing unknown GPT-SoVITS parameters through: %s", ", ".join(unknown))
        self.url = url.rstrip("/")
        self.ref_audio_path = str(ref_audio_path)
        self.prompt_text = prompt_text
        self.prompt_lang = prompt_lang
        self.text_lang = text_lang
        self.streaming_mode = mode
        self.timeout_s = float(timeout_s)
        self.sample_rate = int(sample_rate) if sample_rate else None
        self.extra = dict(extra)
        self._client = httpx.AsyncClient(
            base_url=self.url,
            timeout=httpx.Timeout(self.timeout_s, connect=float(connect_timeout_s)),
            trust_env=False,  # a proxy from the environment must not capture a local server
        )
        self._lock = asyncio.Lock()
        self._bool_streaming_only = False
        self._get_only = False

    async def synthesize(self, text: str, language: str) -> AsyncIterator[AudioChunk]:
        if not text.strip():
            return
        # The request runs in its own task, so the server is read as fast as it answers (and the
        # lock released) even while our consumer is still playing an earlier sentence.
        queue: asyncio.Queue[AudioChunk | BaseException | None] = asyncio.Queue()
        pump = asyncio.create_task(self._pump(text, language, queue))
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            pump.cancel()  # closes the HTTP response, so the server stops generating
            await asyncio.gather(pump, return_exceptions=True)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _pump(self, text: str, language: str, queue: asyncio.Queue) -> None:
        try:
            async with self._lock:
                await self._speak(text, language, queue.put_nowait)
            queue.put_nowait(None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            queue.put_nowait(exc)

    async def _speak(self, text: str, language: str, emit: Emit) -> None:
        payload = self._payload(text, language)
        try:
            await self._request(payload, text, emit)
        except _StreamBroken as broken:
            if broken.audio_received or not payload["streaming_mode"]:
                raise BackendError(
                    f"GPT-SoVITS at {self.url} stopped in the middle of a sentence ({broken}); "
                    "its console shows why"
                ) from None
            # api_v2 only reports errors as 400 outside streaming: ask again without it to get the
            # reason (or the audio, if the failure was passing).
            logger.info("GPT-SoVITS stream broke before any audio; asking again without streaming")
            await self._request({**payload, "streaming_mode": False}, text, emit)

    def _payload(self, text: str, language: str) -> dict[str, Any]:
        return {
            "text_split_method": "cut5",  # the GET default differs (cut0); cut5 gives the earliest audio
            **self.extra,
            "text": text,
            "text_lang": self.text_lang or gpt_sovits_language(language),
            "ref_audio_path": self.ref_audio_path,
            "prompt_text": self.prompt_text,
            "prompt_lang": self.prompt_lang,
            "media_type": "wav",
            "streaming_mode": self._streaming_value(),
        }

    def _streaming_value(self) -> bool | int:
        if self.streaming_mode in (0, 1) or self._bool_streaming_only:
            return bool(self.streaming_mode)
        return self.streaming_mode

    async def _request(self, payload: dict[str, Any], text: str, emit: Emit) -> None:
        while True:
            try:
                async with self._open(payload) as response:
                    if response.status_code == 200:
                        await self._read_audio(response, text, emit)
                        return
                    body = await response.aread()
            except httpx.ConnectError:
                raise BackendError(
                    f"GPT-SoVITS is not running at {self.url}: start it in its own environment with "
                    f"`{START_COMMAND}` (or set voice param url)"
                ) from None
            except httpx.TimeoutException:
                raise BackendError(
                    f"GPT-SoVITS at {self.url} sent nothing for {self.timeout_s:g} s; "
                    "raise voice param timeout_s if the model is this slow here"
                ) from None
            except httpx.HTTPError as exc:
                raise BackendError(f"GPT-SoVITS request to {self.url} failed: {exc}") from None
            if response.status_code == 405 and not self._get_only:
                logger.info("GPT-SoVITS at %s has no POST /tts; using GET", self.url)
                self._get_only = True
                continue
            if self._rejects_int_streaming(response.status_code, body, payload):
                logger.warning(
                    "GPT-SoVITS at %s only takes streaming on/off: streaming_mode %s becomes true",
                    self.url,
                    payload["streaming_mode"],
                )
                self._bool_streaming_only = True
                payload = {**payload, "streaming_mode": True}
                continue
            raise BackendError(self._describe_error(response.status_code, body))

    def _open(self, payload: dict[str, Any]) -> AbstractAsyncContextManager[httpx.Response]:
        if not self._get_only:
            return self._client.stream("POST", "/tts", json=payload)
        if any(isinstance(v, list) for v in payload.values()):
            logger.warning("GPT-SoVITS GET requests carry lists unreliably (aux_ref_audio_paths)")
        query = {k: json.dumps(v) if isinstance(v, bool) else v for k, v in payload.items()}
        return self._client.stream("GET", "/tts", params=query)

    def _rejects_int_streaming(self, status: int, body: bytes, payload: dict[str, Any]) -> bool:
        sent_int = not isinstance(payload["streaming_mode"], bool)
        return sent_int and status in (400, 422) and b"streaming_mode" in body

    async def _read_audio(self, response: httpx.Response, text: str, emit: Emit) -> None:
        content_type = response.headers.get("content-type", "")
        if not content_type.startswith("audio/"):
            body = (await response.aread())[:200]
            raise BackendError(
                f"{self.url}/tts answered {content_type or 'without a content type'}, not audio "
                f"({body!r}): is it GPT-SoVITS api_v2.py?"
            )
        decoder = WavStreamDecoder()
        samples_sent = 0
        try:
            async for data in response.aiter_bytes():
                pcm = decoder.feed(data)
                if len(pcm) == 0:
                    continue
                rate = self.sample_rate or decoder.sample_rate
                assert rate is not None
                emit(AudioChunk(pcm=pcm, sample_rate=rate, start_s=samples_sent / rate, text=text))
                samples_sent += len(pcm)
            decoder.finish()
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise _StreamBroken(samples_sent > 0, exc) from None
        except ValueError as exc:
            raise BackendError(f"GPT-SoVITS at {self.url} sent audio we cannot read: {exc}") from None
        if samples_sent == 0:
            logger.warning("GPT-SoVITS returned no audio for %r", text)

    def _describe_error(self, status: int, body: bytes) -> str:
        if status == 404:
            return f"{self.url} has no /tts endpoint: is it GPT-SoVITS api_v2.py (not api.py)?"
        try:
            data = json.loads(body)
        except ValueError:
            data = body.decode("utf-8", "replace").strip()[:300]
        if isinstance(data, dict) and "message" in data:
            detail = str(data["message"])
            if data.get("Exception"):
                detail += f": {data['Exception']}"
        elif isinstance(data, dict) and isinstance(data.get("detail"), list):  # FastAPI validation
            detail = "; ".join(
                f"{'.'.join(str(p) for p in d.get('loc', ()))}: {d.get('msg', d)}" for d in data["detail"]
            )
        else:
            detail = str(data)
        hint = next((h for key, h in HINTS if key in detail), "")
        message = f"GPT-SoVITS refused the request ({status}): {detail}" + (f" ({hint})" if hint else "")
        return " ".join(message.split())
