"""The terminal's microphone for `talk` and `run --mic`: a device or a sound file, and the models that listen.

Push-to-talk: Enter on the terminal (an empty line) or Space in the window starts and stops talking.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from digihuman.config import Settings
from digihuman.ears import PushToTalk, hear
from digihuman.session import Conversation

if TYPE_CHECKING:
    from digihuman.asr.base import ASR
    from digihuman.audio.echo import EchoCanceller
    from digihuman.audio.listener import Listener
    from digihuman.audio.source import AudioSource
    from digihuman.output.speaker import SpeakerSink
    from digihuman.output.window import WindowPlayer

logger = logging.getLogger(__name__)


@dataclass
class MicOptions:
    spec: str  # a device index or name, or a sound file
    push_to_talk: bool = False
    language: str | None = None  # fixes the recognizer's language; None: `[asr] language`


class Microphone:
    """Opened before the session starts (a missing device or a bad file fails first), closed after it."""

    def __init__(self, options: MicOptions, settings: Settings) -> None:
        self.options = options
        self.settings = settings
        self.source: AudioSource | None = None
        self.push_to_talk: PushToTalk | None = None
        self.asr: ASR | None = None
        self.listener: Listener | None = None
        self.echo: EchoCanceller | None = None
        self.is_file = False

    async def open(self) -> None:
        from digihuman.asr.factory import create_asr
        from digihuman.audio.listener import create_listener
        from digihuman.audio.source import FileSource, open_source

        spec = None if self.options.spec == "default" else self.options.spec
        self.source = await asyncio.to_thread(open_source, spec)
        self.is_file = isinstance(self.source, FileSource)
        if self.options.push_to_talk:
            self.push_to_talk = PushToTalk(self.source)
        if self.settings.listen.echo_cancel and not self.is_file:
            from digihuman.audio.echo import EchoCanceller

            self.echo = EchoCanceller()  # what the speaker plays is removed from what the microphone hears
        self.asr = create_asr(self.settings.asr, self.options.language)
        warm_up = getattr(self.asr, "warm_up", None)
        if warm_up is not None:
            await warm_up()  # a model to fetch or a broken one fails now, not at the first words
        self.listener = await asyncio.to_thread(
            create_listener, self.settings, self.asr, language=self.options.language, echo=self.echo
        )

    def attach(self, window: WindowPlayer | None) -> None:
        """Feed the window's speaker output to the echo canceller; Space there is push-to-talk."""
        if window is None:
            return
        if self.echo is not None:
            window.audio.on_render = self.echo.play
        if self.push_to_talk is not None:
            loop = asyncio.get_running_loop()
            ptt = self.push_to_talk

            def on_key(key: str, pressed: bool) -> None:  # the window's thread
                if key == "space":
                    loop.call_soon_threadsafe(ptt.press if pressed else ptt.release)

            window.on_key = on_key

    async def speaker(self) -> SpeakerSink:
        """The voice on the speakers when there is no window (its output is the echo reference)."""
        from digihuman.output.speaker import SpeakerSink

        speaker = SpeakerSink()
        await speaker.start()
        if self.echo is not None:
            speaker.audio.on_render = self.echo.play
        return speaker

    async def listen(self, session: Conversation, record: Path | None) -> None:
        """Until the source ends; a sound file is done once the reply to its last words has been spoken."""
        assert self.listener is not None and self.source is not None
        source: AudioSource = self.push_to_talk or self.source
        count = await hear(session, self.listener, source, record=record)
        logger.info("the microphone ended after %d utterances", count)
        await asyncio.sleep(0.1)  # the last utterance's reply is under way
        await session.wait_idle()

    def typed(self, line: str) -> bool:
        """An empty line toggles push-to-talk; True when the line was that."""
        if self.push_to_talk is None or line.strip():
            return False
        self.push_to_talk.toggle()
        print("(talking: press Enter to stop)" if self.push_to_talk.talking else "(stopped)", flush=True)
        return True

    async def aclose(self) -> None:
        for closing in (self.listener, self.asr):
            if closing is not None:
                try:
                    await closing.aclose()
                except Exception as exc:
                    logger.warning("closing %s failed: %s", type(closing).__name__, exc)
        if self.source is not None:
            await self.source.close()
