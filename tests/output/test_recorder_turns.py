"""TurnRecorder, the sink behind `--record DIR`: one MP4 per turn, named by turn id, cut turns saved up to
the cut, and never a half-written file left behind."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from digihuman.media import AudioChunk
from digihuman.output.recorder import OutputPathError, TurnRecorder
from tests.output.fake_face import FakeFace, decode_index

FPS = 25
SIZE = 64
RATE = 22050
CHUNK_S = 0.1


def tone(seconds: float) -> np.ndarray:
    t = np.arange(round(RATE * seconds)) / RATE
    return (0.4 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


async def feed(recorder: TurnRecorder, turn_id: int, seconds: float) -> None:
    """`seconds` of tone in 0.1 s chunks plus the matching fake-face frames, interleaved like a turn."""
    face = FakeFace(fps=FPS, size=SIZE)
    pcm = tone(seconds)
    step = round(RATE * CHUNK_S)
    frame_index = 0
    for start in range(0, len(pcm), step):
        await recorder.write_audio(AudioChunk(pcm[start : start + step], RATE, start / RATE, turn_id=turn_id))
        while frame_index / FPS < (start + step) / RATE and frame_index / FPS < seconds - 1e-9:
            await recorder.write_frame(face.frame(frame_index, turn_id))
            frame_index += 1


def streams(path: Path) -> tuple[float, float, list[int | None]]:
    """Video and audio durations, and the fake-face index read back from each decoded frame."""
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        indices = [
            decode_index(frame.to_ndarray(format="rgb24")[SIZE // 2, SIZE // 2])
            for frame in container.decode(video)
        ]
        return float(video.duration * video.time_base), float(audio.duration * audio.time_base), indices


def hidden_files(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


async def test_each_turn_becomes_its_own_numbered_mp4(tmp_path: Path) -> None:
    recorder = TurnRecorder(tmp_path / "rec", fps=FPS, size=SIZE)
    for turn_id, seconds in ((1, 1.0), (2, 0.6), (7, 0.4)):
        recorder.begin_turn(turn_id)
        await feed(recorder, turn_id, seconds)
        await recorder.end_turn(turn_id)
    await recorder.aclose()

    assert sorted(p.name for p in (tmp_path / "rec").iterdir()) == ["001.mp4", "002.mp4", "007.mp4"]
    for name, seconds in (("001.mp4", 1.0), ("002.mp4", 0.6), ("007.mp4", 0.4)):
        video_s, audio_s, indices = streams(tmp_path / "rec" / name)
        assert video_s == pytest.approx(seconds, abs=1 / FPS)
        assert abs(video_s - audio_s) <= 1 / FPS
        assert indices[:3] == [0, 1, 2]  # each file starts at its own turn's first frame


async def test_a_cut_turn_is_saved_up_to_the_cut(tmp_path: Path) -> None:
    recorder = TurnRecorder(tmp_path, fps=FPS, size=SIZE)
    recorder.begin_turn(3)
    await feed(recorder, 3, 0.8)
    written_s = recorder.cancel_turn(3)
    # Chunks still in flight for the cut turn are dropped, not appended.
    await recorder.write_audio(AudioChunk(tone(0.5), RATE, 0.8, turn_id=3))
    await recorder.aclose()  # waits for the cut turn's file to be finished

    assert 0 <= written_s <= 0.8 + 1e-6
    video_s, audio_s, _ = streams(tmp_path / "003.mp4")
    assert audio_s <= 0.8 + 1 / FPS  # not the extra 0.5 s sent after the cut
    assert abs(video_s - audio_s) <= 1 / FPS
    assert hidden_files(tmp_path) == []


async def test_closing_mid_turn_saves_what_was_written(tmp_path: Path) -> None:
    recorder = TurnRecorder(tmp_path, fps=FPS, size=SIZE)
    recorder.begin_turn(1)
    await feed(recorder, 1, 0.5)
    assert recorder.played_s(1) <= 0.5 + 1e-6
    await recorder.aclose()  # e.g. Ctrl-C: the session closes its sinks
    video_s, audio_s, _ = streams(tmp_path / "001.mp4")
    assert audio_s == pytest.approx(0.5, abs=1 / FPS) and abs(video_s - audio_s) <= 1 / FPS
    assert hidden_files(tmp_path) == []


async def test_a_turn_with_only_audio_still_gives_a_playable_file(tmp_path: Path) -> None:
    recorder = TurnRecorder(tmp_path, fps=FPS, size=SIZE)
    recorder.begin_turn(1)
    await recorder.write_audio(AudioChunk(tone(0.4), RATE, 0.0, turn_id=1))
    await recorder.end_turn(1)
    await recorder.aclose()
    video_s, audio_s, indices = streams(tmp_path / "001.mp4")
    assert audio_s == pytest.approx(0.4, abs=1 / FPS) and video_s == pytest.approx(audio_s, abs=1 / FPS)
    assert indices and all(index is None for index in indices)  # a plain picture, no stray face frames


def test_an_unusable_record_folder_is_refused_up_front(tmp_path: Path) -> None:
    a_file = tmp_path / "taken"
    a_file.write_text("not a folder")
    with pytest.raises(OutputPathError, match="is not a folder"):
        TurnRecorder(a_file)
    with pytest.raises(OutputPathError):
        TurnRecorder("/proc/digihuman-records")


async def test_the_record_folder_appears_with_the_first_turn(tmp_path: Path) -> None:
    folder = tmp_path / "records" / "today"
    recorder = TurnRecorder(folder, fps=FPS, size=SIZE)
    assert not (tmp_path / "records").exists()  # a session that fails to start leaves no folder
    recorder.begin_turn(1)
    await recorder.end_turn(1)
    await recorder.aclose()
    assert folder.is_dir() and list(folder.iterdir()) == []  # turns.jsonl goes there next


async def test_a_turn_with_nothing_spoken_leaves_no_file(tmp_path: Path) -> None:
    recorder = TurnRecorder(tmp_path, fps=FPS, size=SIZE)
    recorder.begin_turn(1)
    await recorder.end_turn(1)
    await recorder.aclose()
    assert not list(tmp_path.glob("*.mp4")) and not list(tmp_path.glob(".*"))
