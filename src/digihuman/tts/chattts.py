"""ChatTTS in-process (optional extra "chattts"): a conversational Chinese/English voice.

ChatTTS (2noise/ChatTTS) has no fixed voices: a speaker is a random embedding string from
`chat.sample_random_speaker()`. To keep a character's voice the same across runs, the string is stored
in its character.toml under [voice.params] `speaker`. Output is float32 at 24000 Hz; with
stream=True `infer` yields 2-D (batch, samples) arrays as the model goes.

The model runs in a worker thread, one sentence at a time (the Chat object is not reentrant). It is loaded
once per process for each set of weights and shared by every voice (each with its own speaker): web
sessions of ChatTTS characters queue for one model instead of loading one each.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from digihuman.character import CHARACTER_FILE, BackendSpec, Character, load_character_dir, spec_to_toml
from digihuman.errors import BackendError, CharacterError, MissingExtraError
from digihuman.media import AudioChunk

logger = logging.getLogger(__name__)

SAMPLE_RATE = 24000
SOURCES = ("huggingface", "local", "custom")
LANGUAGES = ("en", "zh")

Source = Literal["huggingface", "local", "custom"]


@dataclass
class _Model:
    """One loaded ChatTTS, shared by the voices that use its weights: one inference at a time."""

    chat: Any
    infer_lock: threading.Lock = field(default_factory=threading.Lock)
    state_lock: threading.Lock = field(default_factory=threading.Lock)  # guards `running`
    running: threading.Event | None = None  # the stop flag of the job inside chat.infer


_MODELS: dict[tuple[str, str | None, bool], _Model] = {}
_MODELS_LOCK = threading.Lock()  # held while loading: a second voice waits for the first load


class ChatTtsTTS:
    """A ChatTTS voice. Loading takes seconds and happens once, on first use or `load()`."""

    name = "chattts"

    def __init__(
        self,
        speaker: str | None = None,
        *,
        source: Source = "huggingface",
        custom_path: str | None = None,
        temperature: float = 0.3,
        top_p: float = 0.7,
        top_k: int = 20,
        prompt: str = "[speed_5]",
        refine_text: bool = False,
        refine_prompt: str = "",
        compile: bool = False,
        on_new_speaker: Callable[[str], str | None] | None = None,
    ) -> None:
        """`refine_text` lets ChatTTS rewrite the sentence with pauses and fillers first: livelier, but
        slower, and what is said then differs from the text. `on_new_speaker` receives the speaker
        sampled when none was given (to store it); when it returns one (stored meanwhile by another
        session of the same character), this voice uses that instead."""
        if source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, not {source!r}")
        if source == "custom" and not custom_path:
            raise ValueError("source 'custom' needs custom_path: the folder holding ChatTTS's asset/ files")
        if importlib.util.find_spec("ChatTTS") is None:  # fail at startup, not at the first sentence
            raise MissingExtraError("ChatTTS", "chattts")
        self.speaker = speaker
        self.source = source
        self.custom_path = os.path.expanduser(custom_path) if custom_path else None
        self.temperature, self.top_p, self.top_k = float(temperature), float(top_p), int(top_k)
        self.prompt = prompt
        self.refine_text = bool(refine_text)
        self.refine_prompt = refine_prompt
        self.compile = bool(compile)
        self._on_new_speaker = on_new_speaker
        self._model: _Model | None = None
        self._speaker_lock = threading.Lock()
        self._warned_languages: set[str] = set()

    def load(self) -> Any:
        """Load the model once per process (blocking); also sample a speaker when none is set."""
        model = self._shared_model()
        with self._speaker_lock:
            if self.speaker is None:
                with model.infer_lock:
                    sampled = model.chat.sample_random_speaker()
                logger.info("ChatTTS: sampled a new speaker")
                stored = self._on_new_speaker(sampled) if self._on_new_speaker is not None else None
                self.speaker = stored or sampled
        return model.chat

    def _shared_model(self) -> _Model:
        if self._model is None:
            key = (self.source, self.custom_path, self.compile)
            with _MODELS_LOCK:
                if key not in _MODELS:
                    _MODELS[key] = _Model(self._load_chat())
                self._model = _MODELS[key]
        return self._model

    async def synthesize(self, text: str, language: str) -> AsyncIterator[AudioChunk]:
        if not text.strip():
            return
        self._check_language(language)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()

        def emit(kind: str, value: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
            except RuntimeError:
                stop.set()  # the loop is gone: nobody is listening any more

        worker = threading.Thread(target=self._produce, args=(text, stop, emit), name="chattts", daemon=True)
        worker.start()
        samples_sent = 0
        try:
            while True:
                kind, value = await queue.get()
                if kind == "end":
                    return
                if kind == "error":
                    raise value
                yield AudioChunk(
                    pcm=value, sample_rate=SAMPLE_RATE, start_s=samples_sent / SAMPLE_RATE, text=text
                )
                samples_sent += len(value)
        finally:
            self._stop(stop)

    async def aclose(self) -> None:
        """Stop this voice's sentence in progress; the shared model stays loaded for the other voices."""
        model, self._model = self._model, None
        if model is not None:
            with model.state_lock:
                running = model.running
            if running is not None:
                _stop(model, running)

    def _load_chat(self) -> Any:
        try:
            import ChatTTS
        except ImportError as exc:  # present but broken, e.g. torch missing
            raise BackendError(
                f"ChatTTS cannot be imported ({exc}): run `.venv/bin/pip install 'digihuman[chattts]'`"
            ) from None

        chat = ChatTTS.Chat(logging.getLogger("ChatTTS"))
        try:
            loaded = chat.load(source=self.source, custom_path=self.custom_path, compile=self.compile)
        except Exception as exc:  # broken weights or torch trouble: one line, not a traceback
            raise BackendError(f"ChatTTS failed to load its model from {self._where()}: {exc}") from None
        if not loaded:  # load() logs and returns False rather than raising
            raise BackendError(
                f"ChatTTS could not load its model from {self._where()}: download the weights once "
                'with network access, or set voice params source = "custom" and custom_path to a '
                "folder with ChatTTS's asset/ files"
            )
        return chat

    def _where(self) -> str:
        return {"huggingface": "the Hugging Face cache", "local": f"{os.getcwd()}/asset"}.get(
            self.source, str(self.custom_path)
        )

    def _produce(self, text: str, stop: threading.Event, emit: Callable[[str, Any], None]) -> None:
        """Worker thread: run the model and hand each piece of audio to the event loop."""
        try:
            chat = self.load()
            model = self._shared_model()
            with model.infer_lock:
                if stop.is_set():
                    return
                with model.state_lock:
                    model.running = stop
                try:
                    self._run(chat, text, stop, emit)
                finally:
                    with model.state_lock:
                        model.running = None
            emit("end", None)
        except Exception as exc:
            emit("error", exc)

    def _run(self, chat: Any, text: str, stop: threading.Event, emit: Callable[[str, Any], None]) -> None:
        stream = chat.infer(
            [text],
            stream=True,
            skip_refine_text=not self.refine_text,
            params_refine_text=chat.RefineTextParams(prompt=self.refine_prompt),
            params_infer_code=chat.InferCodeParams(
                spk_emb=self.speaker,
                prompt=self.prompt,
                temperature=self.temperature,
                top_P=self.top_p,
                top_K=self.top_k,
            ),
        )
        try:
            for batch in stream:
                if stop.is_set():
                    return
                pcm = _first_row(batch)
                if len(pcm):
                    emit("audio", pcm)
        finally:
            stream.close()

    def _stop(self, stop: threading.Event) -> None:
        stop.set()
        if self._model is not None:
            _stop(self._model, stop)

    def _check_language(self, language: str) -> None:
        base = language.lower().split("-")[0]
        if base not in LANGUAGES and base not in self._warned_languages:
            self._warned_languages.add(base)
            logger.warning("ChatTTS speaks English and Chinese only; '%s' text will sound wrong", language)


