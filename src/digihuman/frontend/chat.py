"""`digihuman chat`, `talk` and `run`: a conversation session driven from the terminal.

Typed lines are user text; with a microphone (`talk`, `run --mic`) the user speaks; with `run`, a camera
(device, video file or image folder) feeds the session and the companion speaks on its own. The terminal
prints who says what (or each turn's metrics line) and errors, all from the session's event stream.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from digihuman.character import find_character
from digihuman.config import Settings
from digihuman.errors import BackendError
from digihuman.frontend import runner
from digihuman.frontend.mic import MicOptions, Microphone
from digihuman.frontend.say import open_window
from digihuman.output.base import Sink
from digihuman.session import Conversation, EventStream

if TYPE_CHECKING:
    from digihuman.output.window import WindowPlayer

logger = logging.getLogger(__name__)

FIRST_FRAME_WAIT_S = 5.0  # how long `run` waits for the camera before greeting without a picture
CAMERA_END_SETTLE_S = 0.5  # after a video file ends, a last scene event may still start a round


@dataclass
class TerminalOptions:
    """Options shared by `chat` and `run`."""

    character_name: str
    window: bool = True
    record: Path | None = None
    metrics: bool = False


def chat(settings: Settings, options: TerminalOptions, *, once: str | None) -> int:
    return runner.run(_converse(settings, options, proactive=False, once=once))


def talk(settings: Settings, options: TerminalOptions, *, mic: MicOptions) -> int:
    return runner.run(_converse(settings, options, proactive=False, mic=mic))


def run(
    settings: Settings,
    options: TerminalOptions,
    *,
    camera: str,
    duration_s: float | None,
    mic: MicOptions | None = None,
) -> int:
    try:
        return runner.run(
            _converse(settings, options, proactive=True, camera=camera, duration_s=duration_s, mic=mic)
        )
    except runner.Stopped:
        return 0  # Ctrl-C or SIGTERM is how the companion is stopped: the turn and files were closed


async def _converse(
    settings: Settings,
    options: TerminalOptions,
    *,
    proactive: bool,
    once: str | None = None,
    camera: str | None = None,
    duration_s: float | None = None,
    mic: MicOptions | None = None,
) -> int:
    from digihuman.llm import make_llm

    character = find_character(options.character_name)
    session = Conversation(
        character, settings, llm=make_llm(settings.llm), proactive=proactive, record=options.record
    )
    events = session.subscribe()
    tasks: list[asyncio.Task[None]] = []
    failed = False
    window: WindowPlayer | None = None
    printer = asyncio.create_task(_show_events(events, character.name, options.metrics, errors=once is None))
    microphone = Microphone(mic, settings) if mic is not None else None
    try:
        if microphone is not None:
            await microphone.open()  # a missing device or a bad file fails before the models load
        await session.prepare()
        window = await open_window(session) if options.window else None
        if window is not None:
            tasks.append(asyncio.create_task(_caption(session.subscribe(), window)))
        sinks: list[Sink] = [window] if window is not None else []
        if window is None and microphone is not None:
            sinks.append(await microphone.speaker())  # the voice must be heard, and heard in time
        await session.start(sinks, wait_for_frame_s=FIRST_FRAME_WAIT_S if camera is not None else 0)
        if microphone is not None:
            microphone.attach(window)
            tasks.append(asyncio.create_task(microphone.listen(session, options.record)))
        if once is not None:
            result = await session.ask(once)
            if result.status == "failed" or not result.text_spoken:
                raise BackendError(f"the turn failed: {result.error or 'nothing was spoken'}")
            return 0
        if camera is not None:
            tasks.append(asyncio.create_task(_feed_camera(session, camera)))
        typed_only = not proactive and microphone is None
        tasks.append(asyncio.create_task(_feed_stdin(session, microphone, stop_at_eof=typed_only)))
        if window is not None:
            tasks.append(asyncio.create_task(window.wait_closed()))
        stopped = asyncio.create_task(session.wait_stopped())
        await asyncio.wait([stopped, *tasks], timeout=duration_s, return_when=asyncio.FIRST_COMPLETED)
        for task in [stopped, *tasks]:
            if task.done() and not task.cancelled() and (exc := task.exception()) is not None:
                raise exc
        return 0
    except BaseException:
        failed = True
        raise
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await session.aclose()  # cuts and records the turn in progress before the outputs close
        if microphone is not None:
            await microphone.aclose()
        await printer
        if session.cost.total().calls or (proactive and not failed):
            print(session.cost.summary_line(), file=sys.stderr)


async def _show_events(events: EventStream, speaker: str, metrics: bool, *, errors: bool) -> None:
    """Each turn's text (or its metrics line) on stdout, errors on stderr, once each."""
    async for event in events:
        if event.type == "turn":
            if metrics:
                print(json.dumps(event.data, ensure_ascii=False), flush=True)
            elif event.data.get("text_shown"):
                print(f"{speaker}: {event.data['text_shown']}", flush=True)
        elif event.type == "error" and errors:
            print(f"digihuman: {event.data['message']}", file=sys.stderr, flush=True)


async def _caption(events: EventStream, window: WindowPlayer) -> None:
    """The state and both sides' words over the face in the window."""
    async for event in events:
        if event.type == "state":
            window.captions.set_state(event.data["state"])
        elif event.type == "reply_text":
            window.captions.say_at(event.data["turn"], event.data["at_s"], event.data["text"])
        elif event.type == "transcript":
            window.captions.heard(event.data["text"])


async def _stdin_lines() -> AsyncIterator[str]:
    """Lines typed on stdin, read in a thread so the loop never blocks; ends at EOF."""
    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            return
        yield line.rstrip("\n")


async def _feed_stdin(session: Conversation, microphone: Microphone | None, *, stop_at_eof: bool) -> None:
    async for line in _stdin_lines():
        if line.strip() in ("/quit", "/exit"):
            return
        if microphone is not None and microphone.typed(line):
            continue
        if line.strip():
            session.send_text(line)
    if not stop_at_eof:
        await asyncio.Event().wait()  # stdin closed (e.g. run in the background): keep watching
    await session.wait_idle()  # `chat` with piped input: let the last reply finish


async def _feed_camera(session: Conversation, source: str) -> None:
    """Pull frames from the camera and push them into the session; return after the source ends."""
    from digihuman.vision.camera import Camera

    camera_source: int | str = int(source) if source.isdigit() else source
    async with Camera(camera_source, session.settings.camera) as camera:
        async for frame in camera:
            await session.push_frame(frame)
    logger.info("camera source ended")
    await asyncio.sleep(CAMERA_END_SETTLE_S)
    await session.wait_idle()
