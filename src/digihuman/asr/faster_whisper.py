"""faster-whisper (CTranslate2 Whisper) in-process: the default ASR.

The model is named in config (`[asr] model`: "base", "whisper:small", or a local folder) and fetched once
through digihuman.models. It is loaded once per (path, compute type, threads) and shared by every session:
CTranslate2 serializes calls on one worker, so concurrent sessions queue rather than race. int8 with beam 1
is the fast CPU setting: whisper-base transcribes several times faster than real time on two cores.
"""

from __future__ import annotations

import asyncio
import threading
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from digihuman.asr.base import SIMPLIFIED_PROMPT, Transcript, clean_text, is_chinese, normalize_language
from digihuman.audio.source import SAMPLE_RATE
from digihuman.errors import BackendError, MissingExtraError, UserError
from digihuman.media import Timing

_LOAD_LOCK = threading.Lock()


def model_path(spec: str) -> Path:
    """A local faster-whisper folder as is; otherwise the model by name, downloaded once and cached."""
    from digihuman.models import resolve

    path = Path(resolve(spec, kind="asr"))
    if not (path / "model.bin").is_file():
        raise UserError(f"{path} is not a faster-whisper model folder (it has no model.bin)")
    return path


@cache
def _load(path: Path, compute_type: str, threads: int) -> Any:
    try:
        from faster_whisper import WhisperModel
    except ImportError:
        raise MissingExtraError("faster-whisper", "asr") from None
    try:
        return WhisperModel(str(path), device="cpu", compute_type=compute_type, cpu_threads=threads)
    except Exception as exc:
        raise BackendError(f"cannot load the Whisper model in {path}: {str(exc).splitlines()[0]}") from None


class FasterWhisperASR:
    """Whisper through faster-whisper. Blocking decoding runs in a worker thread."""

    def __init__(
        self,
        model: str = "base",
        *,
        language: str | None = None,
        compute_type: str = "int8",
        threads: int = 2,
        beam_size: int = 1,
        word_timestamps: bool = False,
    ) -> None:
        self.spec = model
        self.language = normalize_language(language)
        self.compute_type = compute_type
        self.threads = threads
        self.beam_size = beam_size
        self.word_timestamps = word_timestamps
        self._model: Any = None

    def load(self) -> Any:
        """Blocking: resolve (maybe download) and load the model once; later calls return it."""
        if self._model is None:
            with _LOAD_LOCK:
                self._model = _load(model_path(self.spec).resolve(), self.compute_type, self.threads)
        return self._model

    async def warm_up(self) -> None:
        await asyncio.to_thread(self.load)

    async def transcribe(
        self, audio: np.ndarray, language: str | None = None, prompt: str | None = None
    ) -> Transcript:
        return await asyncio.to_thread(self.transcribe_blocking, audio, language, prompt)

    def transcribe_blocking(
        self, audio: np.ndarray, language: str | None = None, prompt: str | None = None
    ) -> Transcript:
        model = self.load()
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        duration = len(audio) / SAMPLE_RATE
        if duration < 0.05:
            return Transcript("", language or self.language or "", (), duration)
        lang = normalize_language(language) or self.language
        # With the language unknown, Whisper detects it in the same pass (a separate detection would run the
        # encoder twice); Chinese then still comes out Simplified through `clean_text`.
        initial = (SIMPLIFIED_PROMPT + (prompt or "")) if is_chinese(lang) else prompt
        segments, info = model.transcribe(
            audio,
            language=lang,
            beam_size=self.beam_size,
            initial_prompt=initial or None,
            word_timestamps=self.word_timestamps,
            condition_on_previous_text=False,  # a hallucinated segment must not seed the next one
            vad_filter=False,  # our own VAD already cut the utterance
            temperature=(0.0, 0.4, 0.8),  # fewer fallback re-decodes than the default six: latency
            # A repetition loop ("天天天天...") must not run for seconds: nobody says more than ~10 tokens/s.
            max_new_tokens=min(220, int(12 * duration) + 16),
        )
        texts: list[str] = []
        words: list[Timing] = []
        for segment in segments:  # lazy: the decoding happens in this loop
            texts.append(segment.text)
            for word in segment.words or ():
                words.append(Timing(clean_text(word.word.strip(), info.language), word.start, word.end))
        language_out = info.language or lang or ""
        joiner = "" if is_chinese(language_out) else " "
        text = clean_text(joiner.join(t.strip() for t in texts), language_out)
        return Transcript(text, language_out, tuple(words), duration)

    async def aclose(self) -> None:
        self._model = None  # the shared model stays loaded for other sessions