def _stop(model: _Model, stop: threading.Event) -> None:
    stop.set()
    with model.state_lock:
        if model.running is stop:  # this job, not another voice's, is inside the model
            model.chat.interrupt()  # makes ChatTTS's generation loop end early


def _first_row(batch: Any) -> np.ndarray:
    array = np.asarray(batch, dtype=np.float32)
    if array.ndim == 2:
        array = array[0]
    return np.clip(array.reshape(-1), -1.0, 1.0)


def from_character(character: Character) -> ChatTtsTTS:
    """The character's ChatTTS voice. Without a stored speaker, the one sampled at load is saved to it;
    a shipped (read-only) character must carry one already."""
    params = dict(character.spec.voice.params)
    speaker = params.pop("speaker", None) or None
    on_new_speaker = None
    if speaker is None:
        require_writable(character)
        on_new_speaker = functools.partial(save_speaker, character)
    return ChatTtsTTS(speaker, on_new_speaker=on_new_speaker, **params)


def ensure_speaker(character: Character, tts: ChatTtsTTS | None = None) -> str:
    """The character's ChatTTS speaker; when it has none, sample and store one (blocking: loads ChatTTS)."""
    stored = character.spec.voice.params.get("speaker")
    if stored:
        return str(stored)
    tts = tts or from_character(character)
    tts.load()
    assert tts.speaker is not None
    # A tts made elsewhere did not save it; one that did finds it stored and keeps it.
    return save_speaker(character, tts.speaker)


def require_writable(character: Character) -> None:
    if character.source == "shipped":
        raise CharacterError(
            f"character '{character.id}' is shipped with digihuman and has no ChatTTS speaker; its files are "
            "read-only: make your own character (`digihuman characters new`) to keep a ChatTTS voice"
        )


def save_speaker(character: Character, speaker: str) -> str:
    """Store `speaker` in the character's file under [voice.params]; return the speaker the file holds.

    The loaded `character` is never changed: it may be shared by several sessions, and the voice keeps
    its speaker itself. The first speaker stored wins, so sessions of one character that sample at the
    same time end up with one voice (the lock covers this process; the file is replaced atomically).
    """
    require_writable(character)
    with _SAVE_LOCK:
        return _save_speaker(character, speaker)


_SAVE_LOCK = threading.Lock()  # process-wide on purpose: it guards the character files on disk


def _save_speaker(character: Character, speaker: str) -> str:
    on_disk = load_character_dir(character.path, character.source).spec
    if stored := on_disk.voice.params.get("speaker"):
        return str(stored)
    voice = on_disk.voice
    spec = on_disk.model_copy(
        update={"voice": BackendSpec(backend=voice.backend, params={**voice.params, "speaker": speaker})}
    )
    file = character.path / CHARACTER_FILE
    original = file.read_text(encoding="utf-8")
    staging = file.with_name(f".{file.name}.tmp")
    staging.write_text(spec_to_toml(spec), encoding="utf-8")
    os.replace(staging, file)  # atomic: a crash leaves the old file or the new one
    if load_character_dir(character.path, character.source).spec != spec:
        file.write_text(original, encoding="utf-8")
        raise CharacterError(
            f"could not store the ChatTTS speaker in {file}: add it under [voice.params] as speaker"
        )
    logger.info("stored the ChatTTS speaker in %s", file)
    return speaker
