from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from digihuman.errors import BackendError
from digihuman.face.sadtalker import SadTalkerFace

from .standins.fixtures import (
    SADTALKER_REPO,
    alive,
    changed_pixels,
    chunks,
    speech,
    wait_for_file,
    wait_until_dead,
    write_portrait,
)

SIZE = 256


@pytest.fixture
def jobs_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where job directories are made, to check that none is left behind."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


@pytest.fixture
def checkpoints(tmp_path: Path) -> Path:
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "SadTalker_V0.0.2_256.safetensors").write_bytes(b"stand-in weights")
    return folder


@pytest.fixture
def portrait(tmp_path: Path) -> Path:
    return write_portrait(tmp_path / "ada" / "portrait.png")


def make_face(portrait: Path, checkpoints: Path, **params) -> SadTalkerFace:
    settings = {"python": sys.executable, "repo": str(SADTALKER_REPO), "checkpoint_dir": str(checkpoints)}
    return SadTalkerFace(portrait, {**settings, **params}, size=SIZE, fps=25)


async def test_renders_an_utterance_into_timed_frames(
    portrait: Path, checkpoints: Path, jobs_root: Path
) -> None:
    face = make_face(portrait, checkpoints)
    assert face.realtime is False and face.name == "sadtalker"
    frames = [frame async for frame in face.animate(chunks(speech(1.3, silent_until_s=0.6)))]
    # Covers all the audio at 25 fps (SadTalker rounds its own frame count down; the last frame is held).
    assert len(frames) == 33
    assert [f.pts_s for f in frames] == pytest.approx([i / 25 for i in range(33)])
    assert {f.turn_id for f in frames} == {7}
    assert all(f.image.shape == (SIZE, SIZE, 3) and f.image.dtype == np.uint8 for f in frames)
    # The face talks when the audio does: silent frames match the still portrait, loud ones open the mouth.
    still = face.idle_frame(0.0)
    assert max(changed_pixels(f.image, still) for f in frames[:15]) < 200  # codec noise at sharp edges
    assert min(changed_pixels(f.image, still) for f in frames[15:]) > 400
    assert list(jobs_root.iterdir()) == []


async def test_flags_reach_the_tool(portrait: Path, checkpoints: Path, tmp_path: Path) -> None:
    (checkpoints / "SadTalker_V0.0.2_512.safetensors").write_bytes(b"stand-in weights")
    face = make_face(
        portrait,
        checkpoints,
        preprocess="crop",
        size=512,
        still=False,
        enhancer="gfpgan",
        pose_style=3,
        cpu=True,
    )
    argv = face._command(tmp_path)
    assert argv[:2] == [sys.executable, str(SADTALKER_REPO / "inference.py")]
    flags = " ".join(argv[2:])
    assert "--preprocess crop --size 512 --pose_style 3" in flags
    assert "--enhancer gfpgan" in flags and "--cpu" in flags and "--still" not in flags
    assert f"--result_dir {tmp_path / 'results'}" in flags
    frames = [frame async for frame in face.animate(chunks(speech(0.4)))]
    assert len(frames) == 10 and frames[0].image.shape == (SIZE, SIZE, 3)  # its 512 crop, resized


async def test_a_portrait_without_a_face_is_reported_clearly(tmp_path: Path, checkpoints: Path) -> None:
    face = make_face(write_portrait(tmp_path / "blank.png", blank=True), checkpoints)
    with pytest.raises(BackendError, match=r"^no face found by SadTalker in .*blank\.png"):
        [frame async for frame in face.animate(chunks(speech(0.5)))]


async def test_a_crash_is_one_line_with_its_last_error(portrait: Path, checkpoints: Path) -> None:
    face = make_face(
        portrait, checkpoints, env={"STANDIN_CRASH": "CUDA out of memory. Tried to allocate 2 GiB"}
    )
    with pytest.raises(BackendError) as failure:
        [frame async for frame in face.animate(chunks(speech(0.5)))]
    assert str(failure.value) == (
        "SadTalker failed (exit 1): RuntimeError: CUDA out of memory. Tried to allocate 2 GiB"
    )


