"""The speaker: one output stream that stays open, plays each turn's audio and owns the playback clock.

The stream opens once and writes silence while idle, so the first syllable of a reply is never clipped by a
device waking up. Audio is placed on the turn's timeline (`AudioChunk.start_s`), resampled to the output rate,
and handed to the device block by block. The clock (`position_s`) counts the turn's samples that have reached
the speaker, corrected for the device's output latency; video frames follow it.

With no sound device (servers, CI, this machine) a virtual device paced by the monotonic clock takes its
place: the clock behaves the same, the audio just goes nowhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from digihuman.errors import MissingExtraError
from digihuman.media import AudioChunk

logger = logging.getLogger(__name__)

DEFAULT_RATE = 48000
# Chunks whose start lies this close to where the previous chunk ended are treated as one stream, so
# rounding in `start_s` never inserts a click of silence mid-word.
CONTIGUOUS_TOLERANCE_S = 1e-3
# How many finished turns keep answering `position_s` (the turn engine asks once more after a turn ends).
KEPT_TURNS = 8

# Fills `out` (float32 mono, one device block) in place; `heard_at` is the monotonic time at which
# `out[0]` reaches the speaker.
RenderFn = Callable[[np.ndarray, float], None]

_warned_no_device = False


class OutputDevice(Protocol):
    """Something that pulls blocks of samples in real time: a sound card or a virtual clock."""

    name: str

    def preferred_rate(self) -> int | None:
        """The device's native sample rate, or None when any rate will do."""
        ...

    def start(self, sample_rate: int, block_frames: int, render: RenderFn) -> None: ...

    def stop(self) -> None: ...


class PcmResampler:
    """Places one turn's audio chunks on a single timeline at one sample rate.

    Contiguous chunks stream through one libswresample context (via PyAV, already a core dependency), so
    chunk boundaries leave no seams. A chunk that starts later than the previous one ended gets silence in
    between; one that starts earlier has its overlapping head trimmed.
    """

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.end = 0  # samples emitted so far: the timeline index of the next sample
        self._resampler: Any = None
        self._in_rate = 0
        self._expected_start_s: float | None = None
        self._trim = 0  # output samples still to drop from the head of what comes next

    def add(self, chunk: AudioChunk) -> list[np.ndarray]:
        """The samples `chunk` adds to the timeline, in order (possibly none yet: the resampler buffers)."""
        pcm = np.asarray(chunk.pcm, dtype=np.float32).reshape(-1)
        out: list[np.ndarray] = []
        contiguous = (
            self._expected_start_s is not None
            and chunk.sample_rate == self._in_rate
            and abs(chunk.start_s - self._expected_start_s) <= CONTIGUOUS_TOLERANCE_S
        )
        if not contiguous:
            out += self.flush()
            target = max(0, round(chunk.start_s * self.rate))
            if target > self.end:
                out.append(np.zeros(target - self.end, np.float32))
                self.end = target
            self._trim = self.end - target
            self._in_rate = chunk.sample_rate
        self._expected_start_s = chunk.start_s + len(pcm) / chunk.sample_rate
        if len(pcm):
            out += self._emit(self._convert(pcm))
        return out

    def flush(self) -> list[np.ndarray]:
        """The resampler's buffered tail; call when no contiguous audio follows."""
        if self._resampler is None:
            return []
        tail = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(None)]
        self._resampler = None
        return self._emit(tail)

    def _convert(self, pcm: np.ndarray) -> list[np.ndarray]:
        if self._in_rate == self.rate:
            return [pcm]
        import av

        if self._resampler is None:
            self._resampler = av.AudioResampler(format="flt", layout="mono", rate=self.rate)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm[None, :]), format="flt", layout="mono")
        frame.sample_rate = self._in_rate
        return [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]

    def _emit(self, pieces: list[np.ndarray]) -> list[np.ndarray]:
        out = []
        for piece in pieces:
            if self._trim:
                cut = min(self._trim, len(piece))
                piece = piece[cut:]
                self._trim -= cut
            if len(piece):
                out.append(piece.astype(np.float32, copy=False))
                self.end += len(piece)
        return out


