"""Brains that read no pictures get the camera in words (llm/scene_words.py).

Known up front (the built-in brain; Ollama's /api/show capabilities) or learned from the first refusal (a
text-only OpenAI-compatible server): checked against the stand-in Ollama server and against a real
llama.cpp server on the real 0.5B fixture model, whose own error must be what the user sees.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from digihuman.llm import make_llm
from digihuman.llm.base import LLMError, Message, Usage
from digihuman.llm.memory import CAMERA_TAG, ConversationMemory, proactive_prompt
from digihuman.llm.scene_words import SceneNotes, ask, in_words
from digihuman.vision.camera import CameraFrame
from digihuman.vision.scene import SceneEvent
from tests.llm.conftest import settings_for
from tests.llm.ollama_server import OllamaTestServer
from tests.real_models import real_model_path, serve_gguf

JPEG = b"\xff\xd8\xff\xe0 a tiny stand-in for a camera frame \xff\xd9"
LOOK = [Message("system", "You are Ada."), Message("user", "What do you see?", images=(JPEG, JPEG))]


def frame(rgb: tuple[int, int, int] = (40, 60, 200), t_s: float = 0.0) -> CameraFrame:
    return CameraFrame(t_s, np.full((12, 16, 3), rgb, dtype=np.uint8), JPEG)


def describe() -> str:
    return f"{CAMERA_TAG} someone is here"


async def collect(stream: AsyncIterator[str]) -> str:
    return "".join([delta async for delta in stream])


class TextOnly:
    """A brain that says up front that it reads no pictures, and records what it was sent."""

    name = "fake"
    model = "text-only"
    accepts_images: bool | None = False

    def __init__(self) -> None:
        self.sent: list[list[Message]] = []

    async def stream(self, messages: Sequence[Message], usage: Usage | None = None) -> AsyncIterator[str]:
        self.sent.append(list(messages))
        yield "Hello there."


def test_the_description_tells_events_people_stillness_and_looks() -> None:
    notes = SceneNotes(started_at=100.0)
    assert "The camera has just started." in notes.describe(101.0)
    assert "still for" not in notes.describe(101.0)
    assert "Nothing has changed since the camera started 20 s ago" in notes.describe(120.0)
    notes.note(SceneEvent("scene_changed", 0.0, 0.42, frame()), now=130.0)
    notes.note(SceneEvent("someone_arrived", 0.0, 1.0, frame()), now=150.0)
    text = notes.describe(162.0, frame().rgb_small)
    assert text.startswith("Camera report:")
    assert "32 s ago the scene changed (about 42% of the view); 12 s ago someone came into view" in text
    assert "1 person is in view now." in text
    assert "The scene has been still for 12 s." in text
    assert "mostly blue" in text
    notes.note(SceneEvent("someone_left", 0.0, 0.0, frame()), now=170.0)
    text = notes.describe(300.0, frame((5, 5, 5)).rgb_small)
    assert "Nobody is in view now." in text and "still for 2 min" in text and "dark and mostly grey" in text


def test_in_words_replaces_the_pictures_with_the_description() -> None:
    worded = in_words(LOOK, describe())
    assert [m.images for m in worded] == [(), ()]
    assert worded[0] is LOOK[0]
    assert worded[1].content == f"What do you see?\n{describe()}"


def test_in_words_puts_the_report_before_the_instruction_and_drops_talk_of_pictures() -> None:
    memory = ConversationMemory("You are Ada.")
    messages = memory.messages(prompt=proactive_prompt("someone_arrived", "<silent>"), images=[JPEG])
    system, prompt = in_words(messages, "Camera report: 1 person is in view now.")
    assert "attached pictures" not in system.content + prompt.content
    assert "You cannot see pictures" in system.content
    assert prompt.content.startswith(f"{CAMERA_TAG} Someone just came into view. Camera report: 1 person")
    assert prompt.content.endswith("reply with exactly <silent> and nothing else.")


async def test_a_brain_known_to_be_text_only_gets_words_and_a_single_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    brain = TextOnly()
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            assert await collect(ask(brain, LOOK, Usage(), describe)) == "Hello there."
    assert all(not m.images for sent in brain.sent for m in sent)
    assert describe() in brain.sent[0][-1].content
    warnings = [r for r in caplog.records if "in words" in r.getMessage()]
    assert len(warnings) == 1, caplog.text


async def test_text_without_pictures_goes_through_untouched() -> None:
    brain = TextOnly()
    await collect(ask(brain, [Message("user", "hi")], Usage(), describe))
    assert brain.sent == [[Message("user", "hi")]]


@pytest.mark.parametrize(("model", "vision"), [("ok", True), ("qwen2.5:0.5b", False)])
async def test_ollama_learns_from_api_show_whether_the_model_reads_pictures(
    ollama_server: OllamaTestServer, model: str, vision: bool
) -> None:
    llm = make_llm(settings_for(ollama_server.url, model))
    await llm.preload()
    assert llm.accepts_images is vision  # type: ignore[attr-defined]
    usage = Usage()
    text = await collect(ask(llm, LOOK, usage, describe))
    (body,) = [b for b in ollama_server.bodies() if b.get("messages")]
    sent_images = sum(len(m.get("images") or []) for m in body["messages"])
    assert sent_images == (2 if vision else 0)
    assert ("I can see 2 images" in text) is vision
    assert (describe() in body["messages"][-1]["content"]) is not vision
    assert usage.images == sent_images
    await llm.aclose()


async def test_a_refused_picture_request_is_asked_again_in_words_and_remembered(
    ollama_server: OllamaTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    llm = make_llm(settings_for(ollama_server.url, "qwen2.5:0.5b"))  # no preload: nothing known yet
    usage = Usage()
    with caplog.at_level(logging.WARNING):
        text = await collect(ask(llm, LOOK, usage, describe))
    assert text.startswith("Hello!")
    assert llm.accepts_images is False  # type: ignore[attr-defined]
    assert '"qwen2.5:0.5b" does not support vision' in caplog.text  # the server's own words
    assert any("described in words" in note for note in usage.notes)
    await collect(ask(llm, LOOK, Usage(), describe))
    chats = [b for b in ollama_server.bodies() if b.get("messages")]
    assert [sum(len(m.get("images") or []) for m in b["messages"]) for b in chats] == [2, 0, 0]
    await llm.aclose()


async def test_a_failure_that_is_not_about_pictures_keeps_its_own_error(
    ollama_server: OllamaTestServer,
) -> None:
    llm = make_llm(settings_for(ollama_server.url, "mid-error"))
    with pytest.raises(LLMError, match="unexpected EOF"):
        await collect(ask(llm, LOOK, Usage(), describe))
    assert llm.accepts_images is None  # type: ignore[attr-defined]
    await llm.aclose()


# --- a real llama.cpp server on the real text-only 0.5B model ---


@pytest.fixture(scope="module")
def text_only_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    model = real_model_path("qwen-gguf")
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with serve_gguf(model, log, n_ctx=1024) as url:
        yield url


def real_server_llm(url: str):  # -> OpenAICompatLLM
    return make_llm(settings_for(url, "fixture", backend="openai", num_predict=24, first_token_timeout_s=60))


async def test_a_text_only_llama_server_shows_its_own_error_for_pictures(text_only_server: str) -> None:
    llm = real_server_llm(text_only_server)
    with pytest.raises(LLMError) as error:
        await collect(llm.stream(LOOK))
    message = str(error.value)
    assert "can only concatenate str" in message, message  # the chat template's own failure
    assert "empty reply" not in message
    await llm.aclose()


async def test_a_text_only_llama_server_hears_about_the_scene_in_words(text_only_server: str) -> None:
    llm = real_server_llm(text_only_server)
    usage = Usage()
    text = await collect(ask(llm, LOOK, usage, describe))
    assert text.strip()
    assert llm.accepts_images is False
    assert usage.completion_tokens > 0 and usage.images == 0
    await llm.aclose()


def test_the_fixture_model_path_is_a_gguf() -> None:
    path: Path = real_model_path("qwen-gguf")
    with path.open("rb") as model:
        assert model.read(4) == b"GGUF"
