"""The brains: LLM/VLM adapters behind one small interface (see base.py), chosen by `make_llm`."""

from __future__ import annotations

from digihuman.config import LLMSettings
from digihuman.llm.base import LLM, FailedRound, LLMError, Message, Usage

__all__ = ["LLM", "FailedRound", "LLMError", "Message", "Usage", "make_llm"]


def make_llm(settings: LLMSettings) -> LLM:
    """The adapter for `settings.backend`: "ollama" (native API), "openai" (OpenAI-compatible servers) or
    "llamacpp" (a GGUF model run in this process by llama.cpp)."""
    if settings.backend == "ollama":
        if not {"backend", "url"} & settings.model_fields_set:
            # Nothing chose a brain (file, environment or flag): Ollama is a guess, and its absence says so.
            from digihuman.llm.no_brain import GuessedOllama

            return GuessedOllama(settings)
        from digihuman.llm.ollama import OllamaLLM

        return OllamaLLM(settings)
    if settings.backend == "openai":
        from digihuman.llm.openai_compat import OpenAICompatLLM

        return OpenAICompatLLM(settings)
    if settings.backend == "llamacpp":
        from digihuman.llm.llamacpp import LlamaCppLLM

        return LlamaCppLLM(settings)
    raise LLMError(f"unknown llm.backend {settings.backend!r}: use 'ollama', 'openai' or 'llamacpp'")
