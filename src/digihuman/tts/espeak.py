"""The embedded offline voice: libespeak-ng 1.52, bundled by the `espeakng-loader` wheel, driven via ctypes.

The bundled library (unlike Debian's espeak-ng 1.51) reads Chinese characters with its `cmn` voice. It is
fast (a sentence takes milliseconds) and reports every phoneme with its time, which drives the lips.

libespeak-ng keeps global state and is not thread-safe: the process initializes it once and every call into
it holds one lock. Synthesis runs in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np

from digihuman.errors import BackendError, ConfigError
from digihuman.media import AudioChunk, Timing
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


def voice_for_language(language: str) -> str:
    """The espeak-ng voice for a language code: "zh" -> "cmn", "en" -> "en-us", "zh-HK" -> "yue"."""
    code = language.strip().lower().replace("_", "-")
    base = code.split("-")[0]
    if code in {"zh-hk", "zh-mo", "zh-yue", "yue"}:
        return "yue"
    if base in {"zh", "cmn"}:
        return "cmn"
    if code in {"en-gb", "en-uk"}:
        return "en"  # espeak's "en" is British English
    if base == "en":
        return "en-us"
    return code or "en-us"


@dataclass(frozen=True, slots=True)
class _Speech:
    """One synthesis call's output, before it is cut into chunks."""

    pcm: np.ndarray  # float32 mono
    sample_rate: int
    phonemes: tuple[Timing, ...]
    words: tuple[Timing, ...]


class _Engine:
    """The process's one libespeak-ng instance. Callers must hold `_LOCK`."""

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
        if n_samples > 0 and wav:
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

    def synthesize(self, text: str, voice: str, rate_wpm: int, pitch: int, abort: threading.Event) -> _Speech:
        self.set_voice(voice)
        # Parameters are global: set them on every call, since several voices may share the engine.
        self._library.espeak_SetParameter(_PARAM_RATE, rate_wpm, 0)
        self._library.espeak_SetParameter(_PARAM_PITCH, pitch, 0)
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


_LOCK = threading.Lock()
_engine: _Engine | None = None


def _synthesize_blocking(text: str, voice: str, rate_wpm: int, pitch: int, abort: threading.Event) -> _Speech:
    global _engine
    with _LOCK:
        if abort.is_set():
            return _Speech(np.zeros(0, np.float32), _engine.sample_rate if _engine else 22050, (), ())
        if _engine is None:
            _engine = _Engine()
        return _engine.synthesize(text, voice, rate_wpm, pitch, abort)


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
    has_han = any("\u3400" <= char <= "\u9fff" or "\uf900" <= char <= "\ufaff" for char in text)
    has_kana = any("\u3040" <= char <= "\u30ff" for char in text)  # Japanese: leave it to its voice
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
        self, voice: str | None = None, rate_wpm: int = 165, pitch: int = 50, chunk_s: float = 0.2
    ) -> None:
        if not 80 <= rate_wpm <= 450:
            raise ConfigError(f"espeak rate_wpm must be between 80 and 450, got {rate_wpm}")
        if not 0 <= pitch <= 100:
            raise ConfigError(f"espeak pitch must be between 0 and 100, got {pitch}")
        if not 0.01 <= chunk_s <= 10:
            raise ConfigError(f"espeak chunk_s must be between 0.01 and 10 seconds, got {chunk_s}")
        self.voice = voice
        self.rate_wpm = rate_wpm
        self.pitch = pitch
        self.chunk_s = chunk_s

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
                speech = await asyncio.to_thread(
                    _synthesize_blocking, piece, voice, self.rate_wpm, self.pitch, abort
                )
            finally:
                abort.set()  # when cancelled, the callback stops the running synthesis
            for chunk in _chunks(speech, offset_s, self.chunk_s, text):
                yield chunk
            offset_s += len(speech.pcm) / speech.sample_rate

    async def warm_up(self, language: str = "en") -> None:
        """Loads the engine and checks the voice ahead of the first sentence (ConfigError if unknown)."""
        voice = self.voice or voice_for_language(language)
        await asyncio.to_thread(_synthesize_blocking, "", voice, self.rate_wpm, self.pitch, threading.Event())

    async def aclose(self) -> None:
        """Nothing to release: the engine is shared by the whole process and lives as long as it does."""


def _chunks(speech: _Speech, offset_s: float, chunk_s: float, text: str) -> list[AudioChunk]:
    """Cuts one synthesis into chunks of about `chunk_s`; timings shift by `offset_s` into the utterance."""
    rate = speech.sample_rate
    step = max(1, round(chunk_s * rate))
    phonemes = [_shifted(t, offset_s) for t in speech.phonemes]
    words = [_shifted(t, offset_s) for t in speech.words]
    chunks = []
    for first in range(0, len(speech.pcm), step):
        pcm = speech.pcm[first : first + step]
        start_s = offset_s + first / rate
        end_s = start_s + len(pcm) / rate
        chunks.append(
            AudioChunk(
                pcm=pcm,
                sample_rate=rate,
                start_s=start_s,
                phonemes=tuple(t for t in phonemes if t.start_s < end_s and t.end_s > start_s),
                words=tuple(t for t in words if t.start_s < end_s and t.end_s > start_s),
                text=text,
            )
        )
    return chunks


def _shifted(timing: Timing, offset_s: float) -> Timing:
    return Timing(timing.label, timing.start_s + offset_s, timing.end_s + offset_s)
