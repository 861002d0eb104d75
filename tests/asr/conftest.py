"""Real Whisper weights for the ASR tests (skipped, naming the fix, when the fixture is absent)."""

from __future__ import annotations

from tests.real_models import whisper_base

__all__ = ["whisper_base"]
