from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from digihuman.errors import UserError
from digihuman.media import AudioChunk, VideoFrame
from digihuman.output.recorder import Mp4Recorder, OutputPathError, check_writable
from tests.output.fake_face import FakeFace, frame_colour

FPS = 25
SIZE = 64  # small frames keep the suite fast; the encoder path is the same as at 512 px


def tone(rate: int, seconds: float, freq: float = 300.0) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


async def record(
    path: Path,
    audio_s: float,
    frames: int,
    rate: int,
    sample_rate: int | None = None,
    turn_id: int = 1,
) -> Mp4Recorder:
    """Record a turn: `audio_s` of tone in 0.1 s chunks and `frames` fake-face frames."""
    recorder = Mp4Recorder(path, fps=FPS, size=SIZE, sample_rate=sample_rate)
    face = FakeFace(fps=FPS, size=SIZE)
    recorder.begin_turn(turn_id)
    pcm = tone(rate, audio_s)
    step = rate // 10
    for start in range(0, len(pcm), step):
        await recorder.write_audio(AudioChunk(pcm[start : start + step], rate, start / rate, turn_id=turn_id))
    for index in range(frames):
        await recorder.write_frame(face.frame(index, turn_id))
    await recorder.end_turn(turn_id)
    await recorder.aclose()
    return recorder


def stream_durations(path: Path) -> tuple[float, float]:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0]
        return float(video.duration * video.time_base), float(audio.duration * audio.time_base)


def decoded_audio(path: Path) -> tuple[np.ndarray, int]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        samples = [frame.to_ndarray().reshape(-1) for frame in container.decode(stream)]
        return np.concatenate(samples), stream.codec_context.sample_rate


def decoded_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


@pytest.mark.parametrize(
    ("audio_s", "frames", "rate", "sample_rate", "expected_rate"),
    [
        (1.0, 25, 24000, None, 24000),  # matching lengths
        (1.37, 20, 22050, None, 22050),  # video shorter: padded with its last frame
        (0.5, 30, 16000, None, 16000),  # audio shorter: padded with silence
        (0.83, 21, 48000, 24000, 24000),  # resampled to the rate asked for
        (0.61, 3, 37800, None, 48000),  # a rate AAC cannot carry: resampled to 48 kHz
    ],
)
async def test_streams_end_within_one_frame(
    tmp_path: Path, audio_s: float, frames: int, rate: int, sample_rate: int | None, expected_rate: int
) -> None:
    path = tmp_path / "turn.mp4"
    recorder = await record(path, audio_s, frames, rate, sample_rate)
    video_s, audio_s_in_file = stream_durations(path)
    expected_s = max(audio_s, frames / FPS)
    assert abs(video_s - audio_s_in_file) <= 1 / FPS
    assert video_s == pytest.approx(expected_s, abs=1 / FPS)
    assert recorder.played_s(1) == pytest.approx(expected_s, abs=1 / FPS)
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0]
        assert video.codec_context.name == "h264"
        assert video.codec_context.pix_fmt == "yuv420p"
        assert (video.codec_context.width, video.codec_context.height) == (SIZE, SIZE)
        assert audio.codec_context.name == "aac"
        assert audio.codec_context.sample_rate == expected_rate


async def test_file_starts_with_the_index_for_streaming(tmp_path: Path) -> None:
    path = tmp_path / "turn.mp4"
    await record(path, 0.4, 10, 24000)
    data = path.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # +faststart


async def test_audio_gaps_become_silence(tmp_path: Path) -> None:
    path = tmp_path / "gap.mp4"
    recorder = Mp4Recorder(path, fps=FPS, size=SIZE)
    recorder.begin_turn(1)
    await recorder.write_audio(AudioChunk(tone(24000, 0.5), 24000, 0.0, turn_id=1))
    await recorder.write_audio(AudioChunk(tone(24000, 0.5), 24000, 1.0, turn_id=1))  # 0.5 s later
    await recorder.write_frame(VideoFrame(np.full((SIZE, SIZE, 3), 128, np.uint8), 0.0, 1))
    await recorder.end_turn(1)
    samples, rate = decoded_audio(path)
    assert len(samples) / rate == pytest.approx(1.5, abs=0.05)

    def rms(start_s: float, end_s: float) -> float:
        return float(np.sqrt(np.mean(samples[int(start_s * rate) : int(end_s * rate)] ** 2)))

    assert rms(0.1, 0.4) > 0.3
    assert rms(0.6, 0.9) < 0.01
    assert rms(1.1, 1.4) > 0.3
    assert stream_durations(path)[0] == pytest.approx(1.5, abs=1 / FPS)


