"""The LLM interface: messages (with optional images) in, an async stream of spoken-text deltas out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from digihuman.errors import BackendError

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str
    images: tuple[bytes, ...] = ()  # JPEG bytes; adapters encode them as their protocol wants


@dataclass(slots=True)
class Usage:
    """Filled in by the adapter while it streams; complete when the stream ends."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    images: int = 0
    first_token_s: float | None = None  # seconds from request to first content token
    duration_s: float = 0.0
    tokens_per_s: float = 0.0
    done_reason: str = ""
    thinking_chars: int = 0  # reasoning received and discarded (never spoken)
    notes: list[str] = field(default_factory=list)


class LLMError(BackendError):
    """The LLM backend failed; the message says what to do."""


class RequestRefused(LLMError):
    """The server understood the request and answered it with an error (pictures for a text-only model,
    a bad parameter); unlike an unreachable, busy or silent server, asking differently may work."""


class FailedRound(LLMError):
    """The model produced nothing speakable: only thinking, endless thinking, or a loop cut to nothing."""


class LLM(Protocol):
    # Read-only properties, so a class constant, an instance attribute or a property all satisfy them.
    @property
    def name(self) -> str: ...

    @property
    def model(self) -> str: ...

    def stream(self, messages: Sequence[Message], usage: Usage | None = None) -> AsyncIterator[str]:
        """Yield content deltas (never reasoning). Raise LLMError or FailedRound on failure."""
        ...

    async def preload(self, system: str = "") -> None:
        """Load the model ahead of the first turn (a no-op where the backend has no such call). `system` is
        the conversation's system prompt: a backend that caches prompts may evaluate it now, so that the
        first reply starts as soon as the later ones."""
        ...

    async def aclose(self) -> None: ...
