"""Recording onto what already exists: regular files, symlinks, device nodes, FIFOs; and failed turns."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import av
import numpy as np
import pytest

from digihuman.media import AudioChunk
from digihuman.output.destination import plan
from digihuman.output.recorder import Mp4Recorder, OutputPathError, check_writable

FPS = 25
SIZE = 64
RATE = 24000
GOOD = b"a good recording from before"


def tone(seconds: float) -> np.ndarray:
    t = np.arange(round(RATE * seconds)) / RATE
    return (0.5 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)


async def speak(recorder: Mp4Recorder, seconds: float = 0.2) -> None:
    recorder.begin_turn(1)
    await recorder.write_audio(AudioChunk(tone(seconds), RATE, 0.0, turn_id=1))
    await recorder.end_turn(1)


def is_mp4(data: bytes) -> bool:
    return data[4:8] == b"ftyp"


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


async def test_a_symlink_is_followed_and_stays_a_link(tmp_path: Path) -> None:
    real = tmp_path / "real.mp4"
    real.write_bytes(GOOD)
    link = tmp_path / "link.mp4"
    link.symlink_to(real)
    recorder = Mp4Recorder(link, fps=FPS, size=SIZE)
    await speak(recorder)
    await recorder.aclose()
    assert link.is_symlink() and is_mp4(real.read_bytes())
    assert leftovers(tmp_path) == []


async def test_a_dangling_symlink_creates_its_target(tmp_path: Path) -> None:
    link = tmp_path / "link.mp4"
    link.symlink_to(tmp_path / "sub" / "target.mp4")
    recorder = Mp4Recorder(link, fps=FPS, size=SIZE)
    await speak(recorder)
    await recorder.aclose()
    assert link.is_symlink() and is_mp4((tmp_path / "sub" / "target.mp4").read_bytes())


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
async def test_a_device_node_is_written_through_never_replaced(tmp_path: Path) -> None:
    node = tmp_path / "null"
    os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # our own /dev/null, never the system's
    assert plan(node).stream
    recorder = Mp4Recorder(node, fps=FPS, size=SIZE)
    await speak(recorder)
    await recorder.aclose()
    assert stat.S_ISCHR(node.lstat().st_mode) and recorder.published
    assert [p.name for p in tmp_path.iterdir()] == ["null"]  # nothing encoded next to the node


async def test_a_fifo_receives_the_finished_file(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    recorder = Mp4Recorder(fifo, fps=FPS, size=SIZE)
    await speak(recorder)
    await recorder.aclose()
    reader.join(10)
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and is_mp4(received[0])
    copy = tmp_path / "copy.mp4"
    copy.write_bytes(received[0])
    with av.open(str(copy)) as container:
        assert container.streams.audio and container.streams.video


def test_a_socket_is_refused(tmp_path: Path) -> None:
    import socket

    path = tmp_path / "sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        with pytest.raises(OutputPathError, match="not a regular file"):
            check_writable(path)


def test_a_symlink_loop_is_one_line(tmp_path: Path) -> None:
    loop = tmp_path / "loop.mp4"
    loop.symlink_to(loop)
    with pytest.raises(OutputPathError) as caught:
        check_writable(loop)
    assert "\n" not in str(caught.value)


def test_a_name_too_long_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(OutputPathError) as caught:
        check_writable(tmp_path / ("x" * 300 + ".mp4"))
    assert "\n" not in str(caught.value) and list(tmp_path.iterdir()) == []


async def test_a_long_name_that_fits_still_records(tmp_path: Path) -> None:
    target = tmp_path / ("y" * 240 + ".mp4")  # the temporary name must not grow past the limit
    recorder = Mp4Recorder(target, fps=FPS, size=SIZE)
    await speak(recorder)
    await recorder.aclose()
    assert is_mp4(target.read_bytes())


async def test_an_empty_turn_leaves_a_good_file_alone(tmp_path: Path) -> None:
    target = tmp_path / "out.mp4"
    target.write_bytes(GOOD)
    recorder = Mp4Recorder(target, fps=FPS, size=SIZE)
    recorder.begin_turn(1)
    await recorder.end_turn(1)  # the voice failed before a sound: no 40 ms stub
    await recorder.aclose()
    assert target.read_bytes() == GOOD and not recorder.published and leftovers(tmp_path) == []


async def test_held_recording_is_published_only_on_commit(tmp_path: Path) -> None:
    target = tmp_path / "out.mp4"
    target.write_bytes(GOOD)
    failed = Mp4Recorder(target, fps=FPS, size=SIZE, hold=True)
    await speak(failed)
    await failed.aclose()  # the turn failed after some speech: the caller never commits
    assert target.read_bytes() == GOOD and leftovers(tmp_path) == []

    succeeded = Mp4Recorder(target, fps=FPS, size=SIZE, hold=True)
    await speak(succeeded)
    assert target.read_bytes() == GOOD  # finished, but not yet in place
    await succeeded.commit()
    await succeeded.aclose()
    assert is_mp4(target.read_bytes()) and succeeded.published and leftovers(tmp_path) == []


async def test_a_cancelled_turn_leaves_a_good_file_and_no_new_folders(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.mp4"
    recorder = Mp4Recorder(target, fps=FPS, size=SIZE)
    recorder.begin_turn(1)
    await recorder.write_audio(AudioChunk(tone(0.2), RATE, 0.0, turn_id=1))
    recorder.cancel_turn(1)
    await recorder.aclose()
    assert list(tmp_path.iterdir()) == []


def test_any_output_name_is_usable_or_one_output_path_error(tmp_path: Path) -> None:
    """Random names (slashes, dots, long, unicode): a plan or a one-line error, and nothing left behind."""
    hypothesis = pytest.importorskip("hypothesis")
    strategies = pytest.importorskip("hypothesis.strategies")
    root = tmp_path / "root"
    root.mkdir()
    (root / "afile").write_text("x")
    names = strategies.text(
        alphabet=strategies.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
        min_size=1,
        max_size=300,
    ).filter(lambda n: not n.startswith("/"))  # stay under root: probes are made and removed there

    @hypothesis.settings(max_examples=200, deadline=None)
    @hypothesis.given(strategies.one_of(names, names.map(lambda n: "afile/" + n)))
    def check(name: str) -> None:
        try:
            destination = plan(root / name)
        except OutputPathError as exc:
            assert "\n" not in str(exc).replace(name, "")
        else:
            assert not destination.stream
        assert sorted(p.name for p in root.iterdir()) == ["afile"]

    check()


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
async def test_a_full_device_is_one_line_and_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = tmp_path / "full"
    os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 7))  # our own /dev/full: every write fails
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(temp))
    recorder = Mp4Recorder(node, fps=FPS, size=SIZE)
    with pytest.raises(OutputPathError, match="No space left on device"):
        await speak(recorder)
    await recorder.aclose()
    assert list(temp.iterdir()) == []


async def test_no_temp_folder_for_a_device_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "missing"))
    recorder = Mp4Recorder(fifo, fps=FPS, size=SIZE)
    with pytest.raises(OutputPathError, match="cannot make a temporary file"):
        recorder.begin_turn(1)
