from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from digihuman.config import CameraSettings
from digihuman.vision.camera import Camera, CameraError, DeviceSource, VideoFileSource

from .synthetic import VirtualClock, level_of, level_video, room

FPS = 10


def index_of(frame) -> int:
    """Which frame of a `level_video(levels=[10 + 4 * i ...])` a sample shows."""
    return round((level_of(frame) - 10) / 4)


@pytest.fixture(scope="module")
def three_seconds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("video")
    return level_video(folder / "three.mp4", [10 + 4 * i for i in range(3 * FPS)], FPS)


def settings(**overrides) -> CameraSettings:
    return CameraSettings(**{"sample_fps": 2.0, **overrides})


async def test_video_file_plays_in_real_time_and_ends(three_seconds: Path) -> None:
    clock = VirtualClock()
    async with Camera(three_seconds, settings(), clock=clock, sleep=clock.sleep) as camera:
        frames = [frame async for frame in camera]
        assert await camera.read() is None
    # Samples every 0.5 s show the frame on screen then: 0, 5, 10, ...; the last frame leaves at 3.0 s.
    assert [index_of(f) for f in frames] == [0, 5, 10, 15, 20, 25]
    assert [round(f.t_s - 1000.0, 3) for f in frames] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]


async def test_video_file_loops_when_asked(three_seconds: Path) -> None:
    clock = VirtualClock()
    async with Camera(three_seconds, settings(), loop=True, clock=clock, sleep=clock.sleep) as camera:
        indices = [index_of(await camera.read()) for _ in range(14)]
    assert indices == [0, 5, 10, 15, 20, 25] * 2 + [0, 5]


async def test_a_slow_consumer_gets_the_current_frame_not_a_backlog(three_seconds: Path) -> None:
    clock = VirtualClock()
    async with Camera(three_seconds, settings(), clock=clock, sleep=clock.sleep) as camera:
        first = await camera.read()
        clock.now += 1.26  # the consumer was busy for two and a half intervals
        late = await camera.read()
        after = await camera.read()
    assert (index_of(first), index_of(late), index_of(after)) == (0, 12, 17)
    assert after.t_s - late.t_s == pytest.approx(0.5)


async def test_long_gaps_seek_instead_of_decoding_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    levels = [10 + 2 * i for i in range(120)]  # 12 s at 10 fps, a keyframe every second
    video = level_video(tmp_path / "long.mp4", levels, FPS)
    seeks: list[float] = []
    real_seek = VideoFileSource._seek

    def counting_seek(self: VideoFileSource, media_s: float) -> bool:
        seeks.append(media_s)
        return real_seek(self, media_s)

    monkeypatch.setattr(VideoFileSource, "_seek", counting_seek)
    clock = VirtualClock()
    async with Camera(video, settings(sample_fps=0.25), clock=clock, sleep=clock.sleep) as camera:
        shown = [round((level_of(f) - 10) / 2) async for f in camera]
    assert shown == [0, 40, 80]
    assert seeks == [4.0, 8.0, 12.0]  # the last finds the end of the file


async def test_frames_are_cropped_downscaled_and_jpeg_encoded(tmp_path: Path) -> None:
    image = room(3, 640, 480)
    cv2.imwrite(str(tmp_path / "a.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    clock = VirtualClock()
    async with Camera(
        tmp_path, settings(crop=0.5, width=160, jpeg_quality=90), clock=clock, sleep=clock.sleep
    ) as camera:
        frame = await camera.read()
    assert frame.rgb_small.shape == (120, 160, 3)
    expected = cv2.resize(image[120:360, 160:480], (160, 120), interpolation=cv2.INTER_AREA)
    assert np.abs(frame.rgb_small.astype(int) - expected).max() <= 1
    decoded = cv2.cvtColor(
        cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB
    )
    assert decoded.shape == (120, 160, 3)
    assert np.abs(decoded.astype(int) - frame.rgb_small).mean() < 4


async def test_image_folder_is_sorted_paced_and_keeps_only_recent_frames(tmp_path: Path) -> None:
    for name, level in (("03.png", 30), ("01.png", 10), ("02.jpg", 20), ("notes.txt", 0)):
        if name.endswith("txt"):
            (tmp_path / name).write_text("not an image")
        else:
            cv2.imwrite(str(tmp_path / name), np.full((48, 64, 3), level, np.uint8))
    clock = VirtualClock()
    async with Camera(tmp_path, settings(keep_frames=2), clock=clock, sleep=clock.sleep) as camera:
        frames = [frame async for frame in camera]
        recent = camera.recent
    assert [level_of(f) for f in frames] == [10, 20, 30]
    assert [round(f.t_s - 1000.0, 3) for f in frames] == [0.0, 0.5, 1.0]
    assert recent == frames[-2:]


async def test_half_an_hour_of_sampling_runs_fast_on_a_virtual_clock(tmp_path: Path) -> None:
    video = level_video(tmp_path / "loop.mp4", [10 + 4 * i for i in range(FPS)], FPS)
    clock = VirtualClock()
    seen: list[int] = []
    async with Camera(video, settings(sample_fps=0.5), loop=True, clock=clock, sleep=clock.sleep) as camera:
        async for frame in camera:
            seen.append(index_of(frame))
            if frame.t_s - 1000.0 >= 1800 - 2:
                break
    assert len(seen) == 900
    assert set(seen) == {0}  # a 1 s loop sampled every 2 s always shows its first frame


def test_missing_paths_fail_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CameraError, match="does not exist"):
        Camera(tmp_path / "nope.mp4")


async def test_files_that_are_not_videos_fail_with_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "clip.mp4"
    bogus.write_bytes(b"definitely not a video")
    with pytest.raises(CameraError, match="not a readable video"):
        async with Camera(bogus):
            pass


async def test_an_empty_folder_fails_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CameraError, match="has no images"):
        async with Camera(tmp_path):
            pass


async def test_a_missing_device_names_the_fix() -> None:
    camera = Camera("97")  # opening is lazy: constructing it touches nothing
    with pytest.raises(CameraError) as failure:
        await camera.read()
    assert str(failure.value) == "camera 97 could not be opened: is it in use or missing? use --camera FILE"
    await camera.aclose()


class FakeCapture:
    """Stands in for cv2.VideoCapture: frame n is a flat grey of n; grab() paces like a 100 fps camera."""

    def __init__(self) -> None:
        self.grabbed = 0
        self.released = False
        self.threads: set[str] = set()
        self._tick = threading.Event()

    def isOpened(self) -> bool:  # OpenCV's name
        return True

    def grab(self) -> bool:
        self._tick.wait(0.01)
        self.grabbed += 1
        return self.grabbed < 10_000

    def retrieve(self) -> tuple[bool, np.ndarray]:
        self.threads.add(threading.current_thread().name)
        return True, np.full((48, 64, 3), self.grabbed % 256, np.uint8)

    def release(self) -> None:
        self.released = True


async def test_a_device_is_drained_so_samples_are_fresh_and_released_on_close() -> None:
    capture = FakeCapture()
    source = DeviceSource(0, capture_factory=lambda index: capture)
    async with Camera(source, settings(sample_fps=5)) as camera:
        first = await camera.read()
        second = await camera.read()
    assert capture.released
    # 0.2 s between samples at ~100 grabs per second: the second sample is a much newer frame.
    assert level_of(second) - level_of(first) >= 5
    assert threading.main_thread().name not in capture.threads
