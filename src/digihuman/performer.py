"""A character made ready to perform: its voice and face built from the character and the settings.

The performer holds no outputs: a front end chooses those (a window, an MP4, a web socket) and hands them to
the conversation session. Heavy read-only pieces (the rig) are built once per performer.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from digihuman.character import Character
from digihuman.config import Settings
from digihuman.errors import CharacterError
from digihuman.face.base import Face
from digihuman.tts.base import TTS

logger = logging.getLogger(__name__)


def load_animator(character: Character, settings: Settings) -> Face:
    """The built-in animator for the character's portrait, from its cached rig (built once if missing)."""
    from digihuman.face.animator import PortraitAnimator
    from digihuman.face.prepare import load_character_rig

    size = settings.face.size
    rig = load_character_rig(
        character.portrait_path, character.rig_path, size=size, save=character.source == "user"
    )
    return PortraitAnimator(rig, fps=settings.face.fps, size=size, threads=settings.face.threads)


def make_face(character: Character, settings: Settings) -> Face:
    backend = character.spec.face.backend
    if backend == "animator":
        return load_animator(character, settings)
    if backend in ("sadtalker", "wav2lip"):
        from digihuman.face.subprocess_face import SubprocessFace

        FaceClass: type[SubprocessFace]
        if backend == "sadtalker":
            from digihuman.face.sadtalker import SadTalkerFace as FaceClass
        else:
            from digihuman.face.wav2lip import Wav2LipFace as FaceClass
        idle = load_animator(character, settings)  # idles (and optionally speaks first) in real time
        return FaceClass(
            character.portrait_path,
            character.spec.face.params,
            size=settings.face.size,
            fps=settings.face.fps,
            idle=idle,
        )
    raise CharacterError(
        f"{character.path / 'character.toml'}: unknown face backend '{backend}' "
        "(use animator, sadtalker or wav2lip)"
    )


def make_voice(character: Character, settings: Settings) -> TTS:
    from digihuman.tts.factory import make_tts

    return make_tts(character, settings=settings)


@dataclass
class Performer:
    """A character's voice and face, closed together."""

    character: Character
    settings: Settings
    tts: TTS
    face: Face

    @classmethod
    async def open(cls, character: Character, settings: Settings) -> Performer:
        """Build the voice, then the face; a rig built from the portrait runs off the event loop."""
        tts = make_voice(character, settings)
        try:
            face = await asyncio.to_thread(make_face, character, settings)
        except BaseException:
            await tts.aclose()
            raise
        return cls(character, settings, tts, face)

    @property
    def fallback_face(self) -> Face | None:
        """With `face.audio_first`, a slow face's real-time stand-in for sentences not rendered yet."""
        if self.face.realtime or not self.settings.face.audio_first:
            return None
        idle: Face | None = getattr(self.face, "idle", None)
        return idle

    async def aclose(self) -> None:
        for closeable in (self.face, self.tts):
            try:
                await closeable.aclose()
            except Exception as exc:
                logger.warning("closing %s failed: %s", type(closeable).__name__, exc)
