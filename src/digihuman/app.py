"""Wiring: build a character's voice, face and outputs, and run `say`, `chat` and `run` on them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from asyncio import FIRST_COMPLETED
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from digihuman.character import Character, find_character
from digihuman.config import Settings
from digihuman.errors import BackendError, CharacterError, UserError
from digihuman.face.base import Face
from digihuman.output.base import Sink
from digihuman.tts.base import TTS
from digihuman.turn import Stage, TurnResult, run_turn

if TYPE_CHECKING:
    from digihuman.director import Director
    from digihuman.metrics import CostMeter

logger = logging.getLogger(__name__)

LINGER_S = 0.6  # `say --play` keeps the idling face up briefly so the last syllable is not cut short
PROGRESS_EVERY_S = 1.0
FIRST_FRAME_WAIT_S = 5.0  # how long `run` waits for the camera before greeting without a picture


# --- building blocks ----------------------------------------------------------------------------------


def load_animator(character: Character, settings: Settings) -> Face:
    """The built-in animator for the character's portrait, from its cached rig (built once if missing)."""
    from digihuman.face.animator import PortraitAnimator
    from digihuman.face.rig import Rig

    size = settings.face.size
    if character.rig_path.is_file():
        try:
            rig = Rig.load(character.rig_path, size=size)
        except Exception as exc:  # a stale or corrupt cache: rebuild it from the portrait below
            logger.warning("cached rig %s is unusable (%s); rebuilding it", character.rig_path, exc)
            rig = _build_rig(character, size)
    else:
        rig = _build_rig(character, size)
    return PortraitAnimator(rig, fps=settings.face.fps, size=size, threads=settings.face.threads)


def _build_rig(character: Character, size: int):  # -> Rig
    from digihuman.face.landmarks import detect_landmarks
    from digihuman.face.portrait import load_portrait
    from digihuman.face.rig import build_rig

    logger.info("building the face rig for %s (once)", character.id)
    image = load_portrait(character.portrait_path)
    rig = build_rig(image, detect_landmarks(image), size=size)
    if character.source == "user":
        with contextlib.suppress(OSError):
            rig.save(character.rig_path)
    return rig


def make_face(character: Character, settings: Settings) -> Face:
    backend = character.spec.face.backend
    if backend == "animator":
        return load_animator(character, settings)
    if backend in ("sadtalker", "wav2lip"):
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
    """A character made ready to speak: voice, face and outputs, closed together."""

    character: Character
    settings: Settings
    tts: TTS
    face: Face
    sinks: list[Sink] = field(default_factory=list)
    window: Sink | None = None

    @classmethod
    async def open(
        cls,
        character: Character,
        settings: Settings,
        *,
        window: bool,
        extra_sinks: Callable[[], list[Sink]] = list,
    ) -> Performer:
        """Check the outputs first (cheap, and the user's most likely mistake), then load the models."""
        sinks = extra_sinks()
        tts = make_voice(character, settings)
        face = make_face(character, settings)
        performer = cls(character, settings, tts, face, sinks)
        if window:
            await performer._open_window()
        return performer

    async def _open_window(self) -> None:
        from digihuman.output.window import WindowPlayer, display_available

        if not display_available():
            print("digihuman: warning: no display; not showing a window", file=sys.stderr)
            return
        window = WindowPlayer(
            self.face,
            title=f"digihuman: {self.character.name}",
            fps=self.settings.face.fps,
            size=self.settings.face.size,
        )
        await window.start()
        self.window = window
        self.sinks.insert(0, window)

    def stage(self) -> Stage:
        slow = not self.face.realtime
        fallback = getattr(self.face, "idle", None) if slow and self.settings.face.audio_first else None
        return Stage(
            tts=self.tts,
            sinks=self.sinks,
            face=self.face,
            language=self.character.language,
            lookahead=self.settings.tts.lookahead,
            fallback_face=fallback,
        )

    @property
    def window_closed(self) -> bool:
        closed = getattr(self.window, "closed", None)
        return bool(closed is not None and closed.is_set())

    async def aclose(self) -> None:
        for closeable in (*self.sinks, self.face, self.tts):
            try:
                await closeable.aclose()
            except Exception as exc:
                logger.warning("closing %s failed: %s", type(closeable).__name__, exc)


