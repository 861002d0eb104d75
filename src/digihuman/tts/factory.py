"""Pick and build a character's voice from its `[voice]` section (backend plus params)."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from digihuman.character import CHARACTER_FILE, BackendSpec, Character
from digihuman.config import Settings
from digihuman.errors import CharacterError
from digihuman.tts.base import TTS

logger = logging.getLogger(__name__)


def make_tts(character: Character, *, settings: Settings) -> TTS:
    """The character's voice. Bad params raise CharacterError naming the character file.

    A shipped character written for espeak speaks with a cached Piper voice for its language instead,
    unless `tts.shipped_piper` is off: nothing is downloaded for it, so offline it keeps espeak.
    """
    backend = character.spec.voice.backend
    shipped_espeak = backend == "espeak" and character.source == "shipped"
    if shipped_espeak and settings.tts.shipped_piper and (voice := cached_piper_voice(character.language)):
        logger.info("%s speaks with the cached Piper voice %s (tts.shipped_piper)", character.id, voice)
        return _piper(character, {"voice": voice})
    build = BUILDERS.get(backend)
    file = character.path / CHARACTER_FILE
    if build is None:
        raise CharacterError(f"{file}: unknown voice backend '{backend}' (valid: {', '.join(BUILDERS)})")
    try:
        return build(character, dict(character.spec.voice.params))
    except (TypeError, ValueError) as exc:
        raise CharacterError(f"{file}: [voice.params] for {backend}: {exc}") from None


def _espeak(character: Character, params: dict[str, Any]) -> TTS:
    from digihuman.lang import espeak_voice
    from digihuman.tts.espeak import EspeakTTS

    # The same default create_character writes (one home: lang.espeak_voice): Mandarin for Chinese.
    params.setdefault("voice", espeak_voice(character.language))
    return EspeakTTS(**params)


def cached_piper_voice(language: str) -> str | None:
    """A Piper voice for `language` already in the model cache (the default one first), if piper-tts is
    installed; None otherwise. Never downloads."""
    if importlib.util.find_spec("piper") is None:
        return None
    from digihuman.models import cached
    from digihuman.tts.piper import default_voice

    base = language.lower().split("-")[0]
    voices = sorted(m.name.removeprefix("piper:") for m in cached() if m.name.startswith(f"piper:{base}_"))
    preferred = default_voice(language)
    return preferred if preferred in voices else (voices[0] if voices else None)


def _piper(character: Character, params: dict[str, Any]) -> TTS:
    from digihuman.tts.piper import PiperTTS, default_voice

    voice = params.pop("voice", None) or default_voice(character.language)
    if not str(voice).startswith(("/", "~")) and (character.path / str(voice)).is_file():
        voice = str((character.path / str(voice)).resolve())  # a voice file inside the character folder
    return PiperTTS(str(voice), **params)


def voice_spec(backend: str | None, voice: str | None, language: str) -> BackendSpec | None:
    """The [voice] section `characters new --voice-backend B --voice-name V` writes; None: the default.

    A Piper voice name is checked now (its download waits for the first sentence); a path is stored
    absolute, so the character works from any directory.
    """
    if backend is None and voice is None:
        return None
    backend = backend or "espeak"
    if backend not in BUILDERS:
        raise CharacterError(f"unknown voice backend '{backend}' (valid: {', '.join(BUILDERS)})")
    if backend == "piper":
        from digihuman import models
        from digihuman.tts.piper import default_voice

        voice = voice or default_voice(language)
        local = Path(voice).expanduser()
        if voice.endswith(".onnx") or local.exists():
            voice = str(models.resolve(local, kind="voice"))  # UserError when missing or without .json
        else:
            models.lookup(voice, kind="voice")
    elif backend == "espeak":
        from digihuman.lang import espeak_voice

        voice = voice or espeak_voice(language)
    elif voice is not None and backend != "edge":
        raise CharacterError(f"--voice-name does not apply to the {backend} voice backend")
    return BackendSpec(backend=backend, params={"voice": voice} if voice else {})


def download_hint(spec: BackendSpec) -> str | None:
    """A note when a new character's Piper voice still has to be downloaded (on first use)."""
    voice = str(spec.params.get("voice", ""))
    if spec.backend != "piper" or not voice or Path(voice).is_absolute():
        return None
    from digihuman import models

    ref = models.lookup(voice, kind="voice")
    if ref.is_complete():
        return None
    return f"its voice {ref.name} downloads on first use, or now: digihuman models pull {ref.name}"


def _gpt_sovits(character: Character, params: dict[str, Any]) -> TTS:
    from digihuman.tts.gpt_sovits import DEFAULT_URL, GptSovitsTTS, gpt_sovits_language

    ref_audio = params.pop("ref_audio", None) or params.pop("ref_audio_path", None)
    if ref_audio:
        # A path the server reads; a relative one that exists in the character folder means that file.
        in_character = character.path / str(ref_audio)
        if not Path(str(ref_audio)).is_absolute() and in_character.exists():
            ref_audio = str(in_character.resolve())
    elif character.voice_sample_path is not None:
        ref_audio = str(character.voice_sample_path.resolve())
    else:
        raise CharacterError(
            f"character '{character.id}' has no voice sample for GPT-SoVITS: add voice_sample = "
            f'"voice.wav" (a 3-10 s recording) to {character.path / CHARACTER_FILE}, '
            "or set [voice.params] ref_audio"
        )
    return GptSovitsTTS(
        params.pop("url", DEFAULT_URL),
        ref_audio_path=str(ref_audio),
        prompt_text=params.pop("prompt_text", ""),
        prompt_lang=params.pop("prompt_lang", gpt_sovits_language(character.language)),
        **params,
    )


def _chattts(character: Character, params: dict[str, Any]) -> TTS:
    from digihuman.tts.chattts import from_character

    return from_character(character)


def _edge(character: Character, params: dict[str, Any]) -> TTS:
    from digihuman.tts.edge import EdgeTTS, default_voice

    params["voice"] = params.get("voice") or default_voice(character.language)
    return EdgeTTS(**params)


BUILDERS: dict[str, Callable[[Character, dict[str, Any]], TTS]] = {
    "espeak": _espeak,
    "piper": _piper,
    "gpt-sovits": _gpt_sovits,
    "chattts": _chattts,
    "edge": _edge,
}
