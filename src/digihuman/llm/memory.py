"""Conversation memory: the persona, the last few exchanges, and what the camera noticed.

Assistant entries hold only what the user actually heard (a cut reply keeps its played part). What the
camera prompted is stored as a short user-role note starting with `[camera]`, which the system prompt
explains: the model keeps the context ("someone arrived") without mistaking it for the user's words, and
the history stays in plain user/assistant turns that every chat template accepts.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from digihuman.llm.base import Message, Role

CAMERA_TAG = "[camera]"
CAMERA_HINT = (
    f"Messages that start with {CAMERA_TAG} are notes from your camera about what you see, not words the "
    "user said. You only see what is in the attached pictures."
)
_OBSERVATION_NOTES: dict[str, str] = {
    "greeting": "The session started.",
    "scene_changed": "The scene changed.",
    "someone_arrived": "Someone arrived.",
    "someone_left": "Someone left.",
    "static": "Nothing has changed for a while.",
}
_PROACTIVE_ASKS: dict[str, str] = {
    "greeting": "Greet the user in one short sentence, mentioning something you see if it fits.",
    "scene_changed": "Something in view just changed.",
    "someone_arrived": "Someone just came into view.",
    "someone_left": "Someone just left the view.",
    "static": "Nothing has changed for a while.",
}


@dataclass(frozen=True, slots=True)
class Entry:
    role: Literal["user", "assistant"]
    content: str


def observation_note(kind: str) -> str:
    """The `[camera]` note stored in memory for a proactive remark."""
    note = _OBSERVATION_NOTES.get(kind, _OBSERVATION_NOTES["scene_changed"])
    return f"{CAMERA_TAG} {note}"


def proactive_prompt(kind: str, silence_token: str) -> str:
    """The instruction for a camera round: look at the frames, speak briefly or stay silent."""
    ask = _PROACTIVE_ASKS.get(kind, _PROACTIVE_ASKS["scene_changed"])
    return (
        f"{CAMERA_TAG} {ask} The attached pictures are your latest camera frames, oldest first. "
        "If something is worth saying to the user, say it in one or two short spoken sentences, in your "
        f"usual language. If not, reply with exactly {silence_token} and nothing else."
    )


class ConversationMemory:
    """The persona plus a bounded history: at most 2 * `max_exchanges` entries and `max_chars` characters."""

    def __init__(self, persona: str, *, max_exchanges: int = 12, max_chars: int = 6000) -> None:
        self.persona = persona
        self.max_exchanges = max_exchanges
        self.max_chars = max_chars
        self._entries: deque[Entry] = deque()

    @property
    def entries(self) -> tuple[Entry, ...]:
        return tuple(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def chars(self) -> int:
        return sum(len(e.content) for e in self._entries)

    def clear(self) -> None:
        self._entries.clear()

    def add_user(self, text: str) -> None:
        if text := text.strip():
            self._append(Entry("user", text))

    def add_observation(self, kind: str) -> None:
        """Note what the camera prompted (stored as user-role context, see the module doc)."""
        self._append(Entry("user", observation_note(kind)))

    def add_assistant(self, heard_text: str) -> None:
        """Store what the user heard of a reply; nothing heard leaves no entry."""
        if heard_text := heard_text.strip():
            self._append(Entry("assistant", heard_text))

    @property
    def system_prompt(self) -> str:
        return f"{self.persona}\n\n{CAMERA_HINT}" if self.persona else CAMERA_HINT

    def messages(self, *, prompt: str | None = None, images: Sequence[bytes] = ()) -> list[Message]:
        """The message list for the LLM: system persona, history, then `prompt` (not stored) as the last
        user message; `images` (JPEG bytes, oldest first) are attached to the last user message."""
        entries: list[tuple[Role, str]] = [(entry.role, entry.content) for entry in self._entries]
        if prompt:
            entries.append(("user", prompt))
        turns: list[tuple[Role, str]] = []
        for role, content in entries:
            # Consecutive same-role entries (a cut reply nobody heard, camera notes) are merged, so roles
            # alternate as strict chat templates require.
            if turns and turns[-1][0] == role:
                turns[-1] = (role, f"{turns[-1][1]}\n{content}")
            else:
                turns.append((role, content))
        messages = [Message("system", self.system_prompt)]
        messages += [Message(role, content) for role, content in turns]
        if images:
            last = messages[-1]
            if last.role == "user":
                messages[-1] = Message("user", last.content, tuple(images))
            else:  # the history ends with a reply: the pictures come as a camera note of their own
                messages.append(Message("user", CAMERA_TAG, tuple(images)))
        return messages

    def _append(self, entry: Entry) -> None:
        if len(entry.content) > self.max_chars:  # one huge entry (a long `say`) must not evict everything
            entry = Entry(entry.role, entry.content[: self.max_chars - 1].rstrip() + "…")
        self._entries.append(entry)
        # Oldest first; the newest entry always stays, and the history never opens with a reply.
        while len(self._entries) > 1 and (
            len(self._entries) > 2 * self.max_exchanges or self.chars() > self.max_chars
        ):
            self._entries.popleft()
            while len(self._entries) > 1 and self._entries[0].role == "assistant":
                self._entries.popleft()