# --- say ----------------------------------------------------------------------------------------------


def say(
    text: str, *, settings: Settings, character_name: str, output: Path | None, play: bool
) -> Path | None:
    """Speak `text` once. Writes `output` (MP4) and/or shows the window; returns the MP4 path if any."""
    from digihuman.output.recorder import Mp4Recorder, check_writable
    from digihuman.output.window import display_available
    from digihuman.tts.text import clean_for_speech

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

    def sinks() -> list[Sink]:
        fps, size = settings.face.fps, settings.face.size
        return [Mp4Recorder(target, fps=fps, size=size)] if target is not None else []

    async def perform() -> TurnResult:
        performer = await Performer.open(character, settings, window=play, extra_sinks=sinks)
        progress = None
        if target is not None and not play and sys.stderr.isatty():
            progress = asyncio.create_task(_show_progress(performer.sinks[0], target))
        try:
            result = await run_turn(text, performer.stage())
            if performer.window is not None and result.status == "ok":
                await asyncio.sleep(LINGER_S)
            return result
        finally:
            if progress is not None:
                progress.cancel()
                print(file=sys.stderr)  # end the progress line
            await performer.aclose()

    result = asyncio.run(perform())
    if result.status != "ok":
        raise BackendError(f"speaking failed: {result.error or result.status}")
    if target is not None:
        print(f"wrote {target} ({result.audio_s:.1f} s)", file=sys.stderr)
    return target


async def _show_progress(recorder: Sink, target: Path, turn_id: int = 1) -> None:
    """A one-line progress display on a terminal while a long text is recorded."""
    while True:
        await asyncio.sleep(PROGRESS_EVERY_S)
        print(f"\rrecording {target}: {recorder.played_s(turn_id):.0f} s of speech", end="", file=sys.stderr)


# --- chat and run -------------------------------------------------------------------------------------


@dataclass
class Session:
    """Options shared by `chat` and `run`."""

    character_name: str
    window: bool = True
    record: Path | None = None
    metrics: bool = False


class TurnLog:
    """Writes `turns.jsonl` (with --record) and prints the same line (with --metrics)."""

    def __init__(
        self,
        record: Path | None,
        print_metrics: bool,
        *,
        report_failures: bool = True,
        speaker: str = "",
    ) -> None:
        self.prefix = f"{speaker}: " if speaker else ""
        self.path = record / "turns.jsonl" if record is not None else None
        self.print_metrics = print_metrics
        self.report_failures = report_failures  # off for `chat --once`: its exit error says it already
        self.results: list[TurnResult] = []
        self.cost: CostMeter | None = None  # the director's meter, set once it exists

    def __call__(self, result: TurnResult) -> None:
        from digihuman.metrics import turn_record

        self.results.append(result)
        line = json.dumps(turn_record(result, self.cost), ensure_ascii=False)
        if self.path is not None:
            with self.path.open("a", encoding="utf-8") as file:
                file.write(line + "\n")
        if self.print_metrics:
            print(line, flush=True)
        if result.text_shown and not self.print_metrics:
            print(f"{self.prefix}{result.text_shown}", flush=True)
        if result.status == "failed" and self.report_failures:
            print(f"digihuman: turn {result.turn_id} failed: {result.error}", file=sys.stderr, flush=True)


def _session_sinks(session: Session, settings: Settings) -> Callable[[], list[Sink]]:
    def build() -> list[Sink]:
        if session.record is None:
            return []
        from digihuman.output.recorder import TurnRecorder

        return [TurnRecorder(session.record, fps=settings.face.fps, size=settings.face.size)]

    return build


async def _stdin_lines() -> AsyncIterator[str]:
    """Lines typed on stdin, read in a thread so the loop never blocks; ends at EOF."""
    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            return
        yield line.rstrip("\n")


