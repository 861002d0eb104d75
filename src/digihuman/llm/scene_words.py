"""Camera frames in words, for brains that read no pictures (a plain GGUF chat model, a text-only server).

The director attaches its latest frames to a request. Whether the model takes them is known up front for
some brains (the built-in one never does; Ollama's /api/show lists "vision" among the capabilities) and
learned from the first refusal for the others (a text-only llama.cpp server fails the request). Either way
`ask` sends the scene as a short description instead: what the camera noticed and when, who is in view, how
long the scene has been still, and how the picture looks (light, main colour). It warns once per brain and
carries on.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import numpy as np

from digihuman.llm.base import LLM, LLMError, Message, RequestRefused, Usage
from digihuman.llm.memory import CAMERA_TAG
from digihuman.streams import close_stream

if TYPE_CHECKING:
    from digihuman.vision.scene import SceneEvent

logger = logging.getLogger(__name__)

STILL_WORTH_SAYING_S = 5.0
_EVENT_WORDS = {
    "someone_arrived": "someone came into view",
    "someone_left": "someone left the view",
    "scene_changed": "the scene changed",
}
_COLOURS = {  # a few names a small model knows, by RGB
    "red": (200, 40, 40),
    "orange": (220, 130, 40),
    "yellow": (220, 210, 60),
    "green": (50, 160, 60),
    "blue": (50, 90, 200),
    "purple": (130, 60, 170),
    "brown": (120, 80, 50),
}
_warned: weakref.WeakSet[object] = weakref.WeakSet()


@dataclass(frozen=True, slots=True)
class Noted:
    kind: str
    at: float
    score: float


class SceneNotes:
    """What the camera reported, kept to describe the scene in words. Times are on the director's clock."""

    def __init__(self, started_at: float, *, keep: int = 5) -> None:
        self.started_at = started_at
        self.events: deque[Noted] = deque(maxlen=keep)
        self.people: int | None = None  # faces in view at the last presence event; None: not known yet

    def note(self, event: SceneEvent, now: float) -> None:
        self.events.append(Noted(event.kind, now, event.score))
        if event.kind == "someone_arrived":
            self.people = max(1, round(event.score))
        elif event.kind == "someone_left":
            self.people = max(0, round(event.score))

    def describe(self, now: float, rgb: np.ndarray | None = None) -> str:
        """A few sentences for the prompt: events and when, who is in view, stillness, light and colour."""
        lines = ["Camera report:"]
        if self.events:
            told = [f"{_ago(now - e.at)} {_event_words(e)}" for e in self.events]
            lines.append("Camera events, oldest first: " + "; ".join(told) + ".")
        elif now - self.started_at < STILL_WORTH_SAYING_S:
            lines.append("The camera has just started.")
        else:
            lines.append(f"Nothing has changed since the camera started {_ago(now - self.started_at)}.")
        if self.people is not None:
            lines.append(_people(self.people))
        still_for = now - (self.events[-1].at if self.events else self.started_at)
        if still_for >= STILL_WORTH_SAYING_S:  # "still for 0 s" is noise a small model repeats
            lines.append(f"The scene has been still for {_duration(still_for)}.")
        if rgb is not None and rgb.size:
            lines.append(_looks(rgb))
        return " ".join(lines)


# What the prompts say about pictures, and what it becomes for a brain that gets words instead.
_PICTURE_TALK = {
    "The attached pictures are your latest camera frames, oldest first.": "",
    "You only see what is in the attached pictures.": "You cannot see pictures: your camera tells you in "
    "words what it notices.",
}


def in_words(messages: Sequence[Message], description: str) -> list[Message]:
    """The messages with the pictures taken out: the camera's report goes first in the message that had them
    (the instruction stays last, where a small model heeds it), and talk of attached pictures is dropped."""
    worded = []
    for message in messages:
        content = message.content
        for said, instead in _PICTURE_TALK.items():
            content = content.replace(f" {said}", f" {instead}".rstrip()).replace(said, instead)
        if message.images:
            content = _insert_report(content, description)
        worded.append(
            Message(message.role, content) if content != message.content or message.images else message
        )
    return worded