async def test_a_stuck_job_times_out_and_its_process_group_is_killed(
    portrait: Path, checkpoints: Path, tmp_path: Path, jobs_root: Path
) -> None:
    pid_file = tmp_path / "pids"
    face = make_face(portrait, checkpoints, timeout_s=3, env={"STANDIN_HANG": str(pid_file)})
    with pytest.raises(BackendError, match=r"^SadTalker took longer than 3 s and was stopped"):
        [frame async for frame in face.animate(chunks(speech(0.5)))]
    pids = [int(p) for p in pid_file.read_text().split()]
    await wait_until_dead(pids)
    assert list(jobs_root.iterdir()) == []


async def test_cancelling_the_turn_kills_the_job(portrait: Path, checkpoints: Path, tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    face = make_face(portrait, checkpoints, env={"STANDIN_HANG": str(pid_file)})

    async def consume() -> None:
        async for _ in face.animate(chunks(speech(0.5))):
            pass

    task = asyncio.create_task(consume())
    pids = [int(p) for p in (await wait_for_file(pid_file)).split()]
    assert all(alive(pid) for pid in pids)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_until_dead(pids)


async def test_jobs_started_in_the_same_second_do_not_mix(portrait: Path, checkpoints: Path) -> None:
    face = make_face(portrait, checkpoints, max_jobs=2)

    async def render(seconds: float) -> int:
        return len([frame async for frame in face.animate(chunks(speech(seconds)))])

    assert await asyncio.gather(render(0.4), render(0.8)) == [10, 20]


async def test_empty_audio_renders_nothing(portrait: Path, checkpoints: Path) -> None:
    face = make_face(portrait, checkpoints, env={"STANDIN_CRASH": "must not run"})
    assert [frame async for frame in face.animate(chunks(np.zeros(0, np.float32)))] == []


def test_missing_setup_is_reported_with_the_fix(portrait: Path, checkpoints: Path, tmp_path: Path) -> None:
    with pytest.raises(
        BackendError, match=r"python '/nope/bin/python' is not an executable: set face\.params"
    ):
        make_face(portrait, checkpoints, python="/nope/bin/python")
    with pytest.raises(BackendError, match=r"is not a SadTalker checkout \(no inference\.py\)"):
        make_face(portrait, checkpoints, repo=str(tmp_path))
    with pytest.raises(BackendError, match=r"checkpoint folder .* does not exist"):
        make_face(portrait, tmp_path / "no-checkpoints")
    with pytest.raises(BackendError, match=r"unknown face.params key 'sizes'"):
        make_face(portrait, checkpoints, sizes=256)
    with pytest.raises(BackendError, match=r"face\.params key 'preprocess'"):
        make_face(portrait, checkpoints, preprocess="fullest")


class IdleLife:
    """Stands in for the built-in animator's idle life."""

    def __init__(self) -> None:
        self.closed = False

    def idle_frame(self, t_s: float) -> np.ndarray:
        return np.full((SIZE, SIZE, 3), int(t_s) % 256, np.uint8)

    async def aclose(self) -> None:
        self.closed = True


async def test_idle_frames_are_the_still_portrait_or_the_given_idle_life(
    portrait: Path, checkpoints: Path
) -> None:
    still = make_face(portrait, checkpoints).idle_frame(12.0)
    assert still.shape == (SIZE, SIZE, 3)
    life = IdleLife()
    face = SadTalkerFace(
        portrait,
        {"python": sys.executable, "repo": str(SADTALKER_REPO), "checkpoint_dir": str(checkpoints)},
        size=SIZE,
        idle=life,  # type: ignore[arg-type]
    )
    assert int(face.idle_frame(12.0)[0, 0, 0]) == 12
    await face.aclose()
    assert life.closed
