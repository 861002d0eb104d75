from __future__ import annotations

import asyncio
import sys
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from digihuman.audio.source import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    DeviceSource,
    FileSource,
    PushSource,
    decode_file,
    open_source,
)
from digihuman.errors import UserError


def tone(seconds: float, rate: int, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


async def collect(source) -> list:
    return [f async for f in source.frames()]


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG", "MP3"])
def test_files_decode_to_16k_mono(tmp_path: Path, fmt: str) -> None:
    stereo = np.stack([tone(1.0, 44100), tone(1.0, 44100, 220)], axis=1)
    path = tmp_path / f"a.{fmt.lower()}"
    sf.write(path, stereo, 44100, format=fmt)
    pcm = decode_file(path)
    assert pcm.dtype == np.float32
    assert abs(len(pcm) / SAMPLE_RATE - 1.0) < 0.08  # MP3 adds encoder padding
    # 440 Hz survives resampling: the spectrum peaks there
    spectrum = np.abs(np.fft.rfft(pcm[: SAMPLE_RATE // 2]))
    assert abs(np.argmax(spectrum) * 2 - 440) < 10 or abs(np.argmax(spectrum) * 2 - 220) < 10


async def test_file_frames_are_512_samples_on_a_contiguous_timeline(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    sf.write(path, tone(1.0, 48000), 48000)
    frames = await collect(FileSource(path, realtime=False))
    assert all(f.samples.shape == (FRAME_SAMPLES,) and f.samples.dtype == np.float32 for f in frames)
    assert [f.t_s for f in frames] == pytest.approx(
        [i * FRAME_SAMPLES / SAMPLE_RATE for i in range(len(frames))]
    )
    assert len(frames) * FRAME_SAMPLES >= SAMPLE_RATE  # the tail is padded, not dropped


async def test_realtime_file_is_paced_like_a_microphone(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    sf.write(path, tone(0.5, 16000), 16000)
    started = time.monotonic()
    frames = await collect(FileSource(path, realtime=True))
    assert time.monotonic() - started >= frames[-1].end_s - 0.05


def test_unreadable_and_empty_files_are_one_line_user_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not audio at all" * 10)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 16000)
    for path, words in [
        (junk, "not a readable audio file"),
        (empty, "no audio"),
        (tmp_path / "no.wav", "no such"),
    ]:
        with pytest.raises(UserError, match=words) as err:
            decode_file(path)
        assert "\n" not in str(err.value)


async def test_push_source_takes_pcm_from_another_thread_at_any_rate() -> None:
    source = PushSource(sample_rate=48000)
    source.bind(asyncio.get_running_loop())

    def produce() -> None:
        for _ in range(10):
            source.push((tone(0.1, 48000) * 32767).astype(np.int16))  # int16, like a browser
        source.end()

    threading.Thread(target=produce).start()
    frames = await asyncio.wait_for(collect(source), 5)
    assert sum(len(f.samples) for f in frames) == pytest.approx(SAMPLE_RATE, abs=FRAME_SAMPLES * 2)
    assert max(float(np.abs(f.samples).max()) for f in frames) == pytest.approx(0.3, abs=0.02)


def fake_sounddevice(devices: list[dict]) -> types.ModuleType:
    module = types.ModuleType("sounddevice")
    module.query_devices = lambda index=None: devices if index is None else devices[index]  # type: ignore[attr-defined]
    module.default = types.SimpleNamespace(device=[-1, -1])  # type: ignore[attr-defined]
    return module


def test_no_input_device_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    speaker = {"name": "HDMI out", "max_input_channels": 0, "max_output_channels": 2}
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice([speaker]))
    with pytest.raises(UserError, match=r"no microphone found.*--mic FILE"):
        DeviceSource()


def test_unknown_device_lists_the_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    mic = {"name": "USB mic", "max_input_channels": 1, "max_output_channels": 0, "default_samplerate": 48000}
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice([mic]))
    with pytest.raises(
        UserError, match=r"no microphone named 'webcam' \(input devices: 0: USB mic; or use --mic"
    ):
        DeviceSource("webcam")


def test_open_source_takes_a_file_path(tmp_path: Path) -> None:
    path = tmp_path / "a.flac"
    sf.write(path, tone(0.2, 16000), 16000)
    assert isinstance(open_source(str(path)), FileSource)
