"""The brains: LLM/VLM adapters behind one small interface (see base.py), chosen by `make_llm`."""

from __future__ import annotations

from digihuman.config import LLMSettings
from digihuman.llm.base import LLM, FailedRound, LLMError, Message, Usage

__all__ = ["LLM", "FailedRound", "LLMError", "Message", "Usage", "make_llm"]


def make_llm(settings: LLMSettings) -> LLM:
    """The adapter for `settings.backend`: "ollama" (native API) or "openai" (OpenAI-compatible servers)."""
    if settings.backend == "ollama":
        from digihuman.llm.ollama import OllamaLLM

        return OllamaLLM(settings)
    if settings.backend == "openai":
        from digihuman.llm.openai_compat import OpenAICompatLLM

        return OpenAICompatLLM(settings)
    raise LLMError(f"unknown llm.backend {settings.backend!r}: use 'ollama' or 'openai'")
