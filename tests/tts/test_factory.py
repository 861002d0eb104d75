"""Choosing and building a character's voice from its [voice] section."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from digihuman.character import Character, load_character_dir, user_dir
from digihuman.config import Settings
from digihuman.errors import CharacterError
from digihuman.tts.chattts import ChatTtsTTS
from digihuman.tts.edge import EdgeTTS
from digihuman.tts.factory import make_tts
from digihuman.tts.gpt_sovits import GptSovitsTTS
from tests.tts.gpt_sovits_server import Running, StandIn

HERE = Path(__file__).parent


def make_character(
    backend: str,
    params: dict | None = None,
    *,
    language: str = "en",
    voice_sample: str | None = None,
    source: str = "user",
    root: Path | None = None,
) -> Character:
    folder = (root or user_dir()) / "kai"
    folder.mkdir(parents=True)
    lines = ['name = "Kai"', f'language = "{language}"']
    if voice_sample:
        lines.append(f'voice_sample = "{voice_sample}"')
    lines += ["", "[voice]", f'backend = "{backend}"', "", "[voice.params]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in (params or {}).items()]
    (folder / "character.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_character_dir(folder, source)  # type: ignore[arg-type]


def voice_sample(character: Character) -> Path:
    rate = 16000
    path = character.path / "voice.wav"
    sf.write(path, (0.2 * np.sin(np.arange(4 * rate) / 9)).astype(np.float32), rate)
    return path


def test_unknown_backend_names_the_valid_ones() -> None:
    character = make_character("festival")
    with pytest.raises(
        CharacterError, match=r"unknown voice backend 'festival' \(valid: espeak, gpt-sovits, chattts, edge\)"
    ):
        make_tts(character, settings=Settings())


def test_espeak() -> None:
    espeak = pytest.importorskip("digihuman.tts.espeak", reason="written by another helper")
    tts = make_tts(make_character("espeak", {"rate_wpm": 150}, language="zh"), settings=Settings())
    assert isinstance(tts, espeak.EspeakTTS)


async def test_gpt_sovits_uses_the_character_voice_sample() -> None:
    character = make_character(
        "gpt-sovits", {"prompt_text": "你好。", "top_k": 5}, language="zh", voice_sample="voice.wav"
    )
    sample = voice_sample(character)
    with Running(StandIn()) as server:
        character.spec.voice.params["url"] = server.url
        tts = make_tts(character, settings=Settings())
        assert isinstance(tts, GptSovitsTTS)
        chunks = [c async for c in tts.synthesize("你好，世界。", "zh")]
        await tts.aclose()
    request = server.standin.requests[0]
    assert (
        request["ref_audio_path"] == str(sample.resolve()) and Path(request["ref_audio_path"]).is_absolute()
    )
    assert (request["prompt_lang"], request["text_lang"], request["top_k"]) == ("zh", "zh", 5)
    assert chunks and chunks[0].sample_rate == 32000


def test_gpt_sovits_ref_audio_param() -> None:
    character = make_character("gpt-sovits", {"ref_audio": "clips/hello.wav"})
    (character.path / "clips").mkdir()
    (character.path / "clips/hello.wav").write_bytes(b"")
    tts = make_tts(character, settings=Settings())
    assert tts.ref_audio_path == str((character.path / "clips/hello.wav").resolve())  # type: ignore[attr-defined]
    remote = make_tts(
        make_character("gpt-sovits", {"ref_audio": "/srv/voices/a.wav"}, root=character.path),
        settings=Settings(),
    )
    assert remote.ref_audio_path == "/srv/voices/a.wav"  # type: ignore[attr-defined]


def test_gpt_sovits_without_any_reference() -> None:
    with pytest.raises(CharacterError, match=r"no voice sample for GPT-SoVITS.*ref_audio"):
        make_tts(make_character("gpt-sovits"), settings=Settings())


def test_bad_params_name_the_character_file() -> None:
    character = make_character("gpt-sovits", {"ref_audio": "/x.wav", "streaming": 9})
    with pytest.raises(
        CharacterError, match=r"kai/character.toml: \[voice.params\] for gpt-sovits: streaming"
    ):
        make_tts(character, settings=Settings())


@pytest.fixture
def stand_ins(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(HERE / "fake_edge_tts"))
    monkeypatch.syspath_prepend(str(HERE / "fake_chattts"))
    names = ("edge_tts", "edge_tts.exceptions", "ChatTTS")
    for name in names:
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield
    for name in names:
        sys.modules.pop(name, None)


def test_edge_default_voice_follows_the_character_language(stand_ins) -> None:
    tts = make_tts(make_character("edge", language="zh"), settings=Settings())
    assert isinstance(tts, EdgeTTS) and tts.voice == "zh-CN-XiaoxiaoNeural"
    with pytest.raises(CharacterError, match="Invalid rate 'quick'"):
        make_tts(make_character("edge", {"rate": "quick"}, root=tts_root()), settings=Settings())


def tts_root() -> Path:
    root = user_dir() / "more"
    root.mkdir(parents=True, exist_ok=True)
    return root


async def test_chattts_stores_the_sampled_speaker(stand_ins, tmp_path) -> None:
    import ChatTTS

    weights = ChatTTS.write_assets(tmp_path / "weights")
    character = make_character("chattts", {"source": "custom", "custom_path": str(weights)}, language="zh")
    tts = make_tts(character, settings=Settings())
    assert isinstance(tts, ChatTtsTTS)
    assert [c async for c in tts.synthesize("你好。", "zh")]
    assert load_character_dir(character.path, "user").spec.voice.params["speaker"] == tts.speaker


def test_chattts_on_a_shipped_character_without_speaker(stand_ins, tmp_path) -> None:
    character = make_character("chattts", source="shipped", root=tmp_path)
    with pytest.raises(CharacterError, match="make your own character"):
        make_tts(character, settings=Settings())
