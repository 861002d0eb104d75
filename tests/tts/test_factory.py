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
from digihuman.errors import CharacterError, UserError
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
        CharacterError,
        match=r"unknown voice backend 'festival' \(valid: espeak, piper, gpt-sovits, chattts, edge\)",
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


# --- Piper, and shipped characters upgraded to a cached Piper voice ---------------------------------------


def place_piper_voice(name: str) -> Path:
    """Put a (stand-in) Piper voice where `digihuman models pull piper:NAME` would: it counts as cached."""
    from digihuman.models import lookup

    ref = lookup(f"piper:{name}")
    for file in ref.files:
        (ref.folder / file).parent.mkdir(parents=True, exist_ok=True)
        (ref.folder / file).write_bytes(b"{}")
    return ref.path


def test_piper_builder_reads_the_params() -> None:
    pytest.importorskip("piper", reason="piper-tts is not installed (extra: piper)")
    from digihuman.tts.piper import PiperTTS

    tts = make_tts(make_character("piper", {"voice": "en_US-amy-medium", "speed": 2.0}), settings=Settings())
    assert isinstance(tts, PiperTTS) and tts.voice == "en_US-amy-medium" and tts.length_scale == 0.5
    chinese = make_tts(make_character("piper", language="zh", root=tts_root()), settings=Settings())
    assert chinese.voice == "zh_CN-huayan-medium"  # type: ignore[attr-defined]


def test_piper_voice_file_in_the_character_folder() -> None:
    pytest.importorskip("piper", reason="piper-tts is not installed (extra: piper)")
    character = make_character("piper", {"voice": "my-voice.onnx"})
    (character.path / "my-voice.onnx").write_bytes(b"")
    tts = make_tts(character, settings=Settings())
    assert tts.voice == str((character.path / "my-voice.onnx").resolve())  # type: ignore[attr-defined]


def test_piper_bad_voice_name_is_one_line() -> None:
    pytest.importorskip("piper", reason="piper-tts is not installed (extra: piper)")
    with pytest.raises(UserError, match="not a Piper voice name"):
        make_tts(make_character("piper", {"voice": "amy"}), settings=Settings())


def test_shipped_character_uses_a_cached_piper_voice_for_its_language(tmp_path) -> None:
    pytest.importorskip("piper", reason="piper-tts is not installed (extra: piper)")
    from digihuman.tts.espeak import EspeakTTS
    from digihuman.tts.piper import PiperTTS

    shipped = make_character("espeak", {"voice": "en-us"}, source="shipped", root=tmp_path)
    assert isinstance(make_tts(shipped, settings=Settings()), EspeakTTS)  # nothing cached: espeak
    place_piper_voice("zh_CN-huayan-medium")
    assert isinstance(make_tts(shipped, settings=Settings()), EspeakTTS)  # a voice for another language
    place_piper_voice("en_GB-alba-medium")
    place_piper_voice("en_US-joe-medium")
    tts = make_tts(shipped, settings=Settings())
    assert isinstance(tts, PiperTTS) and tts.voice == "en_US-joe-medium"  # the default voice first
    off = Settings()
    off.tts.shipped_piper = False
    assert isinstance(make_tts(shipped, settings=off), EspeakTTS)
    user = make_character("espeak", language="en", root=tts_root())
    assert isinstance(make_tts(user, settings=Settings()), EspeakTTS)  # user characters keep their voice