def _insert_report(content: str, report: str) -> str:
    """The report after the message's first sentence (what happened), before the instruction."""
    if not content.strip():
        return f"{CAMERA_TAG} {report}"
    first, dot, rest = content.partition(". ")
    if not dot:
        return f"{content}\n{report}"
    return f"{first}. {report} {rest}"


async def ask(
    llm: LLM, messages: Sequence[Message], usage: Usage, describe: Callable[[], str]
) -> AsyncIterator[str]:
    """`llm.stream`, except that a brain that reads no pictures gets the scene in words."""
    if not any(m.images for m in messages):
        stream = aiter(llm.stream(messages, usage))
    elif getattr(llm, "accepts_images", None) is False:
        _warn_once(llm, None)
        stream = aiter(llm.stream(in_words(messages, describe()), usage))
    else:
        stream = _try_pictures(llm, messages, usage, describe)
    try:
        async for delta in stream:
            yield delta
    finally:
        await close_stream(stream)


async def _try_pictures(
    llm: LLM, messages: Sequence[Message], usage: Usage, describe: Callable[[], str]
) -> AsyncIterator[str]:
    """Send the pictures; if the server refuses the request, ask again in words and, when that works,
    remember that this brain reads no pictures."""
    stream = aiter(llm.stream(messages, usage))
    try:
        first = await anext(stream, None)
    except RequestRefused as refused:
        await close_stream(stream)
        _reset(usage)
        retry = aiter(llm.stream(in_words(messages, describe()), usage))
        try:
            try:
                first = await anext(retry, None)
            except LLMError:
                raise refused from None  # not about pictures after all: the first error says more
            _learned(llm, refused)
            usage.notes.append(f"pictures refused ({refused}); the scene was described in words")
            if first is not None:
                yield first
            async for delta in retry:
                yield delta
        finally:
            await close_stream(retry)
        return
    try:
        if first is not None:
            yield first
        async for delta in stream:
            yield delta
    finally:
        await close_stream(stream)


def _learned(llm: LLM, refused: RequestRefused) -> None:
    with contextlib.suppress(AttributeError):  # adapters keep it as a plain attribute; fakes may not
        setattr(llm, "accepts_images", False)  # noqa: B010 - not in the LLM protocol: fakes lack it
    _warn_once(llm, refused)


def _warn_once(llm: LLM, refused: RequestRefused | None) -> None:
    if llm in _warned:
        return
    _warned.add(llm)
    why = f"it refused them: {refused}" if refused else "it reads no pictures"
    logger.warning("%s gets the camera in words, not pictures (%s)", llm.model, why)


def _reset(usage: Usage) -> None:
    """Forget what the refused request wrote, so the answer's own figures are recorded."""
    for spec in fields(Usage):
        setattr(usage, spec.name, getattr(Usage(), spec.name))


def _event_words(event: Noted) -> str:
    words = _EVENT_WORDS.get(event.kind, event.kind.replace("_", " "))
    if event.kind == "scene_changed" and event.score > 0:
        words += f" (about {round(event.score * 100)}% of the view)"
    return words


def _people(count: int) -> str:
    if count == 0:
        return "Nobody is in view now."
    return "1 person is in view now." if count == 1 else f"{count} people are in view now."


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{round(seconds)} s"
    return f"{round(seconds / 60)} min"


def _ago(seconds: float) -> str:
    return "just now" if seconds < 1.5 else f"{_duration(seconds)} ago"


def _looks(rgb: np.ndarray) -> str:
    """The light and the main colour of a frame, in a few words."""
    pixels = rgb.reshape(-1, 3).astype(np.float32)
    luma = float((pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)).mean())
    light = "dark" if luma < 50 else "dim" if luma < 110 else "bright"
    mean = pixels.mean(axis=0)
    if float(mean.max() - mean.min()) < 25:  # barely coloured: grey, white or black
        return f"The picture is {light} and mostly grey."
    name = min(_COLOURS, key=lambda c: float(np.sum((np.array(_COLOURS[c]) - mean) ** 2)))
    return f"The picture is {light}, mostly {name}."
