"""faster-whisper (CTranslate2 Whisper) in-process: the default ASR.

The model is named in config (`[asr] model`: "base", "whisper:small", or a local folder) and fetched once
through digihuman.models. It is loaded once per (path, compute type, threads) and shared by every session:
CTranslate2 serializes calls on one worker, so concurrent sessions queue rather than race. int8 with beam 1
is the fast CPU setting.

Whisper's encoder always reads a 30 s window, so faster-whisper pads a 3 s question with 27 s of silence and
spends most of a decode (0.6 of 0.75 s for whisper-base on two cores) encoding nothing. CTranslate2's encoder
takes shorter windows, so an utterance is decoded in a window of its own length plus `_PAD_S` of silence:
five times faster, and as accurate on our speech sets (benchmarks/asr_window.py). Shorter padding made
Whisper repeat itself. A decode that still looks wrong (a loop, a low score) is done again the standard way.
"""

from __future__ import annotations

import asyncio
import math
import threading
import zlib
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from digihuman.asr.base import SIMPLIFIED_PROMPT, Transcript, clean_text, is_chinese, normalize_language
from digihuman.audio.source import SAMPLE_RATE
from digihuman.errors import BackendError, MissingExtraError, UserError
from digihuman.media import Timing

_LOAD_LOCK = threading.Lock()
_PAD_S = 5.0  # silence after the speech in the short window: Whisper needs to "see" that the speech ended
_FRAMES_PER_S = 100  # Whisper's mel frames
_MAX_FRAMES = 3000  # its 30 s window


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
        max_new_tokens = max_tokens(duration)
        if not self.word_timestamps and duration + _PAD_S <= _MAX_FRAMES / _FRAMES_PER_S:
            short = _decode_short(model, audio, lang, initial, self.beam_size, max_new_tokens)
            if short is not None:
                text, language_out = short
                return Transcript(clean_text(text, language_out), language_out, (), duration)
        segments, info = model.transcribe(
            audio,
            language=lang,
            beam_size=self.beam_size,
            initial_prompt=initial or None,
            word_timestamps=self.word_timestamps,
            condition_on_previous_text=False,  # a hallucinated segment must not seed the next one
            vad_filter=False,  # our own VAD already cut the utterance
            temperature=(0.0, 0.4, 0.8),  # fewer fallback re-decodes than the default six: latency
            max_new_tokens=max_new_tokens,
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


def max_tokens(duration_s: float) -> int:
    """The most tokens a decode of this much speech may give: a repetition loop ("天天天天...") must not run
    for seconds, and nobody says more than ~10 tokens a second."""
    return min(220, int(12 * duration_s) + 16)


def _decode_short(
    model: Any, audio: np.ndarray, language: str | None, prompt: str | None, beam_size: int, max_new: int
) -> tuple[str, str] | None:
    """Greedy decode in a window of the speech plus `_PAD_S`: (text, language), or None when the result
    looks wrong (a repetition loop, the token limit reached, a low score: also noise or silence) and needs
    the standard decode, with its temperature fallback and its silence rule."""
    import ctranslate2
    from faster_whisper.tokenizer import Tokenizer

    features = model.feature_extractor(audio)
    # Whole seconds: the encoder sees few distinct shapes.
    seconds = math.ceil(features.shape[-1] / _FRAMES_PER_S + _PAD_S)
    frames = min(_MAX_FRAMES, seconds * _FRAMES_PER_S)
    features = np.pad(features, ((0, 0), (0, frames - features.shape[-1])))[None]
    window = ctranslate2.StorageView.from_array(np.ascontiguousarray(features, np.float32))
    encoded = model.model.encode(window)
    multilingual = model.model.is_multilingual
    if language is None:
        language = model.model.detect_language(encoded)[0][0][0].strip("<|>") if multilingual else "en"
    tokenizer = Tokenizer(model.hf_tokenizer, multilingual, task="transcribe", language=language)
    tokens: list[int] = []
    if prompt:  # as faster-whisper's initial_prompt: the previous-text slot, at most half the context
        tokens = [tokenizer.sot_prev, *tokenizer.encode(" " + prompt.strip())[-(model.max_length // 2 - 1) :]]
    tokens += [*tokenizer.sot_sequence, tokenizer.no_timestamps]
    result = model.model.generate(
        encoded,
        [tokens],
        beam_size=beam_size,
        max_length=len(tokens) + max_new,
        return_scores=True,
        suppress_blank=True,
        suppress_tokens=[-1],
    )[0]
    ids = result.sequences_ids[0]
    avg_logprob = result.scores[0] * len(ids) / (len(ids) + 1)  # Whisper's average log-probability
    text = tokenizer.decode(ids).strip()
    encoded_text = text.encode()
    looped = len(ids) >= max_new or len(encoded_text) / max(1, len(zlib.compress(encoded_text))) > 2.4
    return None if looped or avg_logprob < -1.0 else (text, language)
