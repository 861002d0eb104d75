"""The configured ASR backend (`[asr] backend`): faster-whisper in-process, or an OpenAI-compatible server."""

from __future__ import annotations

from digihuman.asr.base import ASR
from digihuman.config import ASRSettings


def create_asr(settings: ASRSettings, language: str | None = None) -> ASR:
    """`language` (a CLI flag, a character's language) overrides `[asr] language`."""
    lang = language or settings.language
    if settings.backend == "openai":
        from digihuman.asr.openai_compat import OpenAICompatASR

        model = settings.model if settings.model != "base" else "whisper-1"  # the default names a local model
        return OpenAICompatASR(settings.url, model, api_key=settings.api_key, language=lang)
    from digihuman.asr.faster_whisper import FasterWhisperASR

    return FasterWhisperASR(
        settings.model,
        language=lang,
        compute_type=settings.compute_type,
        threads=settings.threads,
        beam_size=settings.beam_size,
    )
