"""The desktop window: a Sink that shows the talking face and plays its voice in sync.

The voice goes to an `AudioOutput`, which owns the clock. Frames wait in a queue until the clock reaches
their `pts_s`: the window shows the newest frame that is due and drops older ones, so video never drifts
from the voice even when frames arrive late. Between utterances the face idles (`face.idle_frame`).

The window lives on its own thread, which makes every pygame/SDL call. That keeps the picture moving (idle
blinks, exact frame timing) whatever the asyncio loop is busy with, and a slow draw or a vsync wait can
never stall the loop. The asyncio side only appends to a locked queue. (On macOS SDL wants the main thread;
there, run the asyncio loop on another thread or use the web page.)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from digihuman.audio.player import AudioOutput
from digihuman.errors import BackendError, MissingExtraError
from digihuman.face.base import Face
from digihuman.media import AudioChunk, VideoFrame
from digihuman.output.captions import Captions

logger = logging.getLogger(__name__)

# After this many frame periods without a due talking frame (a pause, a slow voice), the face idles.
IDLE_AFTER_FRAMES = 3
READY_TIMEOUT_S = 10.0

# A call to run on the window thread with the screen surface, and where its answer goes.
_ScreenRequest = tuple[Callable[[Any], Any], concurrent.futures.Future[Any]]


# pygame (SDL) has one display per process: a second window would take over the first one's, and its
# display.quit() would close both. Held by the window thread while its window is open.
_DISPLAY = threading.Lock()


def display_available() -> bool:
    """Whether a window can be shown: a desktop session, or an SDL video driver chosen explicitly."""
    if sys.platform in ("win32", "darwin"):
        return True
    return any(os.environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"))


def _import_pygame() -> Any:
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    # Leave SIGINT/SIGTERM to Python: Ctrl-C must reach asyncio, not become an SDL quit event.
    os.environ.setdefault("SDL_NO_SIGNAL_HANDLERS", "1")
    try:
        import pygame
    except ImportError as exc:
        raise MissingExtraError("pygame", "window") from exc
    return pygame


@dataclass(frozen=True, slots=True)
class ShownFrame:
    """One picture the window drew: a talking frame (with its turn and pts) or an idle frame (None)."""

    turn_id: int | None
    pts_s: float | None
    shown_at: float  # monotonic
    clock_s: float  # the audio clock of the turn when it was drawn


class WindowPlayer:
    """A Sink that shows `face` in a desktop window and plays the turn's audio through `audio`."""

    def __init__(
        self,
        face: Face,
        title: str,
        fps: int = 25,
        size: int = 512,
        audio: AudioOutput | None = None,
    ) -> None:
        self.face = face
        self.title = title
        self.fps = fps
        self.size = size
        self._owns_audio = audio is None
        self.audio = audio if audio is not None else AudioOutput()
        self.closed = threading.Event()  # set when the user closes the window (or after aclose)
        self.first_frame_shown_at: dict[int, float] = {}
        self.history: deque[ShownFrame] = deque(maxlen=1024)
        self._lock = threading.Lock()
        self._turn_id: int | None = None
        self._frames: deque[VideoFrame] = deque()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._stop = threading.Event()
        self._requests: queue.Queue[_ScreenRequest] = queue.Queue()
        self._t0 = time.monotonic()
        self.captions = Captions()  # state and subtitles over the face (chat, run, talk)
        self.on_key: Callable[[str, bool], None] | None = None  # (key name, pressed); on the window thread

    # -- lifecycle -----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the audio stream and the window (idling); raises BackendError if no window can open."""
        await asyncio.to_thread(self.audio.start)
        self._launch()
        await asyncio.to_thread(self._ready.wait, READY_TIMEOUT_S)
        if self._start_error is not None:
            if isinstance(self._start_error, MissingExtraError):
                raise self._start_error
            raise BackendError(
                f"cannot open the window ({self._start_error}); use --record FILE.mp4 or the web page instead"
            ) from self._start_error
        if not self._ready.is_set():
            raise BackendError("the window did not open within 10 s; use --record FILE.mp4 instead")

    def _launch(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="window", daemon=True)
            self._thread.start()

    async def wait_closed(self) -> None:
        """Return when the user closes the window."""
        while not self.closed.is_set():
            await asyncio.sleep(0.05)

    async def aclose(self) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5)
            self._thread = None
        if self._owns_audio:
            await asyncio.to_thread(self.audio.close)
        self.closed.set()

    # -- Sink ----------------------------------------------------------------------------------------

    def begin_turn(self, turn_id: int) -> None:
        self._launch()
        self.audio.begin_turn(turn_id)
        with self._lock:
            self._turn_id = turn_id
            self._frames.clear()

    async def write_audio(self, chunk: AudioChunk) -> None:
        if chunk.turn_id == self._turn_id:
            self.audio.enqueue(chunk)

    async def write_frame(self, frame: VideoFrame) -> None:
        with self._lock:
            if frame.turn_id == self._turn_id:
                self._frames.append(frame)

    async def end_turn(self, turn_id: int) -> None:
        """Return once the turn's audio has been heard (its frames are shown along the way)."""
        self.audio.finish_turn(turn_id)
        await self.audio.wait_played(turn_id)

    def cancel_turn(self, turn_id: int) -> float:
        heard = self.audio.clear(turn_id)
        with self._lock:
            if turn_id == self._turn_id:
                self._frames.clear()
        return heard

    def played_s(self, turn_id: int) -> float:
        return self.audio.position_s(turn_id)

    # -- inspection ----------------------------------------------------------------------------------

    def read_screen(self, timeout: float = 2.0) -> np.ndarray:
        """The window's pixels as drawn now, RGB (H, W, 3): for screenshots and tests."""
        if self._thread is None or not self._ready.is_set() or self._start_error is not None:
            raise RuntimeError("the window is not open")
        result: concurrent.futures.Future[np.ndarray] = concurrent.futures.Future()
        self._requests.put((_read_pixels, result))
        return result.result(timeout=timeout)

    # -- the window thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        if not _DISPLAY.acquire(blocking=False):
            self._start_error = RuntimeError("another window is open in this process; pygame shows one")
            self._ready.set()
            return
        try:
            self._show()
        finally:
            _DISPLAY.release()

    def _show(self) -> None:
        try:
            pygame = _import_pygame()
            pygame.display.init()
            screen = pygame.display.set_mode((self.size, self.size))
            pygame.display.set_caption(self.title)
        except BaseException as exc:
            self._start_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            self._loop(pygame, screen)
        except Exception:
            logger.exception("the window failed")
        finally:
            self._fail_requests()
            pygame.display.quit()
            self.closed.set()

    def _loop(self, pygame: Any, screen: Any) -> None:
        frame_period = 1.0 / self.fps
        # Poll much faster than the frame rate, so a frame appears within a few ms of becoming due.
        poll_s = min(0.005, frame_period / 4)
        last_talking_at = float("-inf")
        next_idle_at = 0.0
        while not self._stop.is_set():
            for event in pygame.event.get():
                if event.type == pygame.QUIT or (
                    event.type == pygame.KEYDOWN and event.key == pygame.K_ESCAPE
                ):
                    logger.info("window closed")
                    self.closed.set()
                    return
                if event.type in (pygame.KEYDOWN, pygame.KEYUP) and self.on_key is not None:
                    self.on_key(pygame.key.name(event.key), event.type == pygame.KEYDOWN)
            now = time.monotonic()
            turn_id = self._turn_id
            self.captions.advance(turn_id, self.audio.position_s(turn_id) if turn_id is not None else 0.0)
            due = self._take_due_frame()
            if due is not None:
                frame, clock_s = due
                self._draw(pygame, screen, frame.image)
                shown_at = time.monotonic()
                self.first_frame_shown_at.setdefault(frame.turn_id, shown_at)
                self.history.append(ShownFrame(frame.turn_id, frame.pts_s, shown_at, clock_s))
                last_talking_at = shown_at
            elif now - last_talking_at > IDLE_AFTER_FRAMES * frame_period and now >= next_idle_at:
                self._draw(pygame, screen, self.face.idle_frame(now - self._t0))
                self.history.append(ShownFrame(None, None, time.monotonic(), 0.0))
                next_idle_at = max(next_idle_at + frame_period, now)
            self._serve_requests(screen)
            self._stop.wait(poll_s)

    def _take_due_frame(self) -> tuple[VideoFrame, float] | None:
        """The newest queued frame whose pts the audio clock has reached; older due frames are dropped."""
        with self._lock:
            if self._turn_id is None or not self._frames:
                return None
            clock_s = self.audio.position_s(self._turn_id)
            due = None
            while self._frames and self._frames[0].pts_s <= clock_s + 1e-9:
                due = self._frames.popleft()
        return (due, clock_s) if due is not None else None

    def _draw(self, pygame: Any, screen: Any, image: np.ndarray) -> None:
        image = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
        height, width = image.shape[:2]
        surface = pygame.image.frombuffer(image.tobytes(), (width, height), "RGB")
        if (width, height) != (self.size, self.size):
            surface = pygame.transform.smoothscale(surface, (self.size, self.size))
        screen.blit(surface, (0, 0))
        self.captions.draw(pygame, screen)
        pygame.display.flip()

    def _serve_requests(self, screen: Any) -> None:
        for request, result in self._pending_requests():
            try:
                result.set_result(request(screen))
            except Exception as exc:
                result.set_exception(exc)

    def _fail_requests(self) -> None:
        for _, result in self._pending_requests():
            result.set_exception(RuntimeError("the window closed"))

    def _pending_requests(self) -> Iterator[_ScreenRequest]:
        while True:
            try:
                yield self._requests.get_nowait()
            except queue.Empty:
                return


def _read_pixels(screen: Any) -> np.ndarray:
    import pygame

    return pygame.surfarray.array3d(screen).transpose(1, 0, 2).copy()
