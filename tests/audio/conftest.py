"""Real listening models for the audio tests (skipped, naming the fix, when the fixtures are absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.real_models import piper_joe, real_model_path, silero_vad_onnx, smart_turn_onnx, whisper_base

__all__ = ["piper_joe", "silero_vad_onnx", "smart_turn_onnx", "whisper_base"]


@pytest.fixture
def listen_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Config pointing [asr] and [listen] at the local real models (what `digihuman listen` reads)."""
    paths = {
        "asr": real_model_path("whisper-base"),
        "vad": real_model_path("silero-vad"),
        "turn": real_model_path("smart-turn"),
    }
    monkeypatch.setenv("DIGIHUMAN_ASR__MODEL", str(paths["asr"]))
    monkeypatch.setenv("DIGIHUMAN_LISTEN__VAD_MODEL", str(paths["vad"]))
    monkeypatch.setenv("DIGIHUMAN_LISTEN__TURN_MODEL", str(paths["turn"]))
    return paths
