"""Four sessions with four characters run at once in one event loop and do not disturb each other.

Checked from the output files only: each MP4 shows its own character's face, and its sound is its own text
in its own voice (matched against a separate rendering of every text, and heard by real Whisper when the
fixture is there).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from digihuman.character import Character, create_character, find_character
from digihuman.config import Settings
from digihuman.output.recorder import Mp4Recorder
from digihuman.performer import load_animator
from digihuman.session import Conversation
from tests.e2e.support import astronaut, save_image, words

pytestmark = pytest.mark.slow

SIZE = 128
TEXTS = {
    "ada": "The red kite flies over the quiet harbour.",
    "xiaomei": "今天的天气非常好，我们一起去公园散步吧。",
    "blue": "Seven green apples fell from the tall tree this morning, one after another.",
    "grey": "Good night, sleep well, and I will see you again tomorrow.",
}


@dataclass
class Output:
    character: Character
    text: str
    path: Path

    @property
    def reference(self) -> Path:
        return self.path.with_suffix(".alone.mp4")


def user_character(name: str, image: np.ndarray, tmp_path: Path) -> Character:
    return create_character(name, save_image(image, tmp_path / f"{name}.png"), face_size=SIZE)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> list[Output]:
    return asyncio.run(_render_all(tmp_path_factory.mktemp("many")))


async def _render_all(folder: Path) -> list[Output]:
    import os

    os.environ["DIGIHUMAN_HOME"] = str(folder / "home")  # module scope: the per-test home is not set yet
    photo = astronaut()
    blue = photo.copy()
    blue[..., 2] = np.clip(blue[..., 2].astype(int) + 90, 0, 255)
    grey = np.repeat(photo.mean(axis=2, keepdims=True), 3, axis=2).astype(np.uint8)
    characters = [
        find_character("ada"),
        find_character("xiaomei"),
        user_character("blue", blue, folder),
        user_character("grey", grey, folder),
    ]
    settings = Settings()
    settings.face.size = SIZE
    outputs = [Output(c, TEXTS[c.id], folder / f"{c.id}.mp4") for c in characters]
    # All four at once...
    await asyncio.gather(*(_render(o.character, o.text, o.path, settings) for o in outputs))
    # ...and each alone, one after another: what every recording should sound like.
    for output in outputs:
        await _render(output.character, output.text, output.reference, settings)
    return outputs


async def _render(character: Character, text: str, path: Path, settings: Settings) -> None:
    session = Conversation(character, settings, session_id=character.id)
    try:
        await session.start([Mp4Recorder(path, fps=settings.face.fps, size=SIZE)])
        result = await session.speak(text)
        assert result.status == "ok", result
    finally:
        await session.aclose()


def decode(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """(first video frame RGB, mono audio, audio sample rate) of an MP4."""
    import av

    with av.open(str(path)) as container:
        first = next(container.decode(video=0)).to_ndarray(format="rgb24")
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        # AAC decodes to planar float; the first plane is the (mono) voice.
        pcm = np.concatenate([frame.to_ndarray()[0] for frame in container.decode(stream)])
        rate = stream.rate
    return first, pcm.astype(np.float32), rate


def envelope(pcm: np.ndarray, rate: int, hop_s: float = 0.02) -> np.ndarray:
    hop = int(rate * hop_s)
    frames = len(pcm) // hop
    return np.sqrt(np.mean(pcm[: frames * hop].reshape(frames, hop) ** 2, axis=1))


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of two loudness envelopes over their common length, less a penalty for unequal length."""
    n = min(len(a), len(b))
    if n < 10:
        return -1.0
    correlation = float(np.corrcoef(a[:n], b[:n])[0, 1])
    return correlation - abs(len(a) - len(b)) / max(len(a), len(b))


def test_each_recording_shows_its_own_face(outputs: list[Output]) -> None:
    settings = Settings()
    settings.face.size = SIZE
    references = {o.character.id: load_animator(o.character, settings).idle_frame(0.0) for o in outputs}
    for output in outputs:
        frame = decode(output.path)[0].astype(np.float32)
        errors = {
            cid: float(np.mean((frame - ref.astype(np.float32)) ** 2)) for cid, ref in references.items()
        }
        assert min(errors, key=errors.__getitem__) == output.character.id, (output.character.id, errors)


def test_each_recording_speaks_its_own_text_in_its_own_voice(outputs: list[Output]) -> None:
    references = {}
    for output in outputs:
        _, pcm, rate = decode(output.reference)
        references[output.character.id] = envelope(pcm, rate)
    for output in outputs:
        _, pcm, rate = decode(output.path)
        heard = envelope(pcm, rate)
        scores = {cid: similarity(heard, ref) for cid, ref in references.items()}
        assert max(scores, key=scores.__getitem__) == output.character.id, (output.character.id, scores)
        assert scores[output.character.id] > 0.95, (output.character.id, scores)


def test_real_whisper_hears_each_english_recording_say_its_own_words(outputs: list[Output]) -> None:
    from tests.real_models import real_model_path

    model_dir = real_model_path("whisper-base")
    from faster_whisper import WhisperModel

    model = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=2)
    for output in outputs:
        if output.character.language != "en":
            continue
        _, pcm, rate = decode(output.path)
        audio = np.interp(np.arange(0, len(pcm), rate / 16000), np.arange(len(pcm)), pcm).astype(np.float32)
        segments, _ = model.transcribe(audio, language="en", beam_size=1)
        heard = set(words(" ".join(s.text for s in segments)))
        spoken = set(words(output.text))
        assert len(heard & spoken) >= 0.6 * len(spoken), (output.character.id, heard, spoken)
        for other in outputs:  # and not another session's words
            if other is not output:
                assert len(heard & (set(words(other.text)) - spoken)) <= 1, (output.character.id, heard)
