"""The embedded offline voice: libespeak-ng 1.52, bundled by the `espeakng-loader` wheel, driven via ctypes.

The bundled library (unlike Debian's espeak-ng 1.51) reads Chinese characters with its `cmn` voice. It is
fast (a sentence takes milliseconds) and reports every phoneme with its time, which drives the lips.

libespeak-ng keeps global state and is not thread-safe: the process initializes it once and every call into
it holds one lock. Synthesis runs in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import ctypes
import logging
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from digihuman import lang
from digihuman.errors import BackendError, ConfigError
from digihuman.lang import espeak_voice as voice_for_language  # one home: lang.py
from digihuman.media import AudioChunk, Timing, chunk_audio
from digihuman.tts.text import is_cjk, is_word_char, split_long_text

logger = logging.getLogger(__name__)

# speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_DONT_EXIT = 0x8000  # report data errors instead of calling exit()
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_PHONEME = 7
_PARAM_RATE = 1
_PARAM_PITCH = 3
_PARAM_RANGE = 4
_PARAM_WORDGAP = 7
_EE_OK = 0

# Longer texts are synthesized piece by piece, so the first audio comes early and cancelling stops soon.
_MAX_PIECE_CHARS = 400
SILENCE = "_"  # the label of every pause phoneme


class _Event(ctypes.Structure):
    """espeak_EVENT. The `id` union holds the phoneme mnemonic (up to 8 bytes) for phoneme events."""

    _fields_ = (
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based, in characters
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # milliseconds from the start of the synthesis
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    )


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True, slots=True)
class Prosody:
    """How espeak speaks: words per minute, base pitch and pitch range (0-100), gap between words (10 ms)."""

    rate_wpm: int = 165
    pitch: int = 50
    pitch_range: int = 50
    word_gap: int = 0


# Per-voice defaults. Mandarin, tuned with benchmarks/voice_intelligibility.py (Whisper base, 10 sentences):
# at 165 wpm with no gap between words the syllables run together (CER 0.77); at 140 wpm with 30 ms between
# words and a narrower pitch range (flatter intonation over the lexical tones) it measured 0.39. Slower
# rates, longer gaps, other ranges and the female variant measured 0.42-0.64.
MANDARIN = Prosody(rate_wpm=140, pitch_range=30, word_gap=3)


def prosody_for(voice: str) -> Prosody:
    return MANDARIN if voice.split("+")[0] in ("cmn", "zh") else Prosody()


@dataclass(frozen=True, slots=True)
class _Speech:
    """One synthesis call's output, before it is cut into chunks."""

    pcm: np.ndarray  # float32 mono
    sample_rate: int
    phonemes: tuple[Timing, ...]
    words: tuple[Timing, ...]


