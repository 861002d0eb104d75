from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from digihuman.errors import BackendError
from digihuman.face.subprocess_face import JobResult
from digihuman.face.wav2lip import Wav2LipFace

from .standins.fixtures import WAV2LIP_REPO, changed_pixels, chunks, speech, write_portrait

SIZE = 256


@pytest.fixture
def jobs_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # A space in the path: Wav2Lip's unquoted ffmpeg command breaks on it unless the adapter avoids it.
    root = tmp_path / "temp files.d"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "weights" / "wav2lip_gan.pth"
    path.parent.mkdir()
    path.write_bytes(b"stand-in weights")
    return path


@pytest.fixture
def portrait(tmp_path: Path) -> Path:
    # Dots in folder names break Wav2Lip's `face.split('.')[1]` image check unless the adapter avoids them.
    return write_portrait(tmp_path / "characters.v1.2" / "ada.portrait.png")


def make_face(portrait: Path, checkpoint: Path, **params) -> Wav2LipFace:
    settings = {"python": sys.executable, "repo": str(WAV2LIP_REPO), "checkpoint_path": str(checkpoint)}
    return Wav2LipFace(portrait, {**settings, **params}, size=SIZE, fps=25)


async def test_renders_an_utterance_into_timed_frames(
    portrait: Path, checkpoint: Path, jobs_root: Path
) -> None:
    face = make_face(portrait, checkpoint)
    assert face.realtime is False and face.name == "wav2lip"
    frames = [frame async for frame in face.animate(chunks(speech(1.3, silent_until_s=0.6), turn_id=3))]
    # Wav2Lip makes one frame per mel window (30 here); the adapter holds the last to cover the audio.
    assert len(frames) == 33
    assert [f.pts_s for f in frames] == pytest.approx([i / 25 for i in range(33)])
    assert {f.turn_id for f in frames} == {3}
    assert all(f.image.shape == (SIZE, SIZE, 3) for f in frames)
    still = face.idle_frame(0.0)
    assert max(changed_pixels(f.image, still) for f in frames[:15]) < 200  # codec noise at sharp edges
    assert min(changed_pixels(f.image, still) for f in frames[15:]) > 400
    assert list(jobs_root.iterdir()) == []


async def test_concurrent_jobs_each_get_their_own_temp_folder(portrait: Path, checkpoint: Path) -> None:
    face = make_face(portrait, checkpoint, max_jobs=3)

    async def render(seconds: float) -> int:
        return len([frame async for frame in face.animate(chunks(speech(seconds)))])

    assert await asyncio.gather(render(0.4), render(0.8), render(1.2)) == [10, 20, 30]


async def test_flags_reach_the_tool(portrait: Path, checkpoint: Path, tmp_path: Path) -> None:
    face = make_face(portrait, checkpoint, pads=[0, 20, 0, 0], resize_factor=2, nosmooth=True, fps=30)
    flags = " ".join(face._command(tmp_path)[2:])
    assert f"--checkpoint_path {checkpoint}" in flags
    assert "--face source.png --audio audio.wav --outfile result.mp4" in flags
    assert "--fps 30 --pads 0 20 0 0 --resize_factor 2" in flags and flags.endswith("--nosmooth")
    frames = [frame async for frame in face.animate(chunks(speech(0.4)))]
    assert len(frames) == 10 and frames[0].image.shape == (SIZE, SIZE, 3)  # 30 fps, half size: resampled


async def test_a_portrait_without_a_face_is_reported_clearly(tmp_path: Path, checkpoint: Path) -> None:
    face = make_face(write_portrait(tmp_path / "blank.png", blank=True), checkpoint)
    with pytest.raises(BackendError, match=r"^no face found by Wav2Lip in .*blank\.png"):
        [frame async for frame in face.animate(chunks(speech(0.5)))]


async def test_a_crash_is_one_line_with_its_last_error(portrait: Path, checkpoint: Path) -> None:
    face = make_face(portrait, checkpoint, env={"STANDIN_CRASH": "CUDA error: out of memory"})
    with pytest.raises(BackendError) as failure:
        [frame async for frame in face.animate(chunks(speech(0.5)))]
    assert str(failure.value) == "Wav2Lip failed (exit 1): RuntimeError: CUDA error: out of memory"


def test_no_video_without_ffmpeg_names_the_fix(portrait: Path, checkpoint: Path, tmp_path: Path) -> None:
    face = make_face(portrait, checkpoint, env={"PATH": str(tmp_path)})
    silent_failure = JobResult(0, "Length of mel chunks: 30", "/bin/sh: 1: ffmpeg: not found")
    with pytest.raises(BackendError, match=r"needs the ffmpeg command on its PATH"):
        face._find_output(tmp_path, silent_failure)


def test_missing_setup_is_reported_with_the_fix(portrait: Path, checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(
        BackendError, match=r"checkpoint .*missing\.pth does not exist: download wav2lip_gan\.pth"
    ):
        make_face(portrait, tmp_path / "missing.pth")
    with pytest.raises(BackendError, match=r"is not a Wav2Lip checkout"):
        make_face(portrait, checkpoint, repo=str(tmp_path))
    with pytest.raises(BackendError, match=r"face\.params key 'pads"):
        make_face(portrait, checkpoint, pads=[1, 2])


async def test_idle_frame_is_the_square_still(portrait: Path, checkpoint: Path) -> None:
    face = make_face(portrait, checkpoint)
    still = face.idle_frame(5.0)
    assert still.shape == (SIZE, SIZE, 3) and still.dtype == np.uint8
    await face.aclose()
