"""The camera: a paced, async source of small sampled frames from a device, a video file or an image folder.

Frames are sampled at `sample_fps`, centre-cropped, downscaled to `width` and JPEG-encoded; only the last
`keep_frames` stay in memory and nothing is written to disk. A video file plays at its own frame rate like a
live camera, and only the sampled frames are converted to RGB. All reading and decoding runs in the camera's
own worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from digihuman.config import CameraSettings
from digihuman.errors import UserError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
# When playback has fallen this far behind the wall clock, seek instead of decoding every frame in between.
SEEK_AHEAD_S = 2.0

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class CameraError(UserError):
    """The camera source cannot be opened or stopped delivering frames."""


@dataclass(frozen=True, slots=True)
class CameraFrame:
    """One sampled frame: `t_s` is the camera clock when it was taken; `rgb_small` is (H, W, 3) uint8."""

    t_s: float
    rgb_small: np.ndarray
    jpeg: bytes


class FrameSource(Protocol):
    """A blocking reader, only ever called from the camera's worker thread."""

    def open(self) -> None: ...

    def frame_at(self, media_s: float) -> np.ndarray | None:
        """The RGB frame on screen `media_s` seconds after playback started, or None when the source ended."""
        ...

    def close(self) -> None: ...


class Camera:
    """Sampled frames from `source`: a device index (int or digit string), a video file, an image folder
    (or one image), or any FrameSource.

    Use as an async context manager (or call `aclose`); iterate it, or `await read()` frame by frame.
    `loop` replays a video file or folder from the start at its end instead of ending.
    `clock` and `sleep` pace the sampling; tests inject a virtual clock to simulate hours quickly.
    """

    def __init__(
        self,
        source: int | str | Path | FrameSource,
        settings: CameraSettings | None = None,
        *,
        loop: bool = False,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.settings = settings or CameraSettings()
        self.source = source
        self.loop = loop
        self._clock = clock
        self._sleep = sleep
        self._reader = make_source(source, loop=loop)
        self._recent: deque[CameraFrame] = deque(maxlen=self.settings.keep_frames)
        self._executor: ThreadPoolExecutor | None = None
        self._opened = False
        self._closed = False
        self._started_at = 0.0
        self._next_due: float | None = None
        self._ended = False

    @property
    def recent(self) -> list[CameraFrame]:
        """The last `keep_frames` samples, oldest first."""
        return list(self._recent)

    @property
    def latest(self) -> CameraFrame | None:
        return self._recent[-1] if self._recent else None

    async def open(self) -> None:
        """Open the source (lazily called by the first `read`); raises CameraError when it cannot be used."""
        if self._closed:
            raise CameraError("the camera was closed")
        if self._opened:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="camera")
        try:
            await self._in_worker(self._reader.open)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise
        self._opened = True
        self._started_at = self._clock()
        self._next_due = self._started_at

    async def read(self) -> CameraFrame | None:
        """Wait until the next sample is due and take it; None once a file or folder has ended."""
        await self.open()
        if self._ended:
            return None
        assert self._next_due is not None
        delay = self._next_due - self._clock()
        if delay > 0:
            await self._sleep(delay)
        if self._closed:
            return None
        now = self._clock()
        interval = 1.0 / self.settings.sample_fps
        # Keep to the sampling grid, but never make up samples missed while the consumer was busy.
        self._next_due += interval
        if self._next_due <= now:
            self._next_due = now + interval
        frame = await self._in_worker(self._sample, now)
        if frame is None:
            self._ended = True
            return None
        self._recent.append(frame)
        return frame

    async def frames(self) -> AsyncIterator[CameraFrame]:
        """Samples until the source ends (one consumer at a time)."""
        while (frame := await self.read()) is not None:
            yield frame

    def __aiter__(self) -> AsyncIterator[CameraFrame]:
        return self.frames()

    async def aclose(self) -> None:
        """Release the device or file; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._executor is None:
            return
        try:
            await self._in_worker(self._reader.close)
        finally:
            self._executor.shutdown(wait=False)
            self._recent.clear()

    async def __aenter__(self) -> Camera:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _sample(self, now: float) -> CameraFrame | None:
        rgb = self._reader.frame_at(now - self._started_at)
        if rgb is None:
            return None
        small = shrink(rgb, self.settings.crop, self.settings.width)
        return CameraFrame(t_s=now, rgb_small=small, jpeg=encode_jpeg(small, self.settings.jpeg_quality))

    async def _in_worker(self, func: Callable[..., Any], *args: Any) -> Any:
        assert self._executor is not None
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)


def make_source(source: int | str | Path | FrameSource, *, loop: bool = False) -> FrameSource:
    """Pick the reader for a `--camera` argument: a digit string is a device index, else a path.

    A ready FrameSource (e.g. frames pushed from a browser) is used as it is.
    """
    if not isinstance(source, (int, str, Path)):
        return source
    if isinstance(source, int) or (isinstance(source, str) and source.strip().isdigit()):
        return DeviceSource(int(source))
    path = Path(source).expanduser()
    if path.is_dir():
        return ImageFolderSource(path, loop=loop)
    if not path.is_file():
        raise CameraError(
            f"camera source {path} does not exist: give a device index, a video file or a folder"
        )
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageFolderSource(path, loop=loop)
    return VideoFileSource(path, loop=loop)


def shrink(rgb: np.ndarray, crop: float, width: int) -> np.ndarray:
    """Centre-crop both sides to `crop` of their length, then downscale (never upscale) to `width`."""
    import cv2

    height, full_width = rgb.shape[:2]
    if crop < 1.0:
        keep_h, keep_w = max(1, round(height * crop)), max(1, round(full_width * crop))
        top, left = (height - keep_h) // 2, (full_width - keep_w) // 2
        rgb = rgb[top : top + keep_h, left : left + keep_w]
        height, full_width = keep_h, keep_w
    if full_width > width:
        new_height = max(1, round(height * width / full_width))
        rgb = cv2.resize(rgb, (width, new_height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb)


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    import cv2

    ok, buffer = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise CameraError("a camera frame could not be JPEG-encoded")
    return buffer.tobytes()


class DeviceSource:
    """A live camera via OpenCV. A grabber thread keeps the driver's queue drained (grab() is cheap: no
    colour conversion), so a sample is always the newest frame; only sampled frames are retrieve()d."""

    def __init__(self, index: int, capture_factory: Callable[[int], Any] | None = None) -> None:
        self.index = index
        self._capture_factory = capture_factory
        self._capture: Any = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._grabbed = threading.Event()
        self._failed = False
        self._grabber: threading.Thread | None = None

    def open(self) -> None:
        capture = self._make_capture()
        if capture is None or not capture.isOpened():
            if capture is not None:
                capture.release()
            raise CameraError(
                f"camera {self.index} could not be opened: is it in use or missing? use --camera FILE"
            )
        self._capture = capture
        self._grabber = threading.Thread(
            target=self._grab_forever, name=f"camera-{self.index}-grab", daemon=True
        )
        self._grabber.start()

    def _make_capture(self) -> Any:
        if self._capture_factory is not None:
            return self._capture_factory(self.index)
        import cv2

        # OpenCV logs a warning per failed backend; our CameraError says it once, clearly.
        previous = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        try:
            return cv2.VideoCapture(self.index)
        finally:
            cv2.utils.logging.setLogLevel(previous)

    def _grab_forever(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                ok = self._capture.grab()
            if not ok:
                self._failed = True
                self._grabbed.set()
                return
            self._grabbed.set()

    def frame_at(self, media_s: float) -> np.ndarray | None:
        if not self._grabbed.wait(timeout=5.0) or self._failed:
            raise CameraError(f"camera {self.index} stopped delivering frames: is it unplugged or in use?")
        with self._lock:
            ok, bgr = self._capture.retrieve()
        if not ok or bgr is None:
            raise CameraError(f"camera {self.index} delivered an unreadable frame")
        import cv2

        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self._stop.set()
        if self._grabber is not None:
            self._grabber.join(timeout=2.0)
        if self._capture is not None:
            with self._lock:
                self._capture.release()
            self._capture = None


class VideoFileSource:
    """A video file played in real time with PyAV. Every packet must still be decoded (later frames depend
    on earlier ones), but non-reference frames are skipped by the decoder and only the frame on screen at a
    sample is converted to RGB, so an idle file camera costs little CPU."""

    def __init__(self, path: Path, *, loop: bool = False) -> None:
        self.path = path
        self.loop = loop
        self._container: Any = None
        self._stream: Any = None
        self._decoded: Iterator[Any] | None = None
        self._shown: tuple[float, Any] | None = None  # (media time, av.VideoFrame) on screen now
        self._pending: tuple[float, Any] | None = None  # the next decoded frame, not yet due
        self._loop_offset_s = 0.0  # media time at which the current pass through the file started
        self._first_pts_s: float | None = None
        self._frame_s = 1 / 30

    def open(self) -> None:
        import av

        try:
            self._container = av.open(str(self.path))
        except (av.error.FFmpegError, OSError) as exc:
            raise CameraError(f"camera file {self.path} is not a readable video: {exc}") from None
        if not self._container.streams.video:
            self._container.close()
            raise CameraError(f"camera file {self.path} has no video stream")
        self._stream = self._container.streams.video[0]
        context = self._stream.codec_context
        context.thread_count = 1  # one thread decodes 2 fps worth of work with the least overhead
        context.skip_frame = "NONREF"  # nothing depends on these frames: skip them outright
        rate = self._stream.average_rate or self._stream.guessed_rate
        if rate:
            self._frame_s = 1 / float(rate)
        self._decoded = self._container.decode(self._stream)

    def frame_at(self, media_s: float) -> np.ndarray | None:
        may_seek = True  # at most once per sample: keyframes may lie further back than SEEK_AHEAD_S
        while True:
            if self._pending is None:
                self._pending = self._next_frame()
            if self._pending is None:  # end of file
                shown_until = self._shown[0] + self._frame_s if self._shown else 0.0
                if self._shown is not None and media_s < shown_until:
                    break
                if not self.loop or self._shown is None:
                    return None
                self._rewind(shown_until)
                continue
            if self._pending[0] > media_s:
                break
            if may_seek and self._pending[0] + SEEK_AHEAD_S < media_s:
                may_seek = False
                if self._seek(media_s):
                    continue
            self._shown, self._pending = self._pending, None
        if self._shown is None:
            # Playback has not reached the first frame yet: show it early rather than nothing.
            self._shown, self._pending = self._pending, None
        assert self._shown is not None
        return self._shown[1].to_ndarray(format="rgb24")

    def _next_frame(self) -> tuple[float, Any] | None:
        assert self._decoded is not None
        try:
            frame = next(self._decoded)
        except StopIteration:
            return None
        except Exception as exc:  # a corrupt packet mid-file: stop like a camera that went dark
            logger.warning("camera file %s: decoding stopped: %s", self.path, exc)
            return None
        pts_s = float(frame.time) if frame.time is not None else 0.0
        if self._first_pts_s is None:
            self._first_pts_s = pts_s
        return self._loop_offset_s + pts_s - self._first_pts_s, frame

    def _seek(self, media_s: float) -> bool:
        """Jump near `media_s` (to the keyframe before it); False when the file cannot seek."""
        stream = self._stream
        target = (media_s - self._loop_offset_s + (self._first_pts_s or 0.0)) / float(stream.time_base)
        try:
            self._container.seek(int(target), stream=stream, backward=True)
        except Exception as exc:
            logger.debug("camera file %s: cannot seek (%s); decoding through", self.path, exc)
            return False
        self._decoded = self._container.decode(stream)
        self._pending = None
        return True

    def _rewind(self, media_s: float) -> None:
        self._container.seek(0, stream=self._stream, backward=True)
        self._decoded = self._container.decode(self._stream)
        self._loop_offset_s = media_s
        self._pending = None

    def close(self) -> None:
        self._shown = self._pending = None
        self._decoded = None
        if self._container is not None:
            self._container.close()
            self._container = None


class ImageFolderSource:
    """Images from a folder (or one image), sorted by name, one per sample."""

    def __init__(self, path: Path, *, loop: bool = False) -> None:
        self.path = path
        self.loop = loop
        self._files: list[Path] = []
        self._index = 0

    def open(self) -> None:
        if self.path.is_dir():
            self._files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            self._files = [self.path]
        if not self._files:
            raise CameraError(
                f"camera folder {self.path} has no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
            )

    def frame_at(self, media_s: float) -> np.ndarray | None:
        import cv2

        for _ in range(len(self._files)):
            if self._index >= len(self._files):
                if not self.loop:
                    return None
                self._index = 0
            file = self._files[self._index]
            self._index += 1
            bgr = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if bgr is not None:
                return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            logger.warning("camera folder: skipping unreadable image %s", file)
        raise CameraError(f"camera folder {self.path}: none of its images can be read")

    def close(self) -> None:
        self._files = []