class _Engine:
    """The process's one libespeak-ng instance, used on `_ENGINE_THREAD` only."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:
            raise BackendError(
                "espeakng-loader is not installed: run `.venv/bin/pip install espeakng-loader`"
            ) from exc
        try:
            library = ctypes.CDLL(espeakng_loader.get_library_path())
            data_path = espeakng_loader.get_data_path()
        except (OSError, RuntimeError) as exc:
            raise BackendError(
                f"the bundled espeak-ng could not be loaded ({exc}): "
                "run `.venv/bin/pip install --force-reinstall espeakng-loader`"
            ) from exc
        library.espeak_Initialize.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int)
        library.espeak_Initialize.restype = ctypes.c_int
        library.espeak_SetSynthCallback.argtypes = (_SynthCallback,)
        library.espeak_SetSynthCallback.restype = None
        library.espeak_SetVoiceByName.argtypes = (ctypes.c_char_p,)
        library.espeak_SetVoiceByName.restype = ctypes.c_int
        library.espeak_SetParameter.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int)
        library.espeak_SetParameter.restype = ctypes.c_int
        library.espeak_Synth.argtypes = (
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.POINTER(ctypes.c_uint),
            ctypes.c_void_p,
        )
        library.espeak_Synth.restype = ctypes.c_int

        options = _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_DONT_EXIT
        sample_rate = library.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), options)
        if sample_rate <= 0:
            raise BackendError(
                f"espeak-ng could not read its data at {data_path}: "
                "run `.venv/bin/pip install --force-reinstall espeakng-loader`"
            )
        self.sample_rate = sample_rate
        self._library = library
        # The callback object must outlive every call into the library: keep it on the engine.
        self._callback = _SynthCallback(self._on_synth)
        library.espeak_SetSynthCallback(self._callback)
        self._voice: str | None = None
        # Filled by the callback during one espeak_Synth call.
        self._pcm: list[bytes] = []
        self._events: list[tuple[int, int, int, bytes]] = []
        self._abort: threading.Event | None = None
        logger.info("espeak-ng initialized from %s at %d Hz", data_path, sample_rate)

    def _on_synth(self, wav: ctypes._Pointer, n_samples: int, events: ctypes._Pointer) -> int:
        if n_samples > 0 and bool(wav):  # a NULL pointer is false
            self._pcm.append(ctypes.string_at(wav, n_samples * 2))
        index = 0
        while events[index].type != _EVENT_LIST_TERMINATED:
            event = events[index]
            if event.type in (_EVENT_PHONEME, _EVENT_WORD):
                self._events.append((event.type, event.audio_position, event.text_position, bytes(event.id)))
            index += 1
        # Returning 1 makes espeak stop this synthesis: that is how a cancelled turn stops promptly.
        return 1 if self._abort is not None and self._abort.is_set() else 0

    def set_voice(self, voice: str) -> None:
        if voice == self._voice:
            return
        for name in dict.fromkeys((voice, voice.split("-")[0])):
            if self._library.espeak_SetVoiceByName(name.encode()) == _EE_OK:
                self._voice = voice
                return
        self._voice = None
        raise ConfigError(
            f"espeak-ng has no voice {voice!r}: set the character's voice to an espeak-ng voice "
            "such as en-us, en, cmn, yue, ja, fr or de"
        )

    def synthesize(self, text: str, voice: str, prosody: Prosody, abort: threading.Event) -> _Speech:
        self.set_voice(voice)
        # Parameters are global: set them on every call, since several voices may share the engine.
        self._library.espeak_SetParameter(_PARAM_RATE, prosody.rate_wpm, 0)
        self._library.espeak_SetParameter(_PARAM_PITCH, prosody.pitch, 0)
        self._library.espeak_SetParameter(_PARAM_RANGE, prosody.pitch_range, 0)
        self._library.espeak_SetParameter(_PARAM_WORDGAP, prosody.word_gap, 0)
        self._pcm, self._events, self._abort = [], [], abort
        encoded = text.encode("utf-8")
        try:
            status = self._library.espeak_Synth(
                encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
            )
        finally:
            self._abort = None
        if status != _EE_OK and not abort.is_set():
            raise BackendError(f"espeak-ng failed to synthesize (error {status}): try shorter text")
        pcm = np.frombuffer(b"".join(self._pcm), dtype=np.int16).astype(np.float32) / 32768.0
        duration_s = len(pcm) / self.sample_rate
        phonemes = _phoneme_timings(self._events, duration_s)
        words = _word_timings(self._events, text, phonemes, duration_s)
        return _Speech(pcm, self.sample_rate, phonemes, words)


# libespeak-ng keeps its state in the process (one engine, one voice at a time), so every session's speech
# goes through this one thread in turn, each call setting its own voice and prosody. Its own thread rather
# than the shared pool: sessions waiting for it never starve other work, and a queued sentence that is
# cancelled never starts.
_ENGINE_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="espeak")
_engine: _Engine | None = None


def _synthesize_blocking(text: str, voice: str, prosody: Prosody, abort: threading.Event) -> _Speech:
    global _engine
    if abort.is_set():
        return _Speech(np.zeros(0, np.float32), _engine.sample_rate if _engine else 22050, (), ())
    if _engine is None:
        _engine = _Engine()
    return _engine.synthesize(text, voice, prosody, abort)


async def _on_engine_thread(text: str, voice: str, prosody: Prosody, abort: threading.Event) -> _Speech:
    context = contextvars.copy_context()  # the caller's session id stays on the engine's log lines
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(
        _ENGINE_THREAD, context.run, _synthesize_blocking, text, voice, prosody, abort
    )


def _phoneme_timings(events: list[tuple[int, int, int, bytes]], duration_s: float) -> tuple[Timing, ...]:
    """Phonemes from events: stress marks dropped, pauses merged into "_", each ends where the next starts."""
    starts: list[tuple[str, float]] = []
    for kind, position_ms, _, raw_id in events:
        if kind != _EVENT_PHONEME:
            continue
        label = raw_id.split(b"\0")[0].decode("ascii", "replace").lstrip("',")
        if not label or label.startswith("("):  # "(en)" marks a language switch, not a sound
            continue
        if label.startswith("_"):
            label = SILENCE
        start_s = min(position_ms / 1000, duration_s)
        if starts and starts[-1][0] == SILENCE and label == SILENCE:
            continue
        starts.append((label, start_s))
    if starts and starts[0][1] > 0 and starts[0][0] != SILENCE:
        starts.insert(0, (SILENCE, 0.0))  # the lead-in before the first sound: timings cover all the audio
    timings = []
    for index, (label, start_s) in enumerate(starts):
        end_s = starts[index + 1][1] if index + 1 < len(starts) else duration_s
        if end_s > start_s:
            timings.append(Timing(label, start_s, end_s))
    return tuple(timings)


def _word_timings(
    events: list[tuple[int, int, int, bytes]], text: str, phonemes: tuple[Timing, ...], duration_s: float
) -> tuple[Timing, ...]:
    """Words from events, labelled with the text they read.

    espeak reports a length of 1 for Chinese words such as 你好 and several word events inside one number
    ("2025" is read as "twenty twenty-five"), so a word's text runs from its token to the next word's token,
    and events inside one Latin token are one word. A word ends when its last sounding phoneme does.
    """
    starts: list[tuple[float, int]] = []  # (time, index of the token it reads)
    for kind, position_ms, text_position, _ in events:
        if kind != _EVENT_WORD:
            continue
        token = _token_start(text, max(text_position - 1, 0))
        if starts and starts[-1][1] == token:
            continue
        starts.append((min(position_ms / 1000, duration_s), token))
    timings = []
    for index, (start_s, token) in enumerate(starts):
        next_start_s, next_token = starts[index + 1] if index + 1 < len(starts) else (duration_s, len(text))
        label = _strip_punctuation(text[token : max(next_token, token + 1)])
        sounding = [p.end_s for p in phonemes if p.label != SILENCE and start_s <= p.start_s < next_start_s]
        end_s = min(max(sounding, default=next_start_s), next_start_s)
        if label and end_s > start_s:
            timings.append(Timing(label, start_s, end_s))
    return tuple(timings)


_TOKEN_JOINERS = frozenset(".,'’-:")


def _token_start(text: str, index: int) -> int:
    """The start of the Latin word or number ("3.50", "don't") around text[index]; CJK stands alone."""
    if index >= len(text):
        return len(text)
    inside_number = (
        0 < index < len(text) - 1 and is_word_char(text[index - 1]) and is_word_char(text[index + 1])
    )
    if text[index] in _TOKEN_JOINERS and inside_number:
        index -= 1  # espeak puts "point" of "2.0" on the dot
    elif not is_word_char(text[index]):
        return index
    while index > 0:
        if is_word_char(text[index - 1]):
            index -= 1
        elif text[index - 1] in _TOKEN_JOINERS and index > 1 and is_word_char(text[index - 2]):
            index -= 2
        else:
            break
    return index


def _strip_punctuation(span: str) -> str:
    span = span.strip()
    start, end = 0, len(span)
    while start < end and not (span[start].isalnum() or is_cjk(span[start])):
        start += 1
    while end > start and not (span[end - 1].isalnum() or is_cjk(span[end - 1])):
        end -= 1
    return span[start:end]


def _voice_that_can_read(voice: str, text: str) -> str:
    """Mandarin for text with Chinese characters when the voice is English.

    espeak's English voices read each hanzi as "Chinese letter"; the Mandarin voice reads Chinese and
    switches to English for Latin words by itself.
    """
    has_han, has_kana = lang.has_han(text), lang.has_kana(text)  # kana: Japanese, leave it to its voice
    if voice.startswith("en") and has_han and not has_kana:
        logger.debug("reading %r with the cmn voice instead of %s", text[:40], voice)
        return "cmn"
    return voice


def _has_speech(text: str) -> bool:
    return any(char.isalnum() for char in text)


class EspeakTTS:
    """The offline espeak-ng voice, with phoneme and word timings.

    `voice` is an espeak-ng voice name ("en-us", "cmn", ...); None picks one from each call's language.
    Text with Chinese characters is always read with the Mandarin voice, never an English one.
    Phoneme labels are espeak mnemonics without stress marks ("h", "@", "aI", "tS;h"); every pause is "_".
    Each chunk carries the phonemes and words that overlap it, timed from the utterance start.
    """

    name = "espeak"

    def __init__(
        self,
        voice: str | None = None,
        rate_wpm: int | None = None,
        pitch: int | None = None,
        chunk_s: float = 0.2,
        pitch_range: int | None = None,
        word_gap: int | None = None,
    ) -> None:
        if rate_wpm is not None and not 80 <= rate_wpm <= 450:
            raise ConfigError(f"espeak rate_wpm must be between 80 and 450, got {rate_wpm}")
        for key, value in (("pitch", pitch), ("pitch_range", pitch_range)):
            if value is not None and not 0 <= value <= 100:
                raise ConfigError(f"espeak {key} must be between 0 and 100, got {value}")
        if word_gap is not None and not 0 <= word_gap <= 50:
            raise ConfigError(f"espeak word_gap must be between 0 and 50 (x 10 ms), got {word_gap}")
        if not 0.01 <= chunk_s <= 10:
            raise ConfigError(f"espeak chunk_s must be between 0.01 and 10 seconds, got {chunk_s}")
        self.voice = voice
        self.chunk_s = chunk_s
        # Only what the character sets; the rest comes from the voice's defaults (see prosody_for).
        self.overrides = {
            k: v
            for k, v in (
                ("rate_wpm", rate_wpm),
                ("pitch", pitch),
                ("pitch_range", pitch_range),
                ("word_gap", word_gap),
            )
            if v is not None
        }

    def prosody(self, voice: str) -> Prosody:
        return replace(prosody_for(voice), **self.overrides)

    async def synthesize(self, text: str, language: str) -> AsyncIterator[AudioChunk]:
        text = text.strip()
        if not _has_speech(text):
            return
        voice = _voice_that_can_read(self.voice or voice_for_language(language), text)
        offset_s = 0.0
        for piece in split_long_text(text, _MAX_PIECE_CHARS):
            if not _has_speech(piece):
                continue
            abort = threading.Event()
            try:
                speech = await _on_engine_thread(piece, voice, self.prosody(voice), abort)
            finally:
                abort.set()  # when cancelled, the callback stops the running synthesis
            for chunk in _chunks(speech, offset_s, self.chunk_s, text):
                yield chunk
            offset_s += len(speech.pcm) / speech.sample_rate

    async def warm_up(self, language: str = "en") -> None:
        """Loads the engine and checks the voice ahead of the first sentence (ConfigError if unknown)."""
        voice = self.voice or voice_for_language(language)
        await _on_engine_thread("", voice, self.prosody(voice), threading.Event())

    async def aclose(self) -> None:
        """Nothing to release: the engine is shared by the whole process and lives as long as it does."""


def _chunks(speech: _Speech, offset_s: float, chunk_s: float, text: str) -> list[AudioChunk]:
    """Cuts one synthesis into chunks of about `chunk_s`; timings shift by `offset_s` into the utterance."""
    return chunk_audio(
        speech.pcm,
        speech.sample_rate,
        chunk_s=chunk_s,
        offset_s=offset_s,
        phonemes=speech.phonemes,
        words=speech.words,
        text=text,
    )