async def _director_session(
    settings: Settings,
    session: Session,
    *,
    proactive: bool,
    once: str | None = None,
    camera: str | None = None,
    duration_s: float | None = None,
) -> int:
    from digihuman.director import Director
    from digihuman.llm import make_llm
    from digihuman.llm.memory import ConversationMemory

    character = find_character(session.character_name)
    log = TurnLog(session.record, session.metrics, report_failures=once is None, speaker=character.name)
    performer = await Performer.open(
        character, settings, window=session.window, extra_sinks=_session_sinks(session, settings)
    )
    llm = make_llm(settings.llm)
    tasks: list[asyncio.Task[None]] = []
    director: Director | None = None
    runner: asyncio.Task[None] | None = None
    failed = False
    try:
        with contextlib.suppress(UserError):  # a failed preload is reported by the first turn instead
            await llm.preload()
        director = Director(
            llm,
            performer.stage(),
            ConversationMemory(character.persona),
            settings.director,
            keep_frames=settings.camera.keep_frames,
            greet=proactive,
            proactive=proactive,
            on_turn=log,
        )
        log.cost = director.cost
        if camera is not None:
            # The greeting should see the room: start the director once the camera has a frame.
            first_frame = asyncio.Event()
            tasks.append(asyncio.create_task(_watch_camera(camera, settings, director, first_frame)))
            waiter = asyncio.create_task(first_frame.wait())
            await asyncio.wait([waiter, tasks[0]], timeout=FIRST_FRAME_WAIT_S, return_when=FIRST_COMPLETED)
            waiter.cancel()
        runner = asyncio.create_task(director.run())
        if once is not None:
            director.say(once)
            while not log.results and not runner.done():
                await asyncio.sleep(0.02)
            director.stop()
        else:
            tasks.append(asyncio.create_task(_feed_stdin(director, stop_at_eof=not proactive)))
            tasks.append(asyncio.create_task(_watch_window(performer)))
            await asyncio.wait([runner, *tasks], timeout=duration_s, return_when=FIRST_COMPLETED)
            for task in tasks:
                if task.done() and not task.cancelled() and (exc := task.exception()) is not None:
                    raise exc
            director.stop()
        await runner
    except Exception:
        failed = True
        raise
    finally:
        # On Ctrl-C this task is cancelled while the director still runs: stop it (cutting and logging
        # its turn) before the outputs close under it, so the files and the cost line are complete.
        running = [*tasks, runner] if runner is not None else tasks
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        await llm.aclose()
        await performer.aclose()
        if director is not None and (director.cost.total().calls or (proactive and not failed)):
            print(director.cost.summary_line(), file=sys.stderr)
    if once is not None:
        result = log.results[-1] if log.results else None
        if result is None or not result.text_spoken:
            error = (result.error if result else None) or "nothing was spoken"
            raise BackendError(f"the turn failed: {error}")
    return 0


async def _feed_stdin(director: Director, *, stop_at_eof: bool) -> None:
    async for line in _stdin_lines():
        if line.strip() in ("/quit", "/exit"):
            return
        director.say(line)
    if not stop_at_eof:
        await asyncio.Event().wait()  # stdin closed (e.g. run in the background): keep watching
    # `chat` with piped input: let the last reply finish before returning
    while not director.idle:
        await asyncio.sleep(0.05)


async def _watch_window(performer: Performer) -> None:
    if performer.window is None:
        await asyncio.Event().wait()
    while not performer.window_closed:
        await asyncio.sleep(0.1)


async def _watch_camera(
    source: str,
    settings: Settings,
    director: Director,
    first_frame: asyncio.Event,
) -> None:
    from digihuman.vision.camera import Camera
    from digihuman.vision.scene import SceneWatcher

    camera_source: int | str = int(source) if source.isdigit() else source
    watcher = SceneWatcher()
    async with Camera(camera_source, settings.camera) as camera:
        async for frame in camera:
            director.observe(frame)
            first_frame.set()
            for event in await asyncio.to_thread(watcher.observe, frame):
                logger.info("scene: %s (score %.2f)", event.kind, event.score)
                director.on_scene(event)
    logger.info("camera source ended")
    await asyncio.sleep(0.5)  # a last scene event may still start a round
    while director.busy:
        await asyncio.sleep(0.1)


def chat(settings: Settings, session: Session, *, once: str | None) -> int:
    return asyncio.run(_director_session(settings, session, proactive=False, once=once))


def run(settings: Settings, session: Session, *, camera: str, duration_s: float | None) -> int:
    try:
        return asyncio.run(
            _director_session(settings, session, proactive=True, camera=camera, duration_s=duration_s)
        )
    except KeyboardInterrupt:
        return 0  # Ctrl-C is how a user stops the companion: the camera and files are closed above
