"""The built-in real-time face: a rigged portrait driven by visemes or audio, with idle life.

Per frame: mouth weights (from the utterance's phoneme timings or its audio), idle life at that moment
(blinks, breathing, head motion), one warp of the head region, the mouth interior painted in. Frames
are rendered in worker threads as soon as enough audio has arrived, a few milliseconds each.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from digihuman.face.life import IdleLife
from digihuman.face.renderer import FaceWeights, RigRenderer
from digihuman.face.rig import Rig
from digihuman.face.visemes import LoudnessScale, MouthShape, MouthTrack
from digihuman.media import AudioChunk, VideoFrame

logger = logging.getLogger(__name__)

# Speech nods the head a little with the voice's slow envelope: a face that talks without moving its
# head reads as a mask.
SPEECH_NOD = 0.25
# A photo with parted lips (a smile showing teeth) rests with its lips closed, as a silent mouth should;
# speaking parts them (over the first PART_LIPS_BY of the jaw range) before the jaw drops further.
PART_LIPS_BY = 0.3


class PortraitAnimator:
    """Implements the Face protocol (`digihuman.face.base.Face`) for a `Rig`."""

    name = "animator"
    realtime = True

    def __init__(
        self, rig: Rig, fps: int = 25, size: int = 512, threads: int = 1, seed: int | None = None
    ) -> None:
        self.rig = rig.resized(size)
        self.fps = fps
        self.size = size
        self.threads = max(1, threads)
        self._life = IdleLife(seed)
        self._scale = LoudnessScale()
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="animator")
        self._local = threading.local()
        # The life clock: the player's idle times pin it; utterances continue it from there.
        self._clock_lock = threading.Lock()
        self._clock_pin = (0.0, time.monotonic())
        self.rests_closed = self.rig.mouth_rests_open

    # --- low level ----------------------------------------------------------------------------------------

    def render(self, weights: FaceWeights, t_s: float | None = None) -> np.ndarray:
        """One RGB uint8 frame for `weights`; with `t_s`, idle life at that time is added on top."""
        if t_s is not None:
            weights = self._with_life(weights, t_s)
        renderer = getattr(self._local, "renderer", None)
        if renderer is None:
            renderer = self._local.renderer = RigRenderer(self.rig)
        return renderer.render(weights)

    def idle_frame(self, t_s: float) -> np.ndarray:
        """The face at rest at wall time `t_s` (seconds on the caller's clock)."""
        with self._clock_lock:
            self._clock_pin = (t_s, time.monotonic())
        return self.render(self.mouth_weights(MouthShape()), t_s)

    def life_time(self) -> float:
        """Now, on the life clock: the last idle time plus what has elapsed since."""
        with self._clock_lock:
            pinned_s, pinned_at = self._clock_pin
        return pinned_s + (time.monotonic() - pinned_at)

    # --- the Face protocol ----------------------------------------------------------------------------

    async def animate(
        self, audio: AsyncIterator[AudioChunk], *, life_start_s: float | None = None
    ) -> AsyncIterator[VideoFrame]:
        """Frames at `fps` covering the utterance, each yielded as soon as its audio is in.

        `life_start_s` places the utterance on the idle-life clock (default: now), so blinks and head
        motion carry on across speech and idle without a jump.
        """
        loop = asyncio.get_running_loop()
        track = MouthTrack(self.fps, self._scale)
        start_s = self.life_time() if life_start_s is None else life_start_s
        turn_id = 0
        in_flight: deque[tuple[int, Future[np.ndarray]]] = deque()

        async def drain(keep: int) -> AsyncIterator[VideoFrame]:
            while len(in_flight) > keep:
                index, future = in_flight.popleft()
                image = await asyncio.wrap_future(future)
                yield VideoFrame(image=image, pts_s=index / self.fps, turn_id=turn_id)

        async def schedule(ready: int) -> None:
            count = ready - track.next_frame
            if count <= 0:
                return
            first = track.next_frame
            # Feature extraction is sequential (filters) but cheap; it still stays off the loop.
            shapes = await loop.run_in_executor(self._pool, track.next_shapes, count)
            for offset, (shape, emphasis) in enumerate(shapes):
                index = first + offset
                weights = self.mouth_weights(shape, nod=SPEECH_NOD * emphasis)
                future = self._pool.submit(self.render, weights, start_s + index / self.fps)
                in_flight.append((index, future))

        try:
            async for chunk in audio:
                turn_id = chunk.turn_id
                track.add_audio(chunk.pcm, chunk.sample_rate, chunk.start_s)
                track.add_phonemes(chunk.phonemes)
                await schedule(track.ready_frames())
                async for frame in drain(keep=self.threads - 1):
                    yield frame
            track.finish()
            await schedule(track.ready_frames())
            async for frame in drain(keep=0):
                yield frame
        finally:
            for _, future in in_flight:
                future.cancel()

    async def aclose(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def mouth_weights(self, shape: MouthShape, nod: float = 0.0) -> FaceWeights:
        """Weights for a mouth shape on this portrait (closing a photo's parted lips at rest)."""
        closed = shape.closed
        if self.rests_closed:
            closed = max(closed, 1.0 - shape.jaw / PART_LIPS_BY)
        return FaceWeights(
            jaw=shape.jaw, wide=shape.wide, pucker=shape.pucker, closed=min(closed, 1.0), nod=nod
        )

    # --- internals --------------------------------------------------------------------------------------

    def _with_life(self, weights: FaceWeights, t_s: float) -> FaceWeights:
        roll, nod, turn, breath = self._life.head(t_s)
        return FaceWeights(
            jaw=weights.jaw,
            wide=weights.wide,
            pucker=weights.pucker,
            closed=weights.closed,
            blink=max(weights.blink, self._life.blink(t_s)),
            roll=weights.roll + roll,
            nod=weights.nod + nod,
            turn=weights.turn + turn,
            breath=weights.breath + breath,
        )
