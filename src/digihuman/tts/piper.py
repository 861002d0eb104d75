"""Piper neural voices (optional extra "piper"): natural offline speech, ~20x real time on one core.

A voice is an ONNX model plus its `.onnx.json`, named like `en_US-joe-medium` (fetched once through
`digihuman.models` into the model cache) or given as a path to the `.onnx`. piper-tts phonemizes with its
own bundled espeak-ng and synthesizes one sentence per model call; each sentence is cut into short chunks.

Mouth timings: Piper voices have no alignment output, but their duration predictor knows how many audio
frames each phoneme gets. With the `onnx` package (in the extra) the model is patched in memory to expose
them (piper's own `include_alignments`): exact phoneme timings, so the lips close on p, b and m. Without
it, or with `mouth = "audio"`, the animator follows the audio's loudness and spectrum. Measured with
FaceMesh on the rendered frames (tests/tts/test_piper.py): the lips close on bilabials only with timings;
spreading the phoneme string evenly over the audio (no alignments) measured worse than the audio alone.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from digihuman import lang
from digihuman.errors import BackendError, ConfigError, MissingExtraError
from digihuman.media import AudioChunk, Timing, chunk_audio
from digihuman.tts.text import split_long_text

logger = logging.getLogger(__name__)

# One voice per language when the character names none; the others are a `voice = "..."` away.
DEFAULT_VOICES = {"en": "en_US-joe-medium", "zh": "zh_CN-huayan-medium"}
Mouth = Literal["alignments", "audio"]
SILENCE = "_"
_MAX_PIECE_CHARS = 400
_PAUSE_RMS = 0.15  # a word gap quieter than this (relative to the sentence) is a pause the lips show
_STRESS = frozenset("ˈˌ")
_LENGTH = frozenset("ːˑ")  # length marks lengthen the sound before them
_MODIFIERS = frozenset("ʰʲʷ̩̯̃͡")  # aspiration, palatalization, ...: part of the sound before them
_PAUSES = frozenset(" ,.;:!?-—…()\"'^$_")
# IPA letters that visemes.py does not list, written as the nearest sound it does.
_NEAREST = {
    "ɐ": "a",
    "ᵻ": "ɪ",
    "ɵ": "o",
    "ø": "y",
    "œ": "E",
    "ɯ": "u",
    "ɫ": "l",
    "ɬ": "l",
    "ʎ": "l",
    "ɲ": "n",
}


def default_voice(language: str) -> str:
    return DEFAULT_VOICES.get(language.lower().split("-")[0], DEFAULT_VOICES["en"])


@dataclass(slots=True)
class _Voice:
    """A loaded voice; `lock` serializes its calls (piper's phonemizer keeps global espeak state)."""

    piper: Any  # piper.PiperVoice
    aligned: bool
    lock: threading.Lock

    @property
    def sample_rate(self) -> int:
        return int(self.piper.config.sample_rate)


_VOICES: dict[tuple[str, int, bool], _Voice] = {}
_VOICES_LOCK = threading.Lock()


def _load_voice(path: Path, threads: int, alignments: bool) -> _Voice:
    """Load (once per process) an ONNX voice, patched for alignments when asked and possible."""
    key = (str(path), threads, alignments)
    with _VOICES_LOCK:
        if key in _VOICES:
            return _VOICES[key]
        try:
            import onnxruntime
            from piper import PiperVoice
            from piper.config import PiperConfig
        except ImportError:
            raise MissingExtraError("piper-tts", "piper") from None
        config_file = Path(f"{path}.json")
        try:
            config = PiperConfig.from_dict(json.loads(config_file.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise ConfigError(f"Piper voice {path} has no {config_file.name} next to it") from None
        except (ValueError, KeyError) as exc:
            raise BackendError(
                f"Piper voice config {config_file} is invalid ({exc}): download it again"
            ) from None
        model, aligned = _patched(path) if alignments else (str(path), False)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            session = onnxruntime.InferenceSession(
                model, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types for a corrupt file
            raise BackendError(f"Piper voice {path} could not be loaded ({exc}): download it again") from None
        voice = _Voice(PiperVoice(session=session, config=config), aligned, threading.Lock())
        _VOICES[key] = voice
        logger.info("Piper voice %s loaded (%d Hz, alignments: %s)", path.name, voice.sample_rate, aligned)
        return voice


def _patched(path: Path) -> tuple[str | bytes, bool]:
    """The model with its per-phoneme durations exposed as an output, or the plain model without onnx.

    Patching takes a few hundred milliseconds, so the patched copy is kept in the model cache and later
    processes load it directly.
    """
    stat = path.stat()
    key = hashlib.sha1(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    from digihuman.models import cache_dir

    copy = cache_dir() / "piper-aligned" / f"{path.stem}-{key}.onnx"
    if copy.is_file():
        return str(copy), True
    try:
        import onnx
        from piper.patch_voice_with_alignment import add_alignment_output
    except ImportError:
        logger.info("onnx is not installed: the lips follow the Piper audio (no phoneme timings)")
        return str(path), False
    try:
        model = onnx.load(str(path))
    except Exception:  # a corrupt file: onnxruntime reports it when it loads the plain path
        return str(path), False
    try:
        add_alignment_output(model)
    except ValueError:  # already patched on disk, or a graph piper cannot patch
        return str(path), len(model.graph.output) > 1
    data = model.SerializeToString()
    try:
        copy.parent.mkdir(parents=True, exist_ok=True)
        partial = copy.with_name(f".{copy.name}.{os.getpid()}.tmp")
        partial.write_bytes(data)
        partial.replace(copy)  # atomic: another process never loads half a model
    except OSError as exc:  # a read-only cache only costs the patching next time
        logger.debug("could not keep the patched voice at %s: %s", copy, exc)
    return data, True


class PiperTTS:
    """A Piper voice. `voice`: a voice name (downloaded on first use) or a path to an `.onnx`; None picks
    one per language. `length_scale` > 1 speaks slower (or `speed`, its inverse); `speaker` picks a
    speaker of a multi-speaker voice by name or number. `mouth` chooses what drives the lips.
    """

    name = "piper"

    def __init__(
        self,
        voice: str | None = None,
        *,
        length_scale: float | None = None,
        speed: float | None = None,
        speaker: str | int | None = None,
        noise_scale: float | None = None,
        noise_w: float | None = None,
        volume: float = 0.9,
        threads: int = 1,
        mouth: Mouth = "alignments",
        chunk_s: float = 0.2,
    ) -> None:
        from digihuman import models

        if speed is not None and length_scale is not None:
            raise ConfigError("give Piper either speed or length_scale, not both")
        if speed is not None:
            if not 0.25 <= speed <= 4:
                raise ConfigError(f"Piper speed must be between 0.25 and 4, got {speed}")
            length_scale = 1 / speed
        if length_scale is not None and not 0.25 <= length_scale <= 4:
            raise ConfigError(f"Piper length_scale must be between 0.25 and 4, got {length_scale}")
        if mouth not in ("alignments", "audio"):
            raise ConfigError(f"Piper mouth must be alignments or audio, got {mouth!r}")
        if not 1 <= threads <= 64:
            raise ConfigError(f"Piper threads must be between 1 and 64, got {threads}")
        if not 0 < volume <= 1:
            raise ConfigError(f"Piper volume must be in (0, 1], got {volume}")
        if not 0.01 <= chunk_s <= 10:
            raise ConfigError(f"Piper chunk_s must be between 0.01 and 10 seconds, got {chunk_s}")
        if voice is not None and not _is_path(voice):
            models.lookup(voice, kind="voice")  # a bad name fails now, not at the first sentence
        self.voice = voice
        self.length_scale, self.speaker = length_scale, speaker
        self.noise_scale, self.noise_w, self.volume = noise_scale, noise_w, volume
        self.threads, self.mouth, self.chunk_s = threads, mouth, chunk_s

    def _voice_for(self, language: str) -> _Voice:
        """Blocking: resolve (maybe download) and load the voice."""
        from digihuman import models

        path = models.resolve(self.voice or default_voice(language), kind="voice")
        return _load_voice(path, self.threads, self.mouth == "alignments")

    def _config(self, voice: _Voice) -> Any:
        from piper import SynthesisConfig

        return SynthesisConfig(
            speaker_id=_speaker_id(voice, self.speaker),
            length_scale=self.length_scale,
            noise_scale=self.noise_scale,
            noise_w_scale=self.noise_w,
            volume=self.volume,
        )

    async def synthesize(self, text: str, language: str) -> AsyncIterator[AudioChunk]:
        text = text.strip()
        if not any(ch.isalnum() for ch in text):
            return
        voice = await asyncio.to_thread(self._voice_for, language)
        if lang.has_han(text) and not lang.has_kana(text) and not _reads_chinese(voice):
            # An English voice would spell each hanzi out ("Chinese letter"): espeak reads Mandarin.
            from digihuman.tts.espeak import EspeakTTS

            async for chunk in EspeakTTS("cmn").synthesize(text, "zh"):
                yield chunk
            return
        config = self._config(voice)
        offset_s = 0.0
        for piece in split_long_text(text, _MAX_PIECE_CHARS):
            sentences = _sentences(voice, piece, config, self.mouth == "alignments")
            while True:
                # One sentence per worker call: a cancelled turn stops after at most one sentence.
                result = await asyncio.to_thread(_next_sentence, voice, sentences, self.mouth)
                if result is None:
                    break
                pcm, phonemes = result
                for chunk in _chunks(pcm, voice.sample_rate, phonemes, offset_s, self.chunk_s, text):
                    yield chunk
                offset_s += len(pcm) / voice.sample_rate

    async def warm_up(self, language: str = "en") -> None:
        """Fetch and load the voice ahead of the first sentence (BackendError when it cannot be had)."""
        voice = await asyncio.to_thread(self._voice_for, language)
        _speaker_id(voice, self.speaker)  # an unknown speaker name fails here

    async def aclose(self) -> None:
        """Nothing to release: loaded voices are shared by the process."""


def _reads_chinese(voice: _Voice) -> bool:
    config = voice.piper.config
    return bool(config.phoneme_type == "pinyin" or lang.is_chinese(str(config.espeak_voice)))


def _is_path(voice: str) -> bool:
    return voice.endswith(".onnx") or "/" in voice or voice.startswith("~")


def _speaker_id(voice: _Voice, speaker: str | int | None) -> int | None:
    config = voice.piper.config
    if speaker is None or config.num_speakers <= 1:
        return None
    if isinstance(speaker, int) or str(speaker).isdigit():
        number = int(speaker)
        if not 0 <= number < config.num_speakers:
            raise ConfigError(f"Piper speaker {number} is out of range: this voice has {config.num_speakers}")
        return number
    if speaker not in config.speaker_id_map:
        names = ", ".join(list(config.speaker_id_map)[:8])
        raise ConfigError(f"Piper voice has no speaker {speaker!r} (e.g. {names})")
    return int(config.speaker_id_map[speaker])


def _sentences(voice: _Voice, text: str, config: Any, alignments: bool) -> Iterator[Any]:
    return iter(
        voice.piper.synthesize(text, syn_config=config, include_alignments=alignments and voice.aligned)
    )


def _next_sentence(
    voice: _Voice, sentences: Iterator[Any], mouth: Mouth
) -> tuple[np.ndarray, tuple[Timing, ...]] | None:
    with voice.lock:
        chunk = next(sentences, None)
    if chunk is None:
        return None
    pcm = np.asarray(chunk.audio_float_array, dtype=np.float32)
    if mouth == "alignments" and chunk.phoneme_alignments:
        pairs = [(a.phoneme, int(a.num_samples)) for a in chunk.phoneme_alignments]
        return pcm, aligned_timings(pairs, pcm, voice.sample_rate)
    return pcm, ()  # no timings: the animator follows the audio


def aligned_timings(
    alignments: Sequence[tuple[str, int]], pcm: np.ndarray, sample_rate: int
) -> tuple[Timing, ...]:
    """Phoneme timings from (phoneme, samples) pairs, as the visemes expect them.

    Stress marks join the sound after them, length marks and modifiers the sound before them. Spaces and
    punctuation are pauses ("_") where the audio is quiet; a word gap the voice runs through (the model
    often gives it part of a neighbouring sound) lengthens the sound before it instead.
    """
    speech_rms = float(np.sqrt(np.mean(np.square(pcm, dtype=np.float64)))) if len(pcm) else 0.0
    merged: list[list[Any]] = []  # [label, start_s, end_s]
    at = 0
    carry = 0  # samples of stress marks waiting for their sound
    for symbol, samples in alignments:
        start, at = at, at + samples
        if symbol in _STRESS:
            carry += samples
        elif (symbol in _LENGTH or symbol in _MODIFIERS) and merged:
            merged[-1][2] = at
        elif symbol in _PAUSES:
            segment = pcm[start:at]
            rms = float(np.sqrt(np.mean(np.square(segment, dtype=np.float64)))) if len(segment) else 0.0
            quiet = rms < _PAUSE_RMS * speech_rms
            if merged and (merged[-1][0] == SILENCE or not quiet):
                merged[-1][2] = at
            else:
                merged.append([SILENCE, start - carry, at])
            carry = 0
        else:
            merged.append([_NEAREST.get(symbol, symbol), start - carry, at])
            carry = 0
    if merged:
        merged[-1][2] = at
    return tuple(
        Timing(label, start / sample_rate, end / sample_rate) for label, start, end in merged if end > start
    )


def _chunks(
    pcm: np.ndarray,
    rate: int,
    phonemes: tuple[Timing, ...],
    offset_s: float,
    chunk_s: float,
    text: str,
) -> list[AudioChunk]:
    """Cuts one sentence into chunks of about `chunk_s`; timings shift by `offset_s` into the utterance."""
    return chunk_audio(pcm, rate, chunk_s=chunk_s, offset_s=offset_s, phonemes=phonemes, text=text)
