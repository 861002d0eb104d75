"""The MP4 recorder: a Sink that writes one turn's frames and audio to an H.264 + AAC file.

Timestamps come from the turn's timeline, so the file is laid out as the turn would play: gaps in the
audio become silence, missing frames repeat the last one, and the shorter stream is padded so audio and
video end together. Encoding runs on a worker thread; the file appears at its path only when complete
(see destination.py: a temporary file renamed into place, or copied into a device or FIFO), so a cancelled,
failed or empty recording leaves the path as it was.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import math
import queue
import threading
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from digihuman.audio.player import PcmResampler
from digihuman.media import AudioChunk, VideoFrame
from digihuman.output.destination import OutputPathError, check_folder, check_writable, plan

__all__ = ["Mp4Recorder", "OutputPathError", "TurnRecorder", "check_writable"]

logger = logging.getLogger(__name__)

AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
DEFAULT_AAC_RATE = 48000
QUEUE_LIMIT = 64  # items between the event loop and the encoder: bounds memory if encoding falls behind


class _Mp4Writer:
    """The encoder proper; lives entirely on the worker thread."""

    def __init__(self, tmp_path: Path, fps: int, size: int, sample_rate: int | None, crf: int, preset: str):
        self.tmp_path = tmp_path
        self.fps = fps
        self.size = size
        self.requested_rate = sample_rate
        self.crf = crf
        self.preset = preset
        self.container: Any = None
        self.video: Any = None
        self.audio: Any = None
        self.timeline: PcmResampler | None = None
        self.audio_samples = 0
        self.next_frame_index = 0
        self.last_frame: Any = None  # the last encoded picture, already yuv420p at the output size
        self.received = False  # any audio or frame at all: an empty turn publishes nothing
        self.early_frames: list[VideoFrame] = []  # frames that came before the audio told us its rate

    @property
    def rate(self) -> int:
        return self.timeline.rate if self.timeline is not None else 0

    def add_audio(self, chunk: AudioChunk) -> None:
        self.received = self.received or len(chunk.pcm) > 0
        if self.container is None:
            rate = self.requested_rate or (
                chunk.sample_rate if chunk.sample_rate in AAC_RATES else DEFAULT_AAC_RATE
            )
            self._open(rate)
        assert self.timeline is not None
        for piece in self.timeline.add(chunk):
            self._encode_audio(piece)

    def add_frame(self, frame: VideoFrame) -> None:
        self.received = True
        if self.container is None:
            # Hold a second of frames for the first audio chunk to fix the AAC rate, then stop waiting.
            self.early_frames.append(frame)
            if len(self.early_frames) <= self.fps:
                return
            self._open(self.requested_rate or DEFAULT_AAC_RATE)
            return
        self._encode_frame(frame)

    def finish(self) -> None:
        """Pad the shorter stream so both end together, flush the encoders and close the file."""
        if self.container is None:
            self._open(self.requested_rate or DEFAULT_AAC_RATE)
        assert self.timeline is not None
        for piece in self.timeline.flush():
            self._encode_audio(piece)
        if self.last_frame is None:  # a turn with sound but no face: black picture
            black = np.zeros((self.size, self.size, 3), np.uint8)
            self._encode_frame(VideoFrame(black, 0.0))
        audio_s = self.audio_samples / self.rate
        total_frames = max(self.next_frame_index, math.ceil(audio_s * self.fps - 1e-9))
        self._repeat_last_frame_until(total_frames)
        missing_audio = round(total_frames / self.fps * self.rate) - self.audio_samples
        if missing_audio > 0:
            self._encode_audio(np.zeros(missing_audio, np.float32))
        for packet in self.video.encode(None):
            self.container.mux(packet)
        for packet in self.audio.encode(None):
            self.container.mux(packet)
        self.container.close()
        self.container = None

    def abort(self) -> None:
        if self.container is not None:
            try:
                self.container.close()
            except Exception:  # already failing: the temporary file is deleted anyway
                logger.debug("closing an aborted recording failed", exc_info=True)
            self.container = None

    def _open(self, rate: int) -> None:
        import av

        self.container = av.open(str(self.tmp_path), "w", format="mp4", options={"movflags": "+faststart"})
        self.video = self.container.add_stream(
            "libx264", rate=self.fps, options={"crf": str(self.crf), "preset": self.preset}
        )
        self.video.width = self.size
        self.video.height = self.size
        self.video.pix_fmt = "yuv420p"
        self.audio = self.container.add_stream("aac", rate=rate, layout="mono")
        self.timeline = PcmResampler(rate)
        early, self.early_frames = self.early_frames, []
        for frame in early:
            self._encode_frame(frame)

    def _encode_audio(self, pcm: np.ndarray) -> None:
        import av

        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm[None, :]), format="flt", layout="mono")
        frame.sample_rate = self.rate
        frame.pts = self.audio_samples
        frame.time_base = Fraction(1, self.rate)
        self.audio_samples += len(pcm)
        for packet in self.audio.encode(frame):
            self.container.mux(packet)

    def _encode_frame(self, frame: VideoFrame) -> None:
        import av

        index = round(frame.pts_s * self.fps)
        if index < self.next_frame_index:
            return  # late or duplicate: that slot is already in the file
        picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame.image[..., :3]), format="rgb24")
        picture = picture.reformat(width=self.size, height=self.size, format="yuv420p")
        if self.last_frame is None:
            self.last_frame = picture  # nothing came before the first frame: it stands in for the start
        self._repeat_last_frame_until(index)
        self.last_frame = picture
        self._encode_picture(picture)

    def _repeat_last_frame_until(self, index: int) -> None:
        while self.next_frame_index < index:
            self._encode_picture(self.last_frame)

    def _encode_picture(self, picture: Any) -> None:
        picture.pts = self.next_frame_index
        picture.time_base = Fraction(1, self.fps)
        self.next_frame_index += 1
        for packet in self.video.encode(picture):
            self.container.mux(packet)


class Mp4Recorder:
    """A Sink that records one turn to `path` (H.264 yuv420p + AAC mono, faststart).

    With `hold=True`, end_turn finishes the file but publishes it only on `commit()`: the caller decides
    once it knows the turn succeeded (a failed `say` must not overwrite a good file), and aclose()
    discards an uncommitted one.
    """

    def __init__(
        self,
        path: Path | str,
        fps: int = 25,
        size: int = 512,
        sample_rate: int | None = None,
        crf: int = 21,
        preset: str = "veryfast",
        hold: bool = False,
    ) -> None:
        self._destination = plan(path)
        self.path = self._destination.path
        self.hold = hold
        self.published = False  # the file is in place
        self._held: Path | None = None  # a finished temporary file waiting for commit()
        self.fps = fps
        self.size = size
        self.sample_rate = sample_rate
        self._crf = crf
        self._preset = preset
        self._turn_id: int | None = None
        self._state = "idle"  # idle -> recording -> ended | cancelled
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=QUEUE_LIMIT)
        self._cancelled = threading.Event()
        self._result: concurrent.futures.Future[Path] = concurrent.futures.Future()
        self._worker: threading.Thread | None = None
        self._written_s = 0.0
        self.encoded_frames = 0

    # -- Sink ----------------------------------------------------------------------------------------

    def begin_turn(self, turn_id: int) -> None:
        if self._state != "idle":
            raise RuntimeError("an Mp4Recorder records one turn; make a new one for the next turn")
        tmp_path = self._destination.prepare()
        self._turn_id = turn_id
        self._state = "recording"
        self._worker = threading.Thread(target=self._run, args=(tmp_path,), name="mp4-recorder", daemon=True)
        self._worker.start()

    async def write_audio(self, chunk: AudioChunk) -> None:
        await self._submit("audio", chunk, chunk.turn_id)

    async def write_frame(self, frame: VideoFrame) -> None:
        await self._submit("frame", frame, frame.turn_id)

    async def end_turn(self, turn_id: int) -> None:
        """Finish the file and move it into place; raises what went wrong while encoding."""
        if turn_id != self._turn_id or self._state != "recording":
            return
        await self._finish()

    def cancel_turn(self, turn_id: int) -> float:
        if turn_id == self._turn_id and self._state == "recording":
            self._state = "cancelled"
            self._cancelled.set()
            # When the queue is full, the worker sees the flag before its next item anyway.
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(("cancel", None))
        return self._written_s

    def played_s(self, turn_id: int) -> float:
        return self._written_s if turn_id == self._turn_id else 0.0

    async def commit(self) -> None:
        """Publish a file finished under `hold=True` (a no-op when there is none, e.g. an empty turn)."""
        held, self._held = self._held, None
        if held is not None:
            await asyncio.to_thread(self._destination.publish, held)
            self.published = True
            logger.info("recorded %s (%.2f s)", self.path, self._written_s)

    async def aclose(self) -> None:
        """Save a turn that was never ended (what was written so far); wait for the worker to stop.

        A file held for commit() that never came is discarded.
        """
        try:
            if self._state == "recording":
                await self._finish()
        finally:
            if self._worker is not None:
                await asyncio.to_thread(self._worker.join)
                self._worker = None
            held, self._held = self._held, None
            if held is not None:
                self._destination.discard(held)

    # -- feeding the worker --------------------------------------------------------------------------

    async def _submit(self, kind: str, item: Any, turn_id: int) -> None:
        if self._state == "idle":
            self.begin_turn(turn_id)  # tolerate a caller that skipped begin_turn
        if self._state != "recording" or turn_id != self._turn_id:
            return  # stale chunk, or the turn is over
        if self._result.done():
            self._result.result()  # the encoder failed: raise that now rather than at the end
        try:
            self._queue.put_nowait((kind, item))
        except queue.Full:
            await asyncio.to_thread(self._put_waiting, (kind, item))

    def _put_waiting(self, item: tuple[str, Any]) -> None:
        # Waits for room, but never forever: a worker that stopped (cancel, error) no longer drains.
        while not self._result.done() and not self._cancelled.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    async def _finish(self) -> None:
        self._state = "ended"
        await asyncio.to_thread(self._put_waiting, ("end", None))
        await asyncio.wrap_future(self._result)

    # -- the worker thread ---------------------------------------------------------------------------

    def _run(self, tmp_path: Path) -> None:
        writer = _Mp4Writer(tmp_path, self.fps, self.size, self.sample_rate, self._crf, self._preset)
        try:
            while True:
                kind, item = self._queue.get()
                if self._cancelled.is_set() or kind == "cancel":
                    raise _Cancelled
                if kind == "audio":
                    writer.add_audio(item)
                    self._written_s = writer.audio_samples / writer.rate
                elif kind == "frame":
                    writer.add_frame(item)
                    self.encoded_frames = writer.next_frame_index
                elif kind == "end":
                    if not writer.received:
                        raise _Cancelled  # nothing was said (the voice failed first): no 40 ms stub
                    writer.finish()
                    self._written_s = writer.audio_samples / writer.rate
                    self.encoded_frames = writer.next_frame_index
                    if self.hold:
                        self._held = tmp_path
                    else:
                        self._destination.publish(tmp_path)
                        self.published = True
                        logger.info("recorded %s (%.2f s)", self.path, self._written_s)
                    self._result.set_result(self.path)
                    return
        except _Cancelled:
            logger.debug("recording to %s cancelled or empty: nothing written", self.path)
            self._result.set_result(self.path)
        except OSError as exc:
            self._result.set_exception(
                OutputPathError(f"cannot write the recording {self.path}: {exc.strerror or exc}")
            )
        except BaseException as exc:
            self._result.set_exception(exc)
        writer.abort()
        self._destination.discard(tmp_path)


class _Cancelled(Exception):
    """The turn was cancelled: stop encoding and delete the temporary file."""


class TurnRecorder:
    """A Sink for `--record DIR`: each turn becomes `DIR/NNN.mp4` (one Mp4Recorder per turn)."""

    def __init__(self, directory: Path | str, fps: int = 25, size: int = 512) -> None:
        # Checked now, created with the first turn: a session that fails to start leaves no folder.
        self.directory = check_folder(directory)
        self.fps = fps
        self.size = size
        self._current: Mp4Recorder | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._heard = False  # the current turn has audio

    def path_for(self, turn_id: int) -> Path:
        return self.directory / f"{turn_id:03d}.mp4"

    def begin_turn(self, turn_id: int) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputPathError(f"cannot create record folder {self.directory}: {exc.strerror}") from None
        self._current = Mp4Recorder(self.path_for(turn_id), fps=self.fps, size=self.size)
        self._current.begin_turn(turn_id)
        self._heard = False

    async def write_audio(self, chunk: AudioChunk) -> None:
        if self._current is not None:
            self._heard = self._heard or len(chunk.pcm) > 0
            await self._current.write_audio(chunk)

    async def write_frame(self, frame: VideoFrame) -> None:
        if self._current is not None:
            await self._current.write_frame(frame)

    async def end_turn(self, turn_id: int) -> None:
        recorder, self._current = self._current, None
        if recorder is None:
            return
        if self._heard:
            await recorder.end_turn(turn_id)
        else:  # nothing was spoken: leave no empty recording behind
            recorder.cancel_turn(turn_id)
        await recorder.aclose()

    def cancel_turn(self, turn_id: int) -> float:
        # A cut turn is still saved, up to the cut: the record shows what happened.
        recorder, self._current = self._current, None
        if recorder is None:
            return 0.0
        written_s = recorder.played_s(turn_id)
        task = asyncio.get_running_loop().create_task(self._save(recorder, turn_id))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        return written_s

    @staticmethod
    async def _save(recorder: Mp4Recorder, turn_id: int) -> None:
        try:
            await recorder.end_turn(turn_id)
            await recorder.aclose()
        except Exception as exc:
            logger.warning("could not save the cut turn's recording %s: %s", recorder.path, exc)

    def played_s(self, turn_id: int) -> float:
        return self._current.played_s(turn_id) if self._current is not None else 0.0

    async def aclose(self) -> None:
        recorder, self._current = self._current, None
        if recorder is not None:
            await recorder.aclose()
        if self._closing:
            await asyncio.wait(self._closing)
