"""A stand-in for the `ChatTTS` package (2noise/ChatTTS, ChatTTS/core.py) without torch or weights.

It keeps the documented surface: `Chat()`, `load(source=..., custom_path=...)` that returns False (and
logs) when the weights are missing instead of raising, `sample_random_speaker()` (needs a loaded
model), `infer(texts, stream=..., params_infer_code=Chat.InferCodeParams(spk_emb=...))` giving float32
at 24000 Hz, as 2-D (batch, samples) arrays when streaming, and `interrupt()`.

Weights are "present" when the files ChatTTS checks exist: under `custom_path` for source="custom",
the working directory for "local", `$HF_HOME/hub/models--2Noise--ChatTTS/snapshots/*` for
"huggingface" (there is no network here, so the download it would try fails).
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

ASSET_FILES = (
    "asset/Decoder.safetensors",
    "asset/DVAE.safetensors",
    "asset/Embed.safetensors",
    "asset/Vocos.safetensors",
    "asset/gpt/config.json",
    "asset/gpt/model.safetensors",
    "asset/tokenizer/special_tokens_map.json",
    "asset/tokenizer/tokenizer.json",
    "asset/tokenizer/tokenizer_config.json",
)
SAMPLE_RATE = 24000
SECONDS_PER_CHAR = 0.03


def write_assets(folder: Path) -> Path:
    """Make `folder` look like a downloaded model (for tests)."""
    for name in ASSET_FILES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"stand-in")
    return folder


def expected_audio(text: str, spk_emb: str | None) -> np.ndarray:
    """The audio this stand-in makes for one text: a tone whose pitch comes from the speaker."""
    digest = hashlib.sha256((spk_emb or "").encode()).digest()
    hz = 120 + digest[0]
    n = int(SAMPLE_RATE * SECONDS_PER_CHAR * max(1, len(text)))
    return (0.4 * np.sin(2 * np.pi * hz * np.arange(n) / SAMPLE_RATE)).astype(np.float32)


class _Context:
    def __init__(self) -> None:
        self._flag = False

    def set(self, flag: bool) -> None:
        self._flag = flag

    def get(self) -> bool:
        return self._flag


class _Speaker:
    def sample_random(self) -> str:
        # The real one is a compressed embedding in base16384: a long run of CJK-range characters.
        return "".join(chr(random.randint(0x4E00, 0x8DFF)) for _ in range(600))


class Chat:
    # Knobs and observations for tests.
    instances: ClassVar[list[Chat]] = []
    batch_samples = 2400
    batch_delay_s = 0.0

    def __init__(self, logger: logging.Logger = logging.getLogger(__name__)) -> None:  # noqa: B008 - the real signature
        self.logger = logger
        self.context = _Context()
        self.load_calls: list[dict] = []
        self.infer_calls: list[dict] = []
        self.interrupts = 0
        self.batches_made = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        Chat.instances.append(self)

    def has_loaded(self, use_decoder: bool = False) -> bool:
        return hasattr(self, "gpt")

    def load(
        self,
        source: str = "local",
        force_redownload: bool = False,
        compile: bool = False,
        custom_path: str | None = None,
        device: object = None,
        coef: object = None,
        use_flash_attn: bool = False,
        use_vllm: bool = False,
        experimental: bool = False,
    ) -> bool:
        self.load_calls.append({"source": source, "custom_path": custom_path, "compile": compile})
        if source == "local":
            folder: Path | None = Path(os.getcwd())
        elif source == "huggingface":
            hf_home = Path(os.getenv("HF_HOME", os.path.expanduser("~/.cache/huggingface")))
            snapshots = sorted((hf_home / "hub/models--2Noise--ChatTTS/snapshots").glob("*"))
            folder = snapshots[-1] if snapshots else None
            if folder is None:
                self.logger.error("download from huggingface failed.")
                return False
        else:
            folder = Path(custom_path) if custom_path else None
        if folder is None or not all((folder / name).is_file() for name in ASSET_FILES):
            self.logger.error("check models in custom path %s failed.", folder)
            return False
        self.gpt = object()
        self.speaker = _Speaker()
        return True

    def sample_random_speaker(self) -> str:
        return self.speaker.sample_random()  # AttributeError before load, as in the real one

    @dataclass(repr=False, eq=False)
    class RefineTextParams:
        prompt: str = ""
        top_P: float = 0.7
        top_K: int = 20
        temperature: float = 0.7
        repetition_penalty: float = 1.0
        max_new_token: int = 384
        min_new_token: int = 0
        show_tqdm: bool = True
        ensure_non_empty: bool = True
        manual_seed: int | None = None

    @dataclass(repr=False, eq=False)
    class InferCodeParams(RefineTextParams):
        prompt: str = "[speed_5]"
        spk_emb: str | None = None
        spk_smp: str | None = None
        txt_smp: str | None = None
        temperature: float = 0.3
        repetition_penalty: float = 1.05
        max_new_token: int = 2048
        stream_batch: int = 24
        stream_speed: int = 12000
        pass_first_n_batches: int = 2

    def infer(
        self,
        text,
        stream=False,
        lang=None,
        skip_refine_text=False,
        refine_text_only=False,
        use_decoder=True,
        do_text_normalization=True,
        do_homophone_replacement=True,
        params_refine_text=RefineTextParams(),  # noqa: B008 - the real signature
        params_infer_code=InferCodeParams(),  # noqa: B008
    ):
        self.context.set(False)
        self.infer_calls.append(
            {
                "text": text,
                "stream": stream,
                "lang": lang,
                "skip_refine_text": skip_refine_text,
                "refine": params_refine_text,
                "code": params_infer_code,
                "thread": threading.get_ident(),
            }
        )
        generator = self._infer(text, stream, params_infer_code)
        return generator if stream else next(generator)

    def interrupt(self) -> None:
        self.interrupts += 1
        self.context.set(True)

    def _infer(self, text, stream, params):
        assert self.has_loaded(use_decoder=True)
        texts = text if isinstance(text, list) else [text]
        waves = [expected_audio(t, params.spk_emb) for t in texts]
        width = max(len(w) for w in waves)
        batch = np.zeros((len(texts), width), np.float32)
        for row, wave in enumerate(waves):
            batch[row, : len(wave)] = wave
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if not stream:
                yield batch
                return
            length = 0
            while length < width and not self.context.get():  # the GPT loop stops on interrupt
                if self.batch_delay_s:
                    time.sleep(self.batch_delay_s)
                self.batches_made += 1
                yield batch[:, length : length + self.batch_samples]
                length += self.batch_samples
            yield batch[:, width:]  # the real one ends with the (here empty) remainder
        finally:
            with self._lock:
                self.in_flight -= 1
