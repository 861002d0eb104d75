"""Transcribe while the user speaks, so the final text is ready almost as soon as the turn ends.

The utterance's audio grows frame by frame. Every `partial_every_s` the whole uncommitted buffer is decoded
again (Whisper needs context; re-decoding a few seconds is cheap) and the text is a partial. When the user
pauses, `prepare_final` decodes the buffer up to the pause speculatively; if the turn then ends with no new
speech, that decode is the final text. Long monologues stay bounded: once the uncommitted audio passes
`window_s`, it is decoded and the text is committed, its audio dropped, and the next window is prompted with
the committed text. At most one decode runs at a time per stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import numpy as np

from digihuman.asr.base import ASR, Transcript, is_chinese
from digihuman.audio.source import SAMPLE_RATE


@dataclass(frozen=True, slots=True)
class StreamParams:
    partial_every_s: float = 0.8  # new audio between partial re-decodes (0 = no partials)
    window_s: float = 20.0  # uncommitted audio decoded as one piece; longer speech is committed in windows
    prompt_chars: int = 200  # committed text passed on as the next window's prompt


class StreamingTranscriber:
    """One utterance at a time: `add(samples)`, `maybe_partial()`, `prepare_final()`, `final()`, `reset()`."""

    def __init__(self, asr: ASR, language: str | None = None, params: StreamParams | None = None) -> None:
        self.asr = asr
        self.language = language
        self.params = params or StreamParams()
        self.reset()

    def reset(self) -> None:
        self._pieces: list[np.ndarray] = []
        self._samples = 0  # uncommitted samples
        self._committed: list[str] = []
        self._committed_language = ""
        self._decoded_upto = 0  # uncommitted samples covered by the last partial
        self._task: asyncio.Task[Transcript] | None = None
        self._task_upto = 0
        self._task_is_window = False
        self._pending_upto: int | None = None  # a speculative final waiting for the running decode
        self.partial = ""
        self.language_seen = ""

    @property
    def buffered_s(self) -> float:
        return self._samples / SAMPLE_RATE

    def add(self, samples: np.ndarray) -> None:
        self._pieces.append(samples)
        self._samples += len(samples)

    def _audio(self, upto: int | None = None) -> np.ndarray:
        if len(self._pieces) > 1:
            self._pieces = [np.concatenate(self._pieces)]
        audio = self._pieces[0] if self._pieces else np.zeros(0, np.float32)
        return audio if upto is None else audio[:upto]

    def _prompt(self) -> str | None:
        text = ("" if is_chinese(self._committed_language) else " ").join(self._committed)
        return text[-self.params.prompt_chars :] or None

    def _start(self, upto: int, window: bool = False) -> None:
        audio = self._audio(upto).copy()
        self._task = asyncio.ensure_future(self.asr.transcribe(audio, self.language, self._prompt()))
        self._task_upto = upto
        self._task_is_window = window

    async def _collect(self) -> Transcript | None:
        """The finished background decode's result (committing a window), or None when none finished."""
        task = self._task
        if task is None or not task.done():
            return None
        self._task = None
        result = task.result()
        self.language_seen = result.language or self.language_seen
        if self._task_is_window:
            self._commit(result, self._task_upto)
            return None
        self._decoded_upto = self._task_upto
        self.partial = self._join(result.text)
        return result

    def _commit(self, result: Transcript, upto: int) -> None:
        if result.text:
            self._committed.append(result.text)
            self._committed_language = result.language or self._committed_language
        rest = self._audio()[upto:]
        self._pieces = [rest.copy()] if len(rest) else []
        self._samples = len(rest)
        self._decoded_upto = 0

    def _join(self, tail: str) -> str:
        parts = [*self._committed, tail] if tail else list(self._committed)
        language = self.language_seen or self._committed_language
        return ("" if is_chinese(language) else " ").join(p for p in parts if p)

    async def maybe_partial(self, force: bool = False) -> str | None:
        """Start a re-decode when enough new audio came in; return a new partial text when one finished.

        `force` starts a decode now if none is running, whatever the cadence (a possible barge-in).
        """
        before = self.partial
        await self._collect()
        if self._task is None:
            if self._pending_upto is not None:
                upto, self._pending_upto = self._pending_upto, None
                if upto > self._decoded_upto:
                    self._start(upto)
            elif self._samples > self.params.window_s * SAMPLE_RATE:
                self._start(self._samples, window=True)
            elif (force and self._samples > self._decoded_upto) or (
                self.params.partial_every_s > 0
                and self._samples - self._decoded_upto >= self.params.partial_every_s * SAMPLE_RATE
            ):
                self._start(self._samples)
        return self.partial if self.partial != before else None

    async def settle(self) -> str | None:
        """Wait for the decode in flight (if any); its text when it is a new partial."""
        before = self.partial
        if self._task is not None:
            await asyncio.wait([self._task])
            await self._collect()
        return self.partial if self.partial != before else None

    async def prepare_final(self, upto_s: float | None = None) -> None:
        """The user paused: decode what was said so far in the background (a speculative final)."""
        await self._collect()
        upto = self._samples if upto_s is None else min(self._samples, int(upto_s * SAMPLE_RATE))
        if upto <= self._decoded_upto:
            return
        if self._task is None:
            self._start(upto)
        else:
            self._pending_upto = upto  # started by `maybe_partial` once the running decode is done

    async def final(self, upto_s: float | None = None) -> Transcript:
        """The whole utterance's text: reuses a decode that already covers the speech, else decodes now."""
        upto = self._samples if upto_s is None else min(self._samples, int(upto_s * SAMPLE_RATE))
        self._pending_upto = None
        if self._task is not None:
            await asyncio.wait([self._task])
            await self._collect()
        last: Transcript | None = None
        if self._decoded_upto < upto or (not self.partial and upto > 0):
            self._start(upto)
            assert self._task is not None
            await asyncio.wait([self._task])
            last = await self._collect()
        language = self.language_seen or self._committed_language or (self.language or "")
        words = last.words if last is not None else ()
        return Transcript(self.partial, language, words, upto / SAMPLE_RATE)

    async def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        self.reset()
