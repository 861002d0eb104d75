"""The stand-in Ollama server's scripted models: what each model name streams (see ollama_server.py).

A script turns a validated chat request into steps: tokens of thinking or content, pauses, or an error.
The replies are deterministic and echo what arrived (the user's last words, how many images), so tests can
check what the adapter sent by what it says back.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.llm.ollama_server import OllamaTestServer

MID_STREAM_ERROR = "an error was encountered while running the model: unexpected EOF"
_CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")
# One "token": a CJK character, a word with its trailing space, or a run of whitespace.
_TOKEN = re.compile(
    r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]|[^\s\u3000-\u303f\u3400-\u9fff\uff00-\uffef]+\s*|\s+"
)


@dataclass(frozen=True, slots=True)
class Step:
    """One scripted event: a token of thinking or content, a pause, or an error."""

    kind: str  # "think" | "say" | "pause" | "error"
    text: str = ""
    seconds: float = 0.0


@dataclass(slots=True)
class ChatCall:
    """A validated chat request, whichever endpoint it came in on."""

    model: str
    messages: list[dict[str, Any]]
    images: int
    think: bool | str | None
    num_predict: int
    stream: bool
    include_usage: bool = False


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _last_user_text(call: ChatCall) -> str:
    for message in reversed(call.messages):
        if message.get("role") == "user":
            return str(message.get("text", "")).strip()
    return ""


def _reply_text(call: ChatCall) -> str:
    """A deterministic, readable reply that shows what arrived (text and image count)."""
    said = _last_user_text(call)
    if _CJK.search(said):
        seen = f"我看到了{call.images}张图片。" if call.images else ""
        return f"你好！你刚才说：「{said}」。{seen}很高兴和你聊天。"
    seen = f"I can see {call.images} image{'s' if call.images != 1 else ''}. " if call.images else ""
    return f"Hello! You said: {said.rstrip('.!?')}. {seen}Nice to talk with you."


def _say(text: str) -> Iterator[Step]:
    for token in tokens(text):
        yield Step("say", token)


def _think(text: str) -> Iterator[Step]:
    for token in tokens(text):
        yield Step("think", token)


def _forever(steps: Callable[[], Iterator[Step]]) -> Iterator[Step]:
    while True:
        yield from steps()


@dataclass(frozen=True, slots=True)
class Model:
    """A scripted model: whether it can think, and what it streams for a request."""

    script: Callable[[OllamaTestServer, ChatCall], Iterator[Step]]
    thinks: bool = False
    family: str = "qwen3"
    vision: bool = True  # reads pictures ("vision" in /api/show's capabilities)


def _ok(server: OllamaTestServer, call: ChatCall) -> Iterator[Step]:
    yield from _say(_reply_text(call))


def _thinker(server: OllamaTestServer, call: ChatCall) -> Iterator[Step]:
    # Like a real thinking model: thinking is on unless the request says think:false.
    if call.think is None or call.think:
        yield from _think("The user greeted me. I should answer warmly and briefly.")
    yield from _say(_reply_text(call))


def _thinking_only(server: OllamaTestServer, call: ChatCall) -> Iterator[Step]:
    # A "thinking" variant that ignores think:false and never gets to the answer.
    yield from _think("Let me consider what the user wants. Maybe a greeting. Or maybe a question.")


def _think_forever(server: OllamaTestServer, call: ChatCall) -> Iterator[Step]:
    yield from _forever(lambda: _think("Hmm, let me reconsider this from another angle. "))


def _slow_thinker(server: OllamaTestServer, call: ChatCall) -> Iterator[Step]:
    while True:
        yield Step("think", "pondering ")
        yield Step("pause", seconds=0.05)


def _think_tags(server: OllamaTestServer, call: ChatCall) -> Iterator[Step]:
    # Reasoning inside the content, with both tags split across tokens, as some templates produce it.
    for piece in (
        "<th",
        "ink>",
        "The user",
        " wants a",
        " greeting",
        ".</thi",
        "nk>",
        "\n\n",
        "Hello",
        " from",
        " tags.",
    ):
        yield Step("say", piece)


def _mid_error(server: OllamaTestServer, call: ChatCall) -> Iterator[Step]:
    yield from _say("Hello there, ")
    yield Step("error", MID_STREAM_ERROR)


def _slow_first_token(server: OllamaTestServer, call: ChatCall) -> Iterator[Step]:
    yield Step("pause", seconds=server.slow_first_token_s)
    yield from _ok(server, call)


def _long(server: OllamaTestServer, call: ChatCall) -> Iterator[Step]:
    # Endless but never repeating: for throughput and budget tests.
    topics = (
        "the river",
        "a quiet morning",
        "green tea",
        "the old bridge",
        "city lights",
        "a long walk",
        "rain",
    )
    number = 0
    while True:
        number += 1
        topic, other = topics[number % len(topics)], topics[(number * 3 + 1) % len(topics)]
        yield from _say(f"Thought {number} is about {topic} and {other}. ")


def _loop(server: OllamaTestServer, call: ChatCall) -> Iterator[Step]:
    yield from _say("Sure. ")
    yield from _forever(lambda: _say("I am always here for you. "))


def _loop_zh(server: OllamaTestServer, call: ChatCall) -> Iterator[Step]:
    yield from _say("好的。")
    yield from _forever(lambda: _say("我一直在这里陪着你。"))


MODELS: dict[str, Model] = {
    "ok": Model(_ok),
    "qwen3-vl:4b-instruct": Model(_ok),  # the default model in digihuman's settings
    "llama3.2:1b": Model(_ok, family="llama"),
    "qwen2.5:0.5b": Model(_ok, family="qwen2", vision=False),  # text only
    "thinker": Model(_thinker, thinks=True),
    "thinking-only": Model(_thinking_only, thinks=True),
    "think-forever": Model(_think_forever, thinks=True),
    "slow-thinker": Model(_slow_thinker, thinks=True),
    "think-tags": Model(_think_tags),
    "mid-error": Model(_mid_error),
    "busy-then-ok": Model(_ok),  # answers 503 to its first `busy_failures` requests
    "busy": Model(_ok),  # always 503
    "slow-first-token": Model(_slow_first_token),
    "long": Model(_long),
    "loop": Model(_loop),
    "loop-zh": Model(_loop_zh),
}
