"""`digihuman say`: one text, spoken once by a character, into an MP4 and/or the window."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from digihuman.character import find_character
from digihuman.config import Settings
from digihuman.errors import BackendError, UserError
from digihuman.frontend import runner
from digihuman.output.base import Sink
from digihuman.session import Conversation
from digihuman.turn import TurnResult

if TYPE_CHECKING:
    from digihuman.output.window import WindowPlayer

LINGER_S = 0.6  # `say --play` keeps the idling face up briefly so the last syllable is not cut short
PROGRESS_EVERY_S = 1.0


def say(
    text: str, *, settings: Settings, character_name: str, output: Path | None, play: bool
) -> Path | None:
    """Speak `text` once. Writes `output` (MP4) and/or shows the window; returns the MP4 path if any."""
    from digihuman.output.recorder import check_writable
    from digihuman.output.window import display_available
    from digihuman.tts.clean import clean_for_speech

    if not clean_for_speech(text).strip():
        raise UserError("nothing to say: the text is empty (or only symbols, emoji or links)")
    character = find_character(character_name)
    if output is None and not play:
        play = display_available()  # neither flag: show it on a desktop, else write a file below
    if output is None and not (play and display_available()):
        if play:
            print("digihuman: warning: no display; writing an MP4 instead", file=sys.stderr)
        output = Path(f"digihuman-{character.id}.mp4")
        play = False
    target = check_writable(output) if output is not None else None
    session = Conversation(character, settings)
    result = runner.run(_perform(session, text, target, play))
    if result.status != "ok":
        raise BackendError(f"speaking failed: {result.error or result.status}")
    if target is not None:
        print(f"wrote {target} ({result.audio_s:.1f} s)", file=sys.stderr)
    return target


async def _perform(session: Conversation, text: str, target: Path | None, play: bool) -> TurnResult:
    from digihuman.output.recorder import Mp4Recorder

    settings = session.settings
    progress: asyncio.Task[None] | None = None
    try:
        await session.prepare()
        sinks: list[Sink] = []
        recorder: Mp4Recorder | None = None
        if target is not None:
            # Held until the turn is known to be good: a failed run leaves the path as it found it.
            recorder = Mp4Recorder(target, fps=settings.face.fps, size=settings.face.size, hold=True)
            sinks.append(recorder)
        window = await open_window(session) if play else None
        if window is not None:
            sinks.insert(0, window)
        await session.start(sinks)
        if target is not None and window is None and sys.stderr.isatty():
            progress = asyncio.create_task(_show_progress(sinks[0], target))
        result = await session.speak(text)
        if recorder is not None and result.status == "ok":
            await recorder.commit()  # before aclose, which discards an uncommitted file
        if window is not None and result.status == "ok":
            await asyncio.sleep(LINGER_S)
        return result
    finally:
        if progress is not None:
            progress.cancel()
            print(file=sys.stderr)  # end the progress line
        await session.aclose()


async def open_window(session: Conversation) -> WindowPlayer | None:
    """The desktop window showing the session's face, or None (with a warning) without a display."""
    from digihuman.output.window import WindowPlayer, display_available

    if not display_available():
        print("digihuman: warning: no display; not showing a window", file=sys.stderr)
        return None
    settings = session.settings
    window = WindowPlayer(
        session.face,
        title=f"digihuman: {session.character.name}",
        fps=settings.face.fps,
        size=settings.face.size,
    )
    await window.start()
    return window


async def _show_progress(recorder: Sink, target: Path, turn_id: int = 1) -> None:
    """A one-line progress display on a terminal while a long text is recorded."""
    while True:
        await asyncio.sleep(PROGRESS_EVERY_S)
        print(f"\rrecording {target}: {recorder.played_s(turn_id):.0f} s of speech", end="", file=sys.stderr)
