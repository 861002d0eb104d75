from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import AsyncIterator

import numpy as np
import pytest

from digihuman.face.animator import PortraitAnimator
from digihuman.face.bench import speech_like_audio
from digihuman.face.life import BLINK_DURATION_S, IdleLife
from digihuman.face.renderer import FaceWeights
from digihuman.face.rig import Rig
from digihuman.face.visemes import MouthShape
from digihuman.media import AudioChunk, VideoFrame

RATE = 16000


async def stream(pcm: np.ndarray, chunk_s: float = 0.2, turn_id: int = 7) -> AsyncIterator[AudioChunk]:
    step = int(chunk_s * RATE)
    for start in range(0, len(pcm), step):
        yield AudioChunk(
            pcm=pcm[start : start + step], sample_rate=RATE, start_s=start / RATE, turn_id=turn_id
        )


async def animate(animator: PortraitAnimator, pcm: np.ndarray) -> list[VideoFrame]:
    return [frame async for frame in animator.animate(stream(pcm))]


@pytest.fixture
def animator(rig: Rig) -> PortraitAnimator:
    return PortraitAnimator(rig, seed=3)


def test_protocol_attributes(animator: PortraitAnimator) -> None:
    assert animator.name == "animator" and animator.realtime is True
    assert animator.fps == 25 and animator.size == 512


@pytest.mark.parametrize("seconds", [1.37, 2.0, 0.03])
async def test_frames_cover_the_audio_at_25_fps(animator: PortraitAnimator, seconds: float) -> None:
    frames = await animate(animator, speech_like_audio(seconds))
    assert len(frames) == math.ceil(seconds * 25 - 1e-6)
    assert [f.pts_s for f in frames] == pytest.approx([i / 25 for i in range(len(frames))])
    for frame in frames:
        assert frame.image.shape == (512, 512, 3) and frame.image.dtype == np.uint8
        assert frame.turn_id == 7
    assert len({id(f.image) for f in frames}) == len(frames)  # every frame is its own array


async def test_frames_stream_before_the_audio_ends(animator: PortraitAnimator) -> None:
    pcm = speech_like_audio(3.0)
    fed = 0

    async def slow_chunks() -> AsyncIterator[AudioChunk]:
        nonlocal fed
        async for chunk in stream(pcm):
            fed += 1
            yield chunk
            await asyncio.sleep(0.01)

    first_frame_after: int | None = None
    count = 0
    async for _ in animator.animate(slow_chunks()):
        if first_frame_after is None:
            first_frame_after = fed
        count += 1
    assert count == 75
    assert first_frame_after is not None and first_frame_after <= 2  # of 15 chunks


