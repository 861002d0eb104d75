"""Microphone-side audio in: 16 kHz mono float32 frames of 512 samples (32 ms, Silero VAD's chunk size).

Three sources share one interface, an async iterator of `AudioFrame`s:
- `DeviceSource`: a sound card through sounddevice (its callback thread pushes into the event loop);
- `FileSource`: WAV, FLAC, MP3, OGG, ... decoded in memory by PyAV, at real-time pace or as fast as possible
  (`MemorySource` does the same for PCM already in memory);
- `PushSource`: PCM pushed by someone else (the browser's microphone, a test).

A frame's `t_s` is its start on the stream's own timeline (samples so far / 16 kHz), so timings are exact
whatever the pace; `at` is the loop-clock time it arrived, for latency metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from digihuman.errors import BackendError, MissingExtraError, UserError

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
FRAME_SAMPLES = 512
FRAME_S = FRAME_SAMPLES / SAMPLE_RATE


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """512 float32 samples at 16 kHz; `t_s` is where the first one sits on the stream's timeline."""

    samples: np.ndarray
    t_s: float
    at: float = 0.0  # loop-clock time at which the frame became available

    @property
    def end_s(self) -> float:
        return self.t_s + len(self.samples) / SAMPLE_RATE


class AudioSource(Protocol):
    """An async iterator of frames; `close()` ends it (the iterator then stops)."""

    def frames(self) -> AsyncIterator[AudioFrame]: ...

    async def close(self) -> None: ...


class Framer:
    """Cuts PCM of any length and rate into 16 kHz frames of exactly 512 samples, numbering them."""

    def __init__(self, sample_rate: int = SAMPLE_RATE) -> None:
        self.sample_rate = sample_rate
        self._resampler: Any = None
        self._pending = np.zeros(0, np.float32)
        self._samples_out = 0

    def feed(self, pcm: np.ndarray, at: float = 0.0) -> list[AudioFrame]:
        pcm = _mono_float(pcm)
        if self.sample_rate != SAMPLE_RATE:
            pcm = self._resample(pcm)
        self._pending = np.concatenate([self._pending, pcm]) if len(self._pending) else pcm
        count = len(self._pending) // FRAME_SAMPLES
        frames = []
        for i in range(count):
            samples = self._pending[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES].copy()
            frames.append(AudioFrame(samples, self._samples_out / SAMPLE_RATE, at))
            self._samples_out += FRAME_SAMPLES
        self._pending = self._pending[count * FRAME_SAMPLES :]
        return frames

    def flush(self, at: float = 0.0) -> list[AudioFrame]:
        """The tail, zero-padded to a whole frame (so the last words of a file are not dropped)."""
        frames: list[AudioFrame] = []
        if self._resampler is not None:
            tail = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(None)]
            self._resampler = None
            rate, self.sample_rate = self.sample_rate, SAMPLE_RATE  # the tail is 16 kHz already
            frames = self.feed(np.concatenate(tail), at) if tail else []
            self.sample_rate = rate
        if not len(self._pending):
            return frames
        padded = np.zeros(FRAME_SAMPLES, np.float32)
        padded[: len(self._pending)] = self._pending
        self._pending = np.zeros(0, np.float32)
        frames.append(AudioFrame(padded, self._samples_out / SAMPLE_RATE, at))
        self._samples_out += FRAME_SAMPLES
        return frames

    def _resample(self, pcm: np.ndarray) -> np.ndarray:
        import av

        if self._resampler is None:
            self._resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm[None, :]), format="flt", layout="mono")
        frame.sample_rate = self.sample_rate
        out = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]
        return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)


def _mono_float(pcm: np.ndarray) -> np.ndarray:
    pcm = np.asarray(pcm)
    if pcm.dtype == np.int16:
        pcm = pcm.astype(np.float32) / 32768.0
    if pcm.ndim == 2:
        pcm = pcm.mean(axis=1)
    return np.ascontiguousarray(pcm, dtype=np.float32)


def _now() -> float:
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


