"""Every implementation of the four interfaces the contract suite runs: one `Backend` per line.

To register a new backend, append a `Backend` to its interface's list:

- `make(request)` builds a working instance (it may call `request.getfixturevalue` for servers,
  `tmp_path` or `monkeypatch`; an async `make` is awaited);
- `failures`, where the backend can be made to fail offline: named factories of instances whose backend
  fails (a refused connection, an error mid-stream, a tool that finds no face, a model that cannot
  load); the contract expects BackendError (LLMError for an LLM), never a raw exception;
- `known_gaps`: contract tests the backend is known to fail, each with why (strict xfails: a fix shows).

Real backends run against their offline stand-ins (tests/tts, tests/llm, tests/face/standins) or, for
the OpenAI-compatible adapter, the real llama.cpp server with the tiny GGUF (skipped where it is not
installed). The scripted fakes of digihuman.testing.fakes are held to the same contract, so timing tests
that use them test something real backends also do.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import pytest

from digihuman.face.base import Face
from digihuman.llm.base import LLM, LLMError
from digihuman.output.base import Sink
from digihuman.tts.base import TTS

T = TypeVar("T")
Factory = Callable[[pytest.FixtureRequest], Any]
TESTS = Path(__file__).resolve().parents[1]
SHIPPED_RIG = TESTS.parent / "src" / "digihuman" / "characters" / "ada" / "rig.npz"
FACE_SIZE = 128  # small frames keep the slow faces' stand-ins and the animator quick


@dataclass(frozen=True)
class Backend(Generic[T]):
    id: str
    make: Factory
    failures: tuple[tuple[str, Factory], ...] = ()
    marks: tuple[pytest.MarkDecorator, ...] = ()
    # Known contract violations, (test function name, why): strict xfails, so a fix is noticed.
    known_gaps: tuple[tuple[str, str], ...] = ()

    def note_gaps(self, request: pytest.FixtureRequest) -> None:
        for test, why in self.known_gaps:
            if request.node.originalname == test:
                request.applymarker(pytest.mark.xfail(strict=True, reason=why))

    def param(self) -> Any:
        return pytest.param(self, id=self.id, marks=self.marks)


def failure_params(backends: list[Backend[Any]]) -> list[Any]:
    """One pytest param per (backend, way to fail it), with ids like "gpt-sovits-refused"."""
    return [
        pytest.param(factory, id=f"{backend.id}-{name.replace(' ', '-')}", marks=backend.marks)
        for backend in backends
        for name, factory in backend.failures
    ]


async def build(factory: Factory, request: pytest.FixtureRequest) -> Any:
    made = factory(request)
    return await made if inspect.isawaitable(made) else made


def _stand_in_module(request: pytest.FixtureRequest, folder: Path, name: str) -> types.ModuleType:
    """Import the stand-in package `name` from `folder`, fresh, and forget it after the test."""
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    monkeypatch.syspath_prepend(str(folder))
    for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        monkeypatch.delitem(sys.modules, loaded)
    module = importlib.import_module(name)

    def forget() -> None:
        for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[loaded]

    request.addfinalizer(forget)
    return module


def _refused_url() -> str:
    from tests.llm.conftest import free_port

    return f"http://127.0.0.1:{free_port()}"


# -- TTS ----------------------------------------------------------------------------------------------


def _espeak(request: pytest.FixtureRequest) -> TTS:
    from digihuman.tts.espeak import EspeakTTS

    return EspeakTTS(voice="en-us", chunk_s=0.2)


def _gpt_sovits(request: pytest.FixtureRequest, *, url: str | None = None) -> TTS:
    from digihuman.tts.gpt_sovits import GptSovitsTTS
    from tests.tts.test_gpt_sovits import write_voice

    server = request.getfixturevalue("gpt_sovits_server")
    voice = write_voice(request.getfixturevalue("tmp_path") / "voice.wav", 4.0)
    return GptSovitsTTS(url or server.url, ref_audio_path=str(voice), timeout_s=10.0)


def _chattts(request: pytest.FixtureRequest, *, broken: bool = False) -> TTS:
    from digihuman.tts.chattts import ChatTtsTTS

    chattts = _stand_in_module(request, TESTS / "tts" / "fake_chattts", "ChatTTS")
    chattts.Chat.instances = []
    chattts.Chat.batch_delay_s = 0.01
    folder = request.getfixturevalue("tmp_path") / "chattts-weights"
    if not broken:
        chattts.write_assets(folder)
    return ChatTtsTTS("contract-speaker", source="custom", custom_path=str(folder))


def _edge(request: pytest.FixtureRequest, *, online: bool = True) -> TTS:
    from digihuman.tts.edge import EdgeTTS

    edge_tts = _stand_in_module(request, TESTS / "tts" / "fake_edge_tts", "edge_tts")
    edge_tts.state.message_delay_s = 0.0
    edge_tts.state.online = online
    return EdgeTTS(voice="en-US-AriaNeural")


def _piper(request: pytest.FixtureRequest) -> TTS:
    pytest.importorskip("piper", reason="piper-tts is not installed: pip install 'digihuman[piper]'")
    from digihuman.tts.piper import PiperTTS

    return PiperTTS(str(request.getfixturevalue("piper_joe")))  # skips, naming the fix, when not cached


def _scripted_tts(request: pytest.FixtureRequest, *, fail: bool = False) -> TTS:
    from digihuman.testing.fakes import ScriptedTTS

    return ScriptedTTS(first_audio_s=0.01, rtf=0.05, chunk_s=0.2, fail_on="" if fail else None)


TTS_BACKENDS: list[Backend[TTS]] = [
    Backend("espeak", _espeak),
    Backend("gpt-sovits", _gpt_sovits, (("refused", lambda r: _gpt_sovits(r, url=_refused_url())),)),
    Backend("chattts", _chattts, (("no model", lambda r: _chattts(r, broken=True)),)),
    Backend("edge", _edge, (("offline", lambda r: _edge(r, online=False)),)),
    Backend("piper", _piper),
    Backend("scripted", _scripted_tts, (("fails", lambda r: _scripted_tts(r, fail=True)),)),
]


# -- Face ---------------------------------------------------------------------------------------------


def _animator(request: pytest.FixtureRequest) -> Face:
    from digihuman.face.animator import PortraitAnimator
    from digihuman.face.rig import Rig

    return PortraitAnimator(Rig.load(SHIPPED_RIG, size=FACE_SIZE), fps=25, size=FACE_SIZE, seed=1)


def _subprocess_face(request: pytest.FixtureRequest, tool: str, *, blank: bool = False) -> Face:
    from tests.face.standins.fixtures import SADTALKER_REPO, WAV2LIP_REPO, write_portrait

    tmp_path: Path = request.getfixturevalue("tmp_path")
    portrait = write_portrait(tmp_path / "portrait.png", blank=blank)
    if tool == "sadtalker":
        from digihuman.face.sadtalker import SadTalkerFace

        checkpoints = tmp_path / "checkpoints"
        checkpoints.mkdir()
        (checkpoints / "SadTalker_V0.0.2_256.safetensors").write_bytes(b"stand-in weights")
        params = {"python": sys.executable, "repo": str(SADTALKER_REPO), "checkpoint_dir": str(checkpoints)}
        return SadTalkerFace(portrait, params, size=FACE_SIZE, fps=25)
    from digihuman.face.wav2lip import Wav2LipFace

    checkpoint = tmp_path / "wav2lip_gan.pth"
    checkpoint.write_bytes(b"stand-in weights")
    params = {"python": sys.executable, "repo": str(WAV2LIP_REPO), "checkpoint_path": str(checkpoint)}
    return Wav2LipFace(portrait, params, size=FACE_SIZE, fps=25)


def _scripted_face(request: pytest.FixtureRequest, *, realtime: bool) -> Face:
    from digihuman.testing.fakes import ScriptedFace

    return ScriptedFace(realtime=realtime, fps=25)


FACE_BACKENDS: list[Backend[Face]] = [
    Backend("animator", _animator),
    Backend(
        "sadtalker",
        lambda r: _subprocess_face(r, "sadtalker"),
        (("no face", lambda r: _subprocess_face(r, "sadtalker", blank=True)),),
    ),
    Backend(
        "wav2lip",
        lambda r: _subprocess_face(r, "wav2lip"),
        (("no face", lambda r: _subprocess_face(r, "wav2lip", blank=True)),),
    ),
    Backend("scripted-realtime", lambda r: _scripted_face(r, realtime=True)),
    Backend("scripted-slow", lambda r: _scripted_face(r, realtime=False)),
]


# -- LLM ----------------------------------------------------------------------------------------------


def _ollama(request: pytest.FixtureRequest, model: str = "ok", url: str | None = None) -> LLM:
    from digihuman.llm.ollama import OllamaLLM
    from tests.llm.conftest import settings_for

    server = request.getfixturevalue("ollama_contract_server")
    return OllamaLLM(settings_for(url or server.url, model, busy_retries=0), busy_backoff_s=0.01)


def _openai(request: pytest.FixtureRequest, *, url: str, model: str, **settings: Any) -> LLM:
    from digihuman.llm.openai_compat import OpenAICompatLLM
    from tests.llm.conftest import settings_for

    return OpenAICompatLLM(settings_for(url, model, backend="openai", busy_retries=0, **settings))


def _openai_stand_in(request: pytest.FixtureRequest, model: str = "ok") -> LLM:
    server = request.getfixturevalue("ollama_contract_server")
    return _openai(request, url=f"{server.url}/v1", model=model)


def _llamacpp(request: pytest.FixtureRequest) -> LLM:
    return _openai(request, url=request.getfixturevalue("llama_server"), model="tiny", num_predict=16)


def _llamacpp_in_process(request: pytest.FixtureRequest, *, model: Path | None = None) -> LLM:
    pytest.importorskip("llama_cpp", reason="the built-in brain needs: pip install 'digihuman[llamacpp]'")
    from digihuman.config import LLMSettings
    from digihuman.llm.llamacpp import LlamaCppLLM
    from tests.llm.test_openai_compat import _load_gguf_builder

    path = model or _load_gguf_builder().cached_test_gguf()
    return LlamaCppLLM(LLMSettings(backend="llamacpp", model=str(path), n_ctx=512, num_predict=16))


def _not_a_model(request: pytest.FixtureRequest) -> Path:
    path: Path = request.getfixturevalue("tmp_path") / "broken.gguf"
    path.write_bytes(b"GGUF but not really a model")
    return path


def _scripted_llm(request: pytest.FixtureRequest, *, fail: bool = False) -> LLM:
    from digihuman.testing.fakes import Reply, ScriptedLLM

    reply = Reply(
        first_token_s=0.01, token_interval_s=0.005, error=LLMError("model crashed") if fail else None
    )
    return ScriptedLLM([reply])


LLM_BACKENDS: list[Backend[LLM]] = [
    Backend(
        "ollama",
        _ollama,
        (
            ("error mid-stream", lambda r: _ollama(r, "mid-error")),
            ("unknown model", lambda r: _ollama(r, "no-such-model")),
            ("refused", lambda r: _ollama(r, url=_refused_url())),
        ),
    ),
    Backend(
        "openai-standin",
        _openai_stand_in,
        (
            ("error mid-stream", lambda r: _openai_stand_in(r, "mid-error")),
            ("unknown model", lambda r: _openai_stand_in(r, "no-such-model")),
        ),
    ),
    Backend(
        "openai-llamacpp",
        _llamacpp,
        (("refused", lambda r: _openai(r, url=_refused_url() + "/v1", model="tiny")),),
        marks=(pytest.mark.llamacpp,),
    ),
    Backend(
        "llamacpp",
        _llamacpp_in_process,
        (("not a model", lambda r: _llamacpp_in_process(r, model=_not_a_model(r))),),
        marks=(pytest.mark.llamacpp,),
    ),
    Backend("scripted", _scripted_llm, (("fails", lambda r: _scripted_llm(r, fail=True)),)),
]


# -- Sink ---------------------------------------------------------------------------------------------

SINK_FPS = 25
SINK_SIZE = 64


def _mp4(request: pytest.FixtureRequest) -> Sink:
    from digihuman.output.recorder import Mp4Recorder

    return Mp4Recorder(request.getfixturevalue("tmp_path") / "turn.mp4", fps=SINK_FPS, size=SINK_SIZE)


def _turns(request: pytest.FixtureRequest) -> Sink:
    from digihuman.output.recorder import TurnRecorder

    return TurnRecorder(request.getfixturevalue("tmp_path") / "record", fps=SINK_FPS, size=SINK_SIZE)


async def _window(request: pytest.FixtureRequest) -> Sink:
    pytest.importorskip("pygame")
    from digihuman.audio.player import AudioOutput, VirtualOutput
    from digihuman.output.window import WindowPlayer
    from tests.output.fake_face import FakeFace

    request.getfixturevalue("monkeypatch").setenv("SDL_VIDEODRIVER", "dummy")
    audio = AudioOutput(VirtualOutput())
    request.addfinalizer(audio.close)
    window = WindowPlayer(
        FakeFace(fps=SINK_FPS, size=48), "contract", fps=SINK_FPS, size=SINK_SIZE, audio=audio
    )
    await window.start()
    return window


async def _speaker(request: pytest.FixtureRequest) -> Sink:
    from digihuman.audio.player import AudioOutput, VirtualOutput
    from digihuman.output.speaker import SpeakerSink

    sink = SpeakerSink(AudioOutput(VirtualOutput()))
    await sink.start()
    return sink


def _web(request: pytest.FixtureRequest, *, attached: bool) -> Sink:
    from digihuman.server.media import Outbox, WebSink

    sink = WebSink()
    if attached:  # queued for a connection that never drains: packing and dropping are exercised

        async def send(data: str | bytes) -> None:
            return None

        sink.attach(Outbox(send, clock=sink.clock))
    return sink


def _fake_sink(request: pytest.FixtureRequest, *, realtime: bool) -> Sink:
    from digihuman.testing.fakes import FakeSink

    return FakeSink(realtime=realtime)


SINK_BACKENDS: list[Backend[Sink]] = [
    Backend("mp4", _mp4),
    Backend("turn-recorder", _turns),
    Backend("window", _window),
    Backend("speaker", _speaker),
    Backend("web", lambda r: _web(r, attached=False)),
    Backend("web-attached", lambda r: _web(r, attached=True)),
    Backend("fake-player", lambda r: _fake_sink(r, realtime=True)),
    Backend("fake-recorder", lambda r: _fake_sink(r, realtime=False)),
]