async def test_rendering_runs_in_worker_threads(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    animator = PortraitAnimator(rig, threads=2, seed=0)
    seen: set[str] = set()
    original = animator.render

    def spy(weights: FaceWeights, t_s: float | None = None) -> np.ndarray:
        seen.add(threading.current_thread().name)
        return original(weights, t_s)

    monkeypatch.setattr(animator, "render", spy)
    frames = await animate(animator, speech_like_audio(1.0))
    assert len(frames) == 25
    assert seen and all(name.startswith("animator") for name in seen)
    assert threading.current_thread().name not in seen
    await animator.aclose()


async def test_other_sizes(rig: Rig) -> None:
    animator = PortraitAnimator(rig, size=256, seed=0)
    frames = await animate(animator, speech_like_audio(0.4))
    assert frames[0].image.shape == (256, 256, 3)
    assert animator.idle_frame(1.0).shape == (256, 256, 3)


def test_blinks_are_natural_and_seeded() -> None:
    life = IdleLife(seed=11)
    times = np.arange(0, 60, 0.01)
    closed = np.array([life.blink(t) for t in times]) > 0.95
    starts = times[1:][closed[1:] & ~closed[:-1]]
    gaps = np.diff(starts)
    assert 10 <= len(starts) <= 30  # every 2-6 s, some doubled
    assert gaps.min() > 0.2 and gaps.max() < 6.5
    assert ((gaps > 1.9) & (gaps < 6.5)).mean() > 0.7
    lids = np.array([life.blink(t) for t in times])
    durations = [((times >= s) & (times < s + 0.5) & (lids > 0)).sum() * 0.01 for s in starts[:3]]
    assert all(0.1 <= d <= BLINK_DURATION_S + 0.02 for d in durations)
    again = IdleLife(seed=11)
    assert [again.blink(t) for t in times[::50]] == [life.blink(t) for t in times[::50]]


def test_idle_face_blinks(animator: PortraitAnimator, rig: Rig) -> None:
    """Rendered idle frames at 25 fps show blinks: the iris vanishes, then returns."""
    from digihuman.face import landmarks as lmk

    iris = rig.landmarks[list(lmk.LEFT_IRIS)].mean(axis=0).astype(int)
    cx, cy = int(iris[0]), int(iris[1])
    dark = []
    for i in range(25 * 8):
        frame = animator.idle_frame(i / 25)
        dark.append(int((frame[cy - 4 : cy + 4, cx - 5 : cx + 5].mean(axis=2) < 70).sum()))
    dark_arr = np.array(dark)
    open_level = np.median(dark_arr)
    assert open_level > 15
    shut = dark_arr < 0.2 * open_level
    assert shut.sum() >= 2  # at least two closed frames over 8 s
    assert shut.mean() < 0.1  # and mostly open


def test_idle_motion_is_smooth(animator: PortraitAnimator, rig: Rig) -> None:
    """Idle frames change slowly and steadily: small frame-to-frame steps, no jitter."""
    life = IdleLife(seed=3)
    x0, y0, x1, y1 = (int(v) for v in rig.head.box)
    steps, frames = [], []
    for i in range(25 * 6):
        t = i / 25
        frame = animator.idle_frame(t)[y0:y1, x0:x1].astype(np.float32)
        blinking = max(life.blink(t), life.blink(t - 0.04)) > 0
        if frames and not blinking:
            steps.append(float(np.abs(frame - frames[-1]).mean()))
        frames.append(frame)
    assert max(steps) < 1.0  # grey levels per pixel, between consecutive frames
    assert np.abs(frames[0] - frames[75]).mean() > 0.3  # yet the head does move over 3 s
    # Jitter would show as steps far above their neighbours.
    steps_arr = np.array(steps)
    assert np.abs(np.diff(steps_arr)).max() < 0.4


async def test_life_continues_across_speech(animator: PortraitAnimator) -> None:
    """An utterance starting at life time t shows the same head pose as an idle frame at t."""
    idle = animator.idle_frame(10.0)
    frames = [f async for f in animator.animate(stream(np.zeros(RATE // 2, np.float32)), life_start_s=10.0)]
    assert np.abs(frames[0].image.astype(int) - idle).mean() < 0.05


def test_parted_lips_rest_closed(animator: PortraitAnimator) -> None:
    assert animator.rests_closed
    assert animator.mouth_weights(MouthShape()).closed == 1.0
    assert animator.mouth_weights(MouthShape(jaw=0.6)).closed == 0.0
    assert 0.0 < animator.mouth_weights(MouthShape(jaw=0.15)).closed < 1.0


async def test_background_stays_still_over_speech_and_idle(animator: PortraitAnimator, rig: Rig) -> None:
    import cv2

    mask = rig.motion_mask()
    # The moving region is the head and neck, not the picture: compact and around the face.
    assert mask.mean() < 0.4
    ys, xs = np.nonzero(mask)
    centre = rig.landmarks[[10, 152]].mean(axis=0)
    assert np.hypot(xs - centre[0], ys - centre[1]).max() < 1.2 * rig.face_height
    outside = ~cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    frames = [f.image for f in await animate(animator, speech_like_audio(2.0))]
    frames += [animator.idle_frame(2.0 + i / 8) for i in range(24)]
    reference = frames[0][outside].astype(np.int16)
    changed = np.zeros(mask.shape, bool)
    for image in frames:
        assert np.abs(image[outside] - reference).max() <= 1
        changed |= (np.abs(image.astype(np.int16) - frames[0]) > 10).any(axis=-1)
    assert np.array_equal(frames[0][outside], rig.image[outside])
    assert changed[mask].mean() > 0.05  # inside the mask, things do move