class PushSource:
    """Frames from PCM that a producer pushes (the browser, a device callback, a test).

    `push` may be called from any thread; `end()` lets the iterator finish after the pushed audio.
    """

    def __init__(self, sample_rate: int = SAMPLE_RATE, max_queued_s: float = 30.0) -> None:
        self._framer = Framer(sample_rate)
        self._queue: asyncio.Queue[AudioFrame | None] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._max_frames = int(max_queued_s / FRAME_S)
        self.dropped_frames = 0
        self._ended = False

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop that iterates; needed before `push` is called from another thread."""
        self._loop = loop

    def push(self, pcm: np.ndarray) -> None:
        loop = self._loop
        if loop is None:
            self._loop = loop = asyncio.get_running_loop()
        frames = self._framer.feed(pcm)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._put(frames)
        else:
            loop.call_soon_threadsafe(self._put, frames)

    def end(self) -> None:
        """No more audio: the iterator yields what is queued (and the padded tail), then stops."""
        if self._ended:
            return
        self._ended = True
        tail = self._framer.flush()
        loop = self._loop
        if loop is None:
            self._put(tail)
            self._queue.put_nowait(None)
            return
        loop.call_soon_threadsafe(self._put, tail)
        loop.call_soon_threadsafe(self._queue.put_nowait, None)

    def _put(self, frames: list[AudioFrame]) -> None:
        at = _now()
        for frame in frames:
            # A stalled consumer must not grow memory without bound: drop the oldest audio.
            if self._queue.qsize() >= self._max_frames:
                with contextlib.suppress(asyncio.QueueEmpty):
                    self._queue.get_nowait()
                    self.dropped_frames += 1
            self._queue.put_nowait(AudioFrame(frame.samples, frame.t_s, at))

    async def frames(self) -> AsyncIterator[AudioFrame]:
        self._loop = self._loop or asyncio.get_running_loop()
        while (frame := await self._queue.get()) is not None:
            yield frame

    async def close(self) -> None:
        self.end()


def decode_file(path: str | Path) -> np.ndarray:
    """A whole audio file as 16 kHz mono float32, in memory. UserError when unreadable or empty."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such audio file")
    import av

    pieces: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise UserError(f"{path} has no audio track: give a WAV, FLAC, MP3 or OGG file")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            for frame in container.decode(audio=0):
                pieces.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
            pieces.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    except av.error.FFmpegError as exc:
        reason = exc.strerror or exc
        msg = f"{path} is not a readable audio file ({reason}): use WAV, FLAC, MP3 or OGG"
        raise UserError(msg) from None
    pcm = np.concatenate(pieces).astype(np.float32) if pieces else np.zeros(0, np.float32)
    if len(pcm) < SAMPLE_RATE // 100:
        raise UserError(f"{path} contains no audio (it is empty)")
    return pcm


class MemorySource:
    """16 kHz PCM already in memory as frames: at real-time pace (like a microphone) or, with
    `realtime=False`, as fast as the consumer takes them (each frame's `at` is when it was handed over)."""

    def __init__(self, pcm: np.ndarray, realtime: bool = True, loop_forever: bool = False) -> None:
        self.pcm = _mono_float(pcm)
        self.realtime = realtime
        self.loop_forever = loop_forever
        self._closed = asyncio.Event()

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / SAMPLE_RATE

    async def frames(self) -> AsyncIterator[AudioFrame]:
        framer = Framer()
        chunks = [*framer.feed(self.pcm), *framer.flush()]
        loop = asyncio.get_running_loop()
        started = loop.time()
        offset = 0.0
        while True:
            for chunk in chunks:
                if self._closed.is_set():
                    return
                t_s = offset + chunk.t_s
                if self.realtime:
                    # Paced on the stream timeline: a frame is available once its last sample was "heard".
                    if (wait := started + t_s + FRAME_S - loop.time()) > 0:
                        await asyncio.sleep(wait)
                else:
                    await asyncio.sleep(0)  # let other tasks run between frames
                yield AudioFrame(chunk.samples, t_s, loop.time())
            if not self.loop_forever:
                return
            offset += len(chunks) * FRAME_S

    async def close(self) -> None:
        self._closed.set()