class VirtualOutput:
    """A speaker with no sound: a thread that pulls blocks at real-time pace from the monotonic clock."""

    name = "virtual (no sound)"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def preferred_rate(self) -> int | None:
        return None

    def start(self, sample_rate: int, block_frames: int, render: RenderFn) -> None:
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(sample_rate, block_frames, render), name="virtual-audio", daemon=True
        )
        self._thread.start()

    def _run(self, sample_rate: int, block_frames: int, render: RenderFn) -> None:
        block_s = block_frames / sample_rate
        buffer = np.zeros(block_frames, np.float32)
        deadline = time.monotonic()
        while not self._stop.is_set():
            # The virtual speaker has no latency: a block is "heard" from the moment it is due.
            render(buffer, deadline)
            deadline += block_s
            delay = deadline - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            elif delay < -0.25:
                # Starved for a long while (a stalled process): skip ahead, as a real device underruns.
                deadline = time.monotonic()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None


def import_sounddevice() -> Any:
    """sounddevice, or MissingExtraError. An OSError means the PortAudio library itself is missing."""
    try:
        import sounddevice
    except ImportError as exc:
        raise MissingExtraError("sounddevice", "window") from exc
    return sounddevice


class SoundDeviceOutput:
    """A sound card through sounddevice (PortAudio). `sd` can be a stand-in module for tests."""

    def __init__(self, device: int | str | None = None, sd: Any = None) -> None:
        self._sd = sd if sd is not None else import_sounddevice()
        self._device = device
        # Raises when there is no output device at all (PortAudioError or ValueError).
        info = self._sd.query_devices(device, kind="output")
        self.name = str(info["name"])
        self._default_rate = int(info["default_samplerate"] or 0)
        self._stream: Any = None

    def preferred_rate(self) -> int | None:
        return self._default_rate or None

    def start(self, sample_rate: int, block_frames: int, render: RenderFn) -> None:
        def callback(outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
            if status:
                logger.debug("audio output status: %s", status)
            # PortAudio tells when this buffer reaches the DAC, on its own clock; carry the delay over to
            # the monotonic clock. Some host APIs report zeros: fall back to the stream's nominal latency.
            delay = float(time_info.outputBufferDacTime) - float(time_info.currentTime)
            if not 0.0 <= delay < 1.0 or time_info.currentTime == 0:
                delay = float(stream.latency)
            render(outdata[:, 0], time.monotonic() + delay)

        stream = self._sd.OutputStream(
            samplerate=sample_rate,
            blocksize=block_frames,
            channels=1,
            dtype="float32",
            latency="low",
            device=self._device,
            callback=callback,
        )
        stream.start()
        self._stream = stream

    def stop(self) -> None:
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()
            self._stream = None


def open_default_device(device: int | str | None = None) -> OutputDevice:
    """The default sound card, or a virtual one (with one warning per process) when there is none."""
    try:
        return SoundDeviceOutput(device)
    except MissingExtraError:
        raise
    except OSError as exc:  # sounddevice raises OSError when libportaudio2 is not installed
        reason = f"{exc} (install the PortAudio library: apt-get install libportaudio2)"
    except Exception as exc:  # PortAudioError / ValueError: no output device
        reason = str(exc)
    _warn_no_device(reason)
    return VirtualOutput()


def _warn_no_device(reason: str) -> None:
    global _warned_no_device
    if not _warned_no_device:
        _warned_no_device = True
        logger.warning("no audio output device: playing without sound (%s)", reason)


@dataclass(slots=True)
class _Segment:
    """A run of one turn's samples handed to the device in one block."""

    heard_at: float
    start: int  # timeline index of its first sample
    count: int


@dataclass(eq=False)
class _Turn:
    turn_id: int
    timeline: PcmResampler
    pending: deque[np.ndarray] = field(default_factory=deque)
    pending_offset: int = 0  # samples of pending[0] already handed over
    handed: int = 0  # timeline index of the next sample to hand to the device
    segments: deque[_Segment] = field(default_factory=deque)
    finished: bool = False  # no more audio will come
    done: bool = False  # all of it is inside the device (or was cleared): nothing more to play
    heard_end: float = 0.0  # monotonic time at which the last of it is heard, once done
    waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = field(default_factory=list)


class AudioOutput:
    """Plays turns' audio on one always-open stream and reports how much of each turn was heard.

    Thread-safe: the device thread renders blocks while the event loop enqueues, clears and asks the
    clock. One turn plays at a time; beginning a new turn drops what is left of the previous one.
    """

    def __init__(
        self,
        device: OutputDevice | None = None,
        sample_rate: int | None = None,
        block_s: float = 0.01,
    ) -> None:
        self._device = device
        self._requested_rate = sample_rate
        self._block_s = block_s
        self.sample_rate = 0
        self._lock = threading.Lock()
        self._turns: dict[int, _Turn] = {}
        self._current: _Turn | None = None
        self._started = False
        # Told every block as it goes to the speaker (silence included): an echo canceller's reference.
        self.on_render: Callable[[np.ndarray, int], None] | None = None

    @property
    def device_name(self) -> str:
        return self._device.name if self._device is not None else "(not open)"

    @property
    def is_virtual(self) -> bool:
        return isinstance(self._device, VirtualOutput)

    def start(self) -> None:
        """Open the stream (once; later calls do nothing). It plays silence until a turn brings audio."""
        if self._started:
            return
        if self._device is None:
            self._device = open_default_device()
        import av  # noqa: F401  (the resampler's import is slow: pay it here, not in the first enqueue)

        self.sample_rate = self._requested_rate or self._device.preferred_rate() or DEFAULT_RATE
        block_frames = max(1, round(self.sample_rate * self._block_s))
        try:
            self._device.start(self.sample_rate, block_frames, self._render)
        except Exception as exc:
            if isinstance(self._device, VirtualOutput):
                raise
            # A card that is listed but will not open (busy, rate refused) is no reason to stop the show.
            _warn_no_device(f"{self._device.name}: {exc}")
            self._device = VirtualOutput()
            self._device.start(self.sample_rate, block_frames, self._render)
        self._started = True
        logger.info("audio output: %s at %d Hz", self._device.name, self.sample_rate)

    def close(self) -> None:
        if self._started and self._device is not None:
            self._device.stop()
        self._started = False
        with self._lock:
            for turn in self._turns.values():
                self._mark_done(turn, heard_end=0.0)

    # -- feeding -------------------------------------------------------------------------------------

    def begin_turn(self, turn_id: int) -> None:
        self.start()
        with self._lock:
            if self._current is not None and not self._current.done:
                logger.debug(
                    "turn %d superseded by turn %d: dropping its audio", self._current.turn_id, turn_id
                )
                self._clear_locked(self._current)
            turn = _Turn(turn_id, PcmResampler(self.sample_rate))
            self._turns[turn_id] = turn
            self._current = turn
            while len(self._turns) > KEPT_TURNS:
                del self._turns[next(iter(self._turns))]

    def enqueue(self, chunk: AudioChunk) -> None:
        """Queue a chunk of the current turn; chunks of any other turn are stale and dropped."""
        self.start()
        with self._lock:
            turn = self._current
            if turn is None or turn.turn_id != chunk.turn_id or turn.finished:
                return
        pieces = turn.timeline.add(chunk)  # resampling happens outside the lock: the device never waits
        with self._lock:
            if not turn.finished:
                turn.pending.extend(pieces)

    def finish_turn(self, turn_id: int) -> None:
        """No more audio will come for the turn; once the queue drains it counts as played."""
        with self._lock:
            turn = self._turns.get(turn_id)
            if turn is None or turn.finished:
                return
        tail = turn.timeline.flush()
        with self._lock:
            if turn.finished:
                return
            turn.pending.extend(tail)
            turn.finished = True
            self._finish_if_drained(turn)

    def clear(self, turn_id: int) -> float:
        """Drop the turn's queued audio now (barge-in); return the seconds of it that will have been heard.

        Takes effect at the next device block. Blocks already inside the device (its output latency) still
        play, so they count as heard.
        """
        with self._lock:
            turn = self._turns.get(turn_id)
            if turn is None:
                return 0.0
            self._clear_locked(turn)
            return turn.handed / self.sample_rate

    async def wait_played(self, turn_id: int) -> None:
        """Return once all of the turn's audio has been heard (or was cleared). Needs `finish_turn`."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            turn = self._turns.get(turn_id)
            if turn is None:
                return
            if turn.done:
                remaining_s = turn.heard_end - time.monotonic()
            else:
                turn.waiters.append((loop, future))
                remaining_s = None
        if remaining_s is None:
            await future
        elif remaining_s > 0:
            await asyncio.sleep(remaining_s)

    # -- the clock -----------------------------------------------------------------------------------

    def position_s(self, turn_id: int) -> float:
        """Seconds of the turn's timeline that have reached the speaker (0 for unknown turns)."""
        with self._lock:
            turn = self._turns.get(turn_id)
            if turn is None or not self.sample_rate:
                return 0.0
            return self._heard_samples(turn, time.monotonic()) / self.sample_rate

    def queued_s(self, turn_id: int) -> float:
        """Seconds of the turn waiting for the device (not yet handed over)."""
        with self._lock:
            turn = self._turns.get(turn_id)
            if turn is None or not self.sample_rate:
                return 0.0
            waiting = sum(len(p) for p in turn.pending) - turn.pending_offset
            return waiting / self.sample_rate

    def _heard_samples(self, turn: _Turn, now: float) -> int:
        # segments[0] is the block now playing (or the next to play); drop blocks that have finished.
        segments = turn.segments
        while len(segments) > 1 and segments[1].heard_at <= now:
            segments.popleft()
        if not segments:
            return turn.handed
        playing = segments[0]
        if playing.heard_at > now:
            return playing.start
        elapsed = round((now - playing.heard_at) * self.sample_rate)
        return playing.start + min(elapsed, playing.count)

    # -- the device side (runs on the device's thread) -----------------------------------------------

    def _render(self, out: np.ndarray, heard_at: float) -> None:
        with self._lock:
            filled = 0
            turn = self._current
            if turn is not None and not turn.done:
                filled = self._take(turn, out)
                if filled:
                    turn.segments.append(_Segment(heard_at, turn.handed, filled))
                    turn.handed += filled
                    self._heard_samples(turn, time.monotonic())  # prune blocks already played
                self._finish_if_drained(turn)
            out[filled:] = 0.0
        if self.on_render is not None:
            self.on_render(out.copy(), self.sample_rate)

    def _take(self, turn: _Turn, out: np.ndarray) -> int:
        filled = 0
        while filled < len(out) and turn.pending:
            head = turn.pending[0]
            n = min(len(out) - filled, len(head) - turn.pending_offset)
            out[filled : filled + n] = head[turn.pending_offset : turn.pending_offset + n]
            filled += n
            turn.pending_offset += n
            if turn.pending_offset == len(head):
                turn.pending.popleft()
                turn.pending_offset = 0
        return filled

    def _finish_if_drained(self, turn: _Turn) -> None:
        """A finished turn whose audio is all inside the device is done once its last block is heard."""
        if turn.finished and not turn.pending and not turn.done:
            last = turn.segments[-1] if turn.segments else None
            heard_end = last.heard_at + last.count / self.sample_rate if last else 0.0
            self._mark_done(turn, heard_end)

    def _clear_locked(self, turn: _Turn) -> None:
        turn.pending.clear()
        turn.pending_offset = 0
        turn.finished = True
        self._mark_done(turn, heard_end=0.0)

    def _mark_done(self, turn: _Turn, heard_end: float) -> None:
        """Wake the turn's waiters, at the moment its last sample is heard (the device runs ahead)."""
        turn.done = True
        turn.heard_end = heard_end
        delay = max(0.0, heard_end - time.monotonic())
        for loop, future in turn.waiters:
            # A closed event loop raises RuntimeError: nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(loop.call_later, delay, _resolve, future)
        turn.waiters.clear()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
