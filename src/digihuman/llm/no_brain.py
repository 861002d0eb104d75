"""When nothing names a brain: Ollama at its default address is only a guess, and its absence says so."""

from __future__ import annotations

import httpx

from digihuman.llm.base import LLMError
from digihuman.llm.ollama import OllamaLLM


def no_brain_message(url: str) -> str:
    """One line naming the three ways to get a brain."""
    return (
        f"no LLM is configured and no Ollama answers at {url}: start Ollama (`ollama serve`, then "
        "`ollama pull qwen3-vl:4b-instruct`), point at an OpenAI-compatible server (`--llm openai --llm-url "
        "http://127.0.0.1:8080/v1`), or use the built-in brain (`--llm llamacpp`, after "
        "`.venv/bin/pip install 'digihuman[llamacpp]'`)"
    )


class GuessedOllama(OllamaLLM):
    """Ollama at its default address because nothing else was configured; if it does not answer, the error
    names all three ways to get a brain, not only Ollama."""

    def _error(self, exc: Exception) -> LLMError:
        if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, ConnectionError)):
            return LLMError(no_brain_message(self.url))
        return super()._error(exc)
