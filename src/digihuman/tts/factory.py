"""Pick and build a character's voice from its `[voice]` section (backend plus params)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from digihuman.character import CHARACTER_FILE, Character
from digihuman.config import Settings
from digihuman.errors import CharacterError
from digihuman.tts.base import TTS


def make_tts(character: Character, *, settings: Settings) -> TTS:
    """The character's voice. Bad params raise CharacterError naming the character file.

    `settings` is part of the call so that voices can read global options; none of these needs one yet.
    """
    backend = character.spec.voice.backend
    build = BUILDERS.get(backend)
    file = character.path / CHARACTER_FILE
    if build is None:
        raise CharacterError(f"{file}: unknown voice backend '{backend}' (valid: {', '.join(BUILDERS)})")
    try:
        return build(character, dict(character.spec.voice.params))
    except (TypeError, ValueError) as exc:
        raise CharacterError(f"{file}: [voice.params] for {backend}: {exc}") from None


def _espeak(character: Character, params: dict[str, Any]) -> TTS:
    from digihuman.tts.espeak import EspeakTTS

    # The same default create_character writes: Mandarin for Chinese characters.
    params.setdefault("voice", "cmn" if character.language.startswith("zh") else "en-us")
    return EspeakTTS(**params)


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
    "gpt-sovits": _gpt_sovits,
    "chattts": _chattts,
    "edge": _edge,
}