class FileSource(MemorySource):
    """An audio file, decoded into memory up front (a bad file fails before anything starts)."""

    def __init__(self, path: str | Path, realtime: bool = True, loop_forever: bool = False) -> None:
        self.path = Path(path)
        super().__init__(decode_file(self.path), realtime, loop_forever)


class DeviceSource:
    """A microphone through sounddevice; frames arrive from its callback thread through a PushSource."""

    def __init__(self, device: int | str | None = None, block_ms: int = 32) -> None:
        try:
            import sounddevice as sd
        except (ImportError, OSError):
            raise MissingExtraError("sounddevice", "window") from None
        self._sd = sd
        self.device = _input_device(sd, device)
        info = sd.query_devices(self.device)
        self.name = str(info["name"])
        # Ask for 16 kHz; a device that cannot do it runs at its own rate and the framer resamples.
        try:
            sd.check_input_settings(device=self.device, samplerate=SAMPLE_RATE, channels=1, dtype="float32")
            self.rate = SAMPLE_RATE
        except Exception:
            self.rate = int(info["default_samplerate"])
        self._push = PushSource(self.rate)
        self._block = int(self.rate * block_ms / 1000)
        self._stream: Any = None

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if status:
            logger.debug("microphone: %s", status)
        self._push.push(indata[:, 0].copy())

    async def frames(self) -> AsyncIterator[AudioFrame]:
        self._push.bind(asyncio.get_running_loop())
        try:
            self._stream = self._sd.InputStream(
                device=self.device,
                samplerate=self.rate,
                channels=1,
                dtype="float32",
                blocksize=self._block,
                callback=self._callback,
            )
            self._stream.start()
        except Exception as exc:
            raise BackendError(f"cannot open microphone '{self.name}': {exc}") from None
        try:
            async for frame in self._push.frames():
                yield frame
        finally:
            await self.close()

    async def close(self) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            await asyncio.to_thread(_stop_stream, stream)
        self._push.end()


def _stop_stream(stream: Any) -> None:
    with contextlib.suppress(Exception):
        stream.stop()
    with contextlib.suppress(Exception):
        stream.close()


def _input_device(sd: Any, device: int | str | None) -> int:
    """The index of the requested (or default) input device; a UserError listing the inputs otherwise."""
    try:
        devices = list(sd.query_devices())
    except Exception:
        devices = []
    inputs = [(i, d) for i, d in enumerate(devices) if d.get("max_input_channels", 0) > 0]
    listing = ", ".join(f"{i}: {d['name']}" for i, d in inputs) or "none"
    hint = f"input devices: {listing}; or use --mic FILE"
    if not inputs:
        raise UserError(f"no microphone found ({hint.replace('input devices: none; or use', 'use')})")
    if device is None:
        default = sd.default.device[0] if isinstance(sd.default.device, (list, tuple)) else sd.default.device
        if isinstance(default, int) and any(i == default for i, _ in inputs):
            return default
        return inputs[0][0]
    if isinstance(device, int) or device.isdigit():  # device: int | str here
        index = int(device)
        if any(i == index for i, _ in inputs):
            return index
        raise UserError(f"microphone {index} is not an input device ({hint})")
    matches = [i for i, d in inputs if str(device).lower() in str(d["name"]).lower()]
    if not matches:
        raise UserError(f"no microphone named '{device}' ({hint})")
    return matches[0]


def open_source(spec: str | int | None, realtime: bool = True) -> AudioSource:
    """A device index or name, or an audio file path (played at real-time pace unless realtime=False)."""
    if isinstance(spec, str) and not spec.isdigit():
        candidate = Path(spec).expanduser()
        if candidate.exists() or candidate.suffix:
            return FileSource(candidate, realtime=realtime)
    return DeviceSource(spec)