async def test_missing_frames_repeat_the_last_one(tmp_path: Path) -> None:
    path = tmp_path / "sparse.mp4"
    face = FakeFace(fps=FPS, size=SIZE)
    recorder = Mp4Recorder(path, fps=FPS, size=SIZE)
    recorder.begin_turn(1)
    await recorder.write_audio(AudioChunk(tone(24000, 1.0), 24000, 0.0, turn_id=1))
    for index in (2, 10, 11):  # frames 0-1 and 3-9 never come; 12-24 neither
        await recorder.write_frame(face.frame(index, 1))
    await recorder.write_frame(face.frame(5, 1))  # late: its slot is already written
    await recorder.end_turn(1)
    frames = decoded_frames(path)
    assert len(frames) == 25
    shown = [np.median(frame.reshape(-1, 3), axis=0) for frame in frames]
    expected = [2] * 10 + [10] + [11] * 14
    for colour, index in zip(shown, expected, strict=True):
        assert np.abs(colour - frame_colour(index)).max() <= 6


async def test_chunks_of_other_turns_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "turn.mp4"
    recorder = Mp4Recorder(path, fps=FPS, size=SIZE)
    recorder.begin_turn(2)
    await recorder.write_audio(AudioChunk(tone(24000, 2.0), 24000, 0.0, turn_id=1))  # stale
    await recorder.write_audio(AudioChunk(tone(24000, 0.4), 24000, 0.0, turn_id=2))
    await recorder.end_turn(2)
    assert stream_durations(path)[1] == pytest.approx(0.4, abs=1 / FPS)


async def test_cancel_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "turn.mp4"
    path.write_bytes(b"an earlier recording")
    recorder = Mp4Recorder(path, fps=FPS, size=SIZE)
    face = FakeFace(fps=FPS, size=SIZE)
    recorder.begin_turn(1)
    await recorder.write_audio(AudioChunk(tone(24000, 1.0), 24000, 0.0, turn_id=1))
    for index in range(20):
        await recorder.write_frame(face.frame(index, 1))
    heard = recorder.cancel_turn(1)
    await recorder.end_turn(1)  # after a cancel this saves nothing
    await recorder.aclose()
    assert 0.0 <= heard <= 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["turn.mp4"]  # no temporary file left either
    assert path.read_bytes() == b"an earlier recording"  # untouched


async def test_encoder_failure_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "turn.mp4"
    recorder = Mp4Recorder(path, fps=FPS, size=SIZE)
    recorder.begin_turn(1)
    await recorder.write_audio(AudioChunk(tone(24000, 0.3), 24000, 0.0, turn_id=1))
    await recorder.write_frame(VideoFrame(np.zeros((SIZE,), np.uint8), 0.0, 1))  # not an image
    with pytest.raises(ValueError):
        await recorder.end_turn(1)
    await recorder.aclose()
    assert list(tmp_path.iterdir()) == []


async def test_aclose_saves_a_turn_that_was_not_ended(tmp_path: Path) -> None:
    path = tmp_path / "turn.mp4"
    recorder = Mp4Recorder(path, fps=FPS, size=SIZE)
    recorder.begin_turn(1)
    await recorder.write_audio(AudioChunk(tone(24000, 0.3), 24000, 0.0, turn_id=1))
    await recorder.aclose()
    video_s, audio_s = stream_durations(path)
    assert video_s == pytest.approx(0.32) and audio_s == pytest.approx(0.32, abs=1 / FPS)


async def test_one_recorder_records_one_turn(tmp_path: Path) -> None:
    recorder = await record(tmp_path / "a.mp4", 0.2, 5, 24000)
    with pytest.raises(RuntimeError):
        recorder.begin_turn(2)


async def test_missing_folders_are_made_by_the_recording_and_removed_when_it_fails(tmp_path: Path) -> None:
    target = tmp_path / "new" / "deeper" / "reply.mp4"
    assert check_writable(target) == target
    assert list(tmp_path.iterdir()) == []  # checking creates nothing (the probe file is gone too)
    await record(target, 0.2, 5, 24000)
    assert target.is_file()
    empty = tmp_path / "other" / "reply.mp4"
    recorder = Mp4Recorder(empty, fps=FPS, size=SIZE)
    recorder.begin_turn(1)
    await recorder.end_turn(1)  # nothing was said: nothing is written, the folder goes again
    await recorder.aclose()
    assert not (tmp_path / "other").exists() and not recorder.published


@pytest.mark.parametrize(
    "make_path",
    [
        lambda tmp: tmp,  # a folder
        lambda tmp: (tmp / "file.txt").write_text("x") and tmp / "file.txt" / "reply.mp4",  # parent is a file
        lambda tmp: Path("/proc/digihuman-no-such-dir/reply.mp4"),  # cannot be created
        lambda tmp: Path("/proc/reply.mp4"),  # a folder that cannot be written to
    ],
    ids=["folder", "parent-is-file", "uncreatable-parent", "read-only-parent"],
)
def test_unwritable_paths_fail_early_with_one_line(tmp_path: Path, make_path) -> None:
    path = make_path(tmp_path)
    with pytest.raises(OutputPathError) as caught:
        check_writable(path)
    assert isinstance(caught.value, UserError)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    with pytest.raises(OutputPathError):
        Mp4Recorder(path)
