"""The five small interfaces in one place, and a static proof that every backend implements its own.

The Protocols live next to their implementations (`tts/base.py`, `face/base.py`, `llm/base.py`,
`output/base.py`). Protocols are structural, so nothing at runtime says a class implements one: the
`TYPE_CHECKING` block below assigns each implementation to its Protocol, and mypy (tests/test_types.py)
fails when one drifts (a renamed method, a changed signature, a sync method where an async one belongs).
A new backend adds one line here; its runtime behaviour is pinned by tests/contracts/.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from digihuman.face.base import Face
from digihuman.llm.base import LLM
from digihuman.output.base import Sink
from digihuman.tts.base import TTS

__all__ = ["LLM", "TTS", "Face", "Sink"]

if TYPE_CHECKING:  # checked by mypy, never run: importing every backend would be slow and need extras
    from digihuman.face.animator import PortraitAnimator
    from digihuman.face.sadtalker import SadTalkerFace
    from digihuman.face.wav2lip import Wav2LipFace
    from digihuman.llm.llamacpp import LlamaCppLLM
    from digihuman.llm.no_brain import GuessedOllama
    from digihuman.llm.ollama import OllamaLLM
    from digihuman.llm.openai_compat import OpenAICompatLLM
    from digihuman.output.recorder import Mp4Recorder, TurnRecorder
    from digihuman.output.speaker import SpeakerSink
    from digihuman.output.window import WindowPlayer
    from digihuman.server.media import WebSink
    from digihuman.testing.fakes import FakeSink, ScriptedFace, ScriptedLLM, ScriptedTTS
    from digihuman.tts.chattts import ChatTtsTTS
    from digihuman.tts.edge import EdgeTTS
    from digihuman.tts.espeak import EspeakTTS
    from digihuman.tts.gpt_sovits import GptSovitsTTS
    from digihuman.tts.piper import PiperTTS

    def _voices(a: EspeakTTS, b: GptSovitsTTS, c: ChatTtsTTS, d: EdgeTTS, e: PiperTTS) -> list[TTS]:
        return [a, b, c, d, e]

    def _faces(a: PortraitAnimator, b: SadTalkerFace, c: Wav2LipFace) -> list[Face]:
        return [a, b, c]

    def _llms(a: OllamaLLM, b: OpenAICompatLLM, c: LlamaCppLLM, d: GuessedOllama) -> list[LLM]:
        return [a, b, c, d]

    def _sinks(a: Mp4Recorder, b: TurnRecorder, c: WindowPlayer, d: SpeakerSink, e: WebSink) -> list[Sink]:
        return [a, b, c, d, e]

    def _fakes(a: ScriptedTTS, b: ScriptedFace, c: ScriptedLLM, d: FakeSink) -> tuple[TTS, Face, LLM, Sink]:
        return (a, b, c, d)
