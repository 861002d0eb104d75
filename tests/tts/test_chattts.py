"""ChatTTS adapter against a stand-in `ChatTTS` package that mimics its documented API."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from digihuman.character import Character, load_character_dir, user_dir
from digihuman.errors import BackendError, CharacterError, MissingExtraError
from digihuman.tts.chattts import ChatTtsTTS, ensure_speaker, from_character

STAND_IN = Path(__file__).parent / "fake_chattts"
SENTENCE = "Hello, nice to meet you."


@pytest.fixture
def chattts(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.syspath_prepend(str(STAND_IN))
    monkeypatch.delitem(sys.modules, "ChatTTS", raising=False)
    import ChatTTS

    ChatTTS.Chat.instances = []
    monkeypatch.setattr("digihuman.tts.chattts._MODELS", {})  # each test loads its own stand-in
    yield ChatTTS
    sys.modules.pop("ChatTTS", None)


@pytest.fixture
def weights(chattts: ModuleType, tmp_path: Path) -> Path:
    return chattts.write_assets(tmp_path / "chattts-weights")


def make_character(root: Path, source: str = "user", params: dict | None = None) -> Character:
    folder = root / "mei"
    folder.mkdir(parents=True)
    lines = ['name = "Mei"', 'language = "zh"', "", "[voice]", 'backend = "chattts"', "", "[voice.params]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in (params or {}).items()]
    (folder / "character.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_character_dir(folder, source)  # type: ignore[arg-type]


async def speak(tts: ChatTtsTTS, text: str = SENTENCE, language: str = "en") -> list:
    return [chunk async for chunk in tts.synthesize(text, language)]


async def test_streams_speaker_audio_from_a_worker_thread(chattts, weights) -> None:
    tts = ChatTtsTTS("speaker-one", source="custom", custom_path=str(weights), temperature=0.2)
    chunks = await speak(tts)
    chat = chattts.Chat.instances[0]
    call = chat.infer_calls[0]
    assert call["stream"] is True and call["text"] == [SENTENCE] and call["skip_refine_text"] is True
    assert call["code"].spk_emb == "speaker-one" and call["code"].temperature == 0.2
    assert call["thread"] != threading.get_ident()
    assert len(chunks) > 1 and {c.sample_rate for c in chunks} == {24000}
    assert all(c.pcm.ndim == 1 and c.pcm.dtype == np.float32 and len(c.pcm) for c in chunks)
    np.testing.assert_array_equal(
        np.concatenate([c.pcm for c in chunks]), chattts.expected_audio(SENTENCE, "speaker-one")
    )
    assert [c.start_s for c in chunks][:2] == [0.0, chattts.Chat.batch_samples / 24000]
    await tts.aclose()


async def test_loads_once(chattts, weights) -> None:
    tts = ChatTtsTTS("s", source="custom", custom_path=str(weights))
    await speak(tts)
    await speak(tts, "Again.")
    assert len(chattts.Chat.instances) == 1 and len(chattts.Chat.instances[0].load_calls) == 1


@pytest.mark.parametrize("source", ["custom", "huggingface"])
async def test_load_failure_is_a_clear_error(chattts, tmp_path, monkeypatch, source) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    tts = ChatTtsTTS("s", source=source, custom_path=str(tmp_path / "empty"))
    with pytest.raises(BackendError, match="ChatTTS could not load its model") as info:
        await speak(tts)
    assert "custom_path" in str(info.value) and "\n" not in str(info.value)


async def test_huggingface_cache_is_used(chattts, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    chattts.write_assets(tmp_path / "hf/hub/models--2Noise--ChatTTS/snapshots/abc123")
    assert await speak(ChatTtsTTS("s"))


async def test_cancelling_interrupts_the_model(chattts, weights) -> None:
    chattts.Chat.batch_delay_s = 0.02
    tts = ChatTtsTTS("s", source="custom", custom_path=str(weights))
    long_text = SENTENCE * 10  # about 70 batches
    stream = tts.synthesize(long_text, "en")
    await anext(stream)
    await stream.aclose()
    chat = chattts.Chat.instances[0]
    for _ in range(100):  # the worker notices within one batch
        if chat.in_flight == 0:
            break
        await asyncio.sleep(0.02)
    assert chat.interrupts == 1 and chat.in_flight == 0
    assert chat.batches_made < 10
    assert await speak(tts, "Next.")  # the model is free again


async def test_sentences_run_one_at_a_time(chattts, weights) -> None:
    chattts.Chat.batch_delay_s = 0.005
    tts = ChatTtsTTS("s", source="custom", custom_path=str(weights))
    a, b = await asyncio.gather(speak(tts, "First one."), speak(tts, "Second one."))
    assert a and b and chattts.Chat.instances[0].max_in_flight == 1


async def test_speaker_is_sampled_and_stored_for_user_characters(chattts, weights) -> None:
    character = make_character(user_dir(), params={"source": "custom", "custom_path": str(weights)})
    tts = from_character(character)
    chunks = await speak(tts, "你好。", "zh")
    stored = load_character_dir(character.path, "user").spec.voice.params
    assert len(stored["speaker"]) == 600 and stored["speaker"] == tts.speaker
    assert stored["custom_path"] == str(weights)
    assert "speaker" not in character.spec.voice.params  # the loaded character (maybe shared) is untouched
    np.testing.assert_array_equal(
        np.concatenate([c.pcm for c in chunks]), chattts.expected_audio("你好。", tts.speaker)
    )
    assert from_character(load_character_dir(character.path, "user")).speaker == tts.speaker


def test_ensure_speaker(chattts, weights) -> None:
    character = make_character(user_dir(), params={"source": "custom", "custom_path": str(weights)})
    speaker = ensure_speaker(character)
    assert ensure_speaker(load_character_dir(character.path, "user")) == speaker
    assert len(chattts.Chat.instances) == 1  # the second call only read the file


def test_shipped_character_without_speaker(chattts, tmp_path) -> None:
    character = make_character(tmp_path / "shipped", "shipped")
    with pytest.raises(CharacterError, match="make your own character"):
        ensure_speaker(character)
    with pytest.raises(CharacterError, match="read-only"):
        from_character(character)
    shipped_with_speaker = make_character(tmp_path / "other", "shipped", {"speaker": "kept"})
    assert ensure_speaker(shipped_with_speaker) == "kept"


def test_bad_options(chattts) -> None:
    with pytest.raises(ValueError, match="source must be one of"):
        ChatTtsTTS(source="web")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="custom_path"):
        ChatTtsTTS(source="custom")


def test_missing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ChatTTS", None)
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    with pytest.raises(MissingExtraError, match=r"digihuman\[chattts\]"):
        ChatTtsTTS()


async def test_empty_text(chattts, weights) -> None:
    assert await speak(ChatTtsTTS("s", source="custom", custom_path=str(weights)), "") == []
    assert chattts.Chat.instances == []


def test_two_voices_of_one_character_agree_on_the_speaker(chattts, weights) -> None:
    """Two sessions of a character without a speaker: the first stored wins, the second adopts it."""
    character = make_character(user_dir(), params={"source": "custom", "custom_path": str(weights)})
    first, second = from_character(character), from_character(character)
    first.load()
    second.load()
    assert first.speaker == second.speaker
    assert load_character_dir(character.path, "user").spec.voice.params["speaker"] == first.speaker
    assert "speaker" not in character.spec.voice.params


async def test_voices_share_one_model_and_each_keeps_its_speaker(chattts, weights) -> None:
    chattts.Chat.batch_delay_s = 0.005
    one, two = (ChatTtsTTS(name, source="custom", custom_path=str(weights)) for name in ("one", "two"))
    a, b = await asyncio.gather(speak(one, "First one."), speak(two, "Second one."))
    [chat] = chattts.Chat.instances  # loaded once, for both
    assert chat.max_in_flight == 1  # queued, not interleaved
    np.testing.assert_array_equal(
        np.concatenate([c.pcm for c in a]), chattts.expected_audio("First one.", "one")
    )
    np.testing.assert_array_equal(
        np.concatenate([c.pcm for c in b]), chattts.expected_audio("Second one.", "two")
    )
    await one.aclose()  # one session leaving keeps the model for the other
    assert await speak(two, "Still here.") and chattts.Chat.instances == [chat]


async def test_cancelling_one_voice_does_not_interrupt_another(chattts, weights) -> None:
    chattts.Chat.batch_delay_s = 0.01
    one, two = (ChatTtsTTS(name, source="custom", custom_path=str(weights)) for name in ("one", "two"))
    long_text = SENTENCE * 6
    talking = two.synthesize(long_text, "en")
    await anext(talking)  # two's job is inside the model
    waiting = one.synthesize("Queued.", "en")
    pending = asyncio.ensure_future(anext(waiting))
    await asyncio.sleep(0.05)
    pending.cancel()  # one gives up while queued
    await asyncio.gather(pending, return_exceptions=True)
    await waiting.aclose()
    rest = [chunk async for chunk in talking]
    [chat] = chattts.Chat.instances
    assert chat.interrupts == 0  # two's sentence was not cut
    spoken = np.concatenate([c.pcm for c in rest])
    assert len(spoken) + chattts.Chat.batch_samples >= len(chattts.expected_audio(long_text, "two"))
