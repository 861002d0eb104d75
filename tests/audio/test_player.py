from __future__ import annotations

import asyncio
import logging
import time
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from digihuman.audio import player
from digihuman.audio.player import AudioOutput, PcmResampler, SoundDeviceOutput, VirtualOutput
from digihuman.media import AudioChunk

BLOCK = 480  # 10 ms at 48 kHz


class FakeStream:
    """Behaves like sounddevice.OutputStream, but the test pulls each block by calling `pump`."""

    def __init__(self, samplerate: int, blocksize: int, channels: int, dtype: str, callback: Any, **kw: Any):
        assert channels == 1 and dtype == "float32"
        self.samplerate = samplerate
        self.blocksize = blocksize
        self.callback = callback
        self.latency = 0.05
        self.started = False
        self.closed = False

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.closed = True

    def pump(self, blocks: int = 1, dac_delay_s: float = 0.0) -> np.ndarray:
        """Pull `blocks` blocks at once, as a device does when it fills its buffer ahead of the DAC."""
        out = []
        for index in range(blocks):
            buffer = np.full((self.blocksize, 1), np.nan, np.float32)  # NaN: catches unwritten samples
            now = time.monotonic()
            dac_at = now + dac_delay_s + index * self.blocksize / self.samplerate
            time_info = SimpleNamespace(currentTime=now, outputBufferDacTime=dac_at)
            self.callback(buffer, self.blocksize, time_info, None)
            out.append(buffer[:, 0].copy())
        return np.concatenate(out)


class FakeSoundDevice:
    """The slice of the sounddevice module that SoundDeviceOutput uses."""

    def __init__(self, rate: int = 48000) -> None:
        self.rate = rate
        self.streams: list[FakeStream] = []

    def query_devices(self, device: Any = None, kind: str | None = None) -> dict[str, Any]:
        return {"name": "fake speaker", "default_samplerate": float(self.rate)}

    def OutputStream(self, **kwargs: Any) -> FakeStream:  # sounddevice's name
        stream = FakeStream(**kwargs)
        self.streams.append(stream)
        return stream


def ramp(n: int, start: int = 1) -> np.ndarray:
    """Distinct, recognisable samples: start/1e5, (start+1)/1e5, ..."""
    return (np.arange(start, start + n) / 1e5).astype(np.float32)


def fake_output() -> tuple[AudioOutput, FakeStream]:
    sd = FakeSoundDevice()
    output = AudioOutput(device=SoundDeviceOutput(sd=sd), block_s=BLOCK / 48000)
    output.start()
    return output, sd.streams[0]


def test_device_receives_silence_when_idle_then_the_samples_in_order() -> None:
    output, stream = fake_output()
    assert stream.started and output.sample_rate == 48000
    assert np.all(stream.pump(3) == 0.0)  # open and silent before any turn

    output.begin_turn(1)
    assert np.all(stream.pump(2) == 0.0)  # a turn without audio yet: still silence
    samples = ramp(1000)
    output.enqueue(AudioChunk(samples[:700], 48000, 0.0, turn_id=1))
    output.enqueue(AudioChunk(samples[700:], 48000, 700 / 48000, turn_id=1))
    played = stream.pump(4)
    assert np.array_equal(played[:1000], samples)
    assert np.all(played[1000:] == 0.0)
    output.close()
    assert stream.closed


def test_chunks_of_other_turns_are_dropped() -> None:
    output, stream = fake_output()
    output.begin_turn(2)
    output.enqueue(AudioChunk(ramp(500), 48000, 0.0, turn_id=1))  # stale
    assert output.queued_s(2) == 0.0
    assert np.all(stream.pump(2) == 0.0)


def test_gap_between_chunks_is_played_as_silence() -> None:
    output, stream = fake_output()
    output.begin_turn(1)
    output.enqueue(AudioChunk(ramp(480), 48000, 0.0, turn_id=1))
    output.enqueue(AudioChunk(ramp(480, 5000), 48000, 0.02, turn_id=1))  # starts 10 ms after the first ends
    played = stream.pump(4)
    assert np.array_equal(played[:480], ramp(480))
    assert np.all(played[480:960] == 0.0)
    assert np.array_equal(played[960:1440], ramp(480, 5000))


def test_clear_cuts_at_the_next_block() -> None:
    output, stream = fake_output()
    output.begin_turn(1)
    output.enqueue(AudioChunk(ramp(48000), 48000, 0.0, turn_id=1))
    first = stream.pump(2)
    assert np.array_equal(first, ramp(960))
    heard = output.clear(1)
    assert heard == pytest.approx(960 / 48000)
    assert np.all(stream.pump(2) == 0.0)  # the very next block (10 ms) is silent
    assert output.queued_s(1) == 0.0


async def test_clock_and_completion_wait_for_the_output_latency() -> None:
    output, stream = fake_output()
    output.begin_turn(1)
    output.enqueue(AudioChunk(ramp(4800), 48000, 0.0, turn_id=1))
    output.finish_turn(1)
    started = time.monotonic()
    stream.pump(10, dac_delay_s=0.3)  # all 100 ms handed over, but heard only from 300 ms on
    assert output.position_s(1) == 0.0
    assert output.queued_s(1) == 0.0
    await asyncio.sleep(0.35)
    assert 0.04 < output.position_s(1) <= 0.1
    await asyncio.wait_for(output.wait_played(1), 1.0)
    assert time.monotonic() - started >= 0.39  # 300 ms latency + the 100 ms of audio
    assert output.position_s(1) == pytest.approx(0.1)


async def test_wait_played_returns_when_the_device_has_played_everything() -> None:
    output, stream = fake_output()
    output.begin_turn(1)
    output.enqueue(AudioChunk(ramp(1200), 48000, 0.0, turn_id=1))
    output.finish_turn(1)
    waiter = asyncio.create_task(output.wait_played(1))
    stream.pump(2)
    await asyncio.sleep(0.02)
    assert not waiter.done()  # 240 samples are still queued
    stream.pump(2)
    await asyncio.wait_for(waiter, 1.0)
    assert output.position_s(1) == pytest.approx(0.025)


async def test_virtual_clock_advances_in_real_time() -> None:
    output = AudioOutput(device=VirtualOutput())
    output.begin_turn(1)
    output.enqueue(AudioChunk(np.zeros(24000, np.float32), 24000, 0.0, turn_id=1))
    await asyncio.sleep(0.1)
    t1, p1 = time.monotonic(), output.position_s(1)
    await asyncio.sleep(0.4)
    t2, p2 = time.monotonic(), output.position_s(1)
    output.close()
    assert p1 > 0.05
    assert p2 - p1 == pytest.approx(t2 - t1, abs=0.03)


async def test_virtual_clear_stops_the_clock_within_20_ms() -> None:
    output = AudioOutput(device=VirtualOutput())
    output.begin_turn(1)
    output.enqueue(AudioChunk(np.zeros(48000, np.float32), 48000, 0.0, turn_id=1))
    await asyncio.sleep(0.2)
    heard = output.clear(1)
    cleared_at = output.position_s(1)
    await asyncio.wait_for(output.wait_played(1), 0.1)  # a cleared turn is over
    await asyncio.sleep(0.1)
    final = output.position_s(1)
    output.close()
    assert 0.15 < heard < 0.3
    assert final == pytest.approx(heard)
    assert final - cleared_at <= 0.02


async def test_virtual_wait_played_takes_as_long_as_the_audio() -> None:
    output = AudioOutput(device=VirtualOutput())
    output.begin_turn(7)
    output.enqueue(AudioChunk(np.zeros(8000, np.float32), 16000, 0.0, turn_id=7))
    output.finish_turn(7)
    started = time.monotonic()
    await asyncio.wait_for(output.wait_played(7), 2.0)
    elapsed = time.monotonic() - started
    output.close()
    assert 0.48 <= elapsed < 0.6
    assert output.position_s(7) == pytest.approx(0.5, abs=1e-3)


def test_new_turn_drops_the_previous_one() -> None:
    output, stream = fake_output()
    output.begin_turn(1)
    output.enqueue(AudioChunk(ramp(4800), 48000, 0.0, turn_id=1))
    stream.pump(1)
    output.begin_turn(2)
    output.enqueue(AudioChunk(ramp(480, 9000), 48000, 0.0, turn_id=2))
    assert np.array_equal(stream.pump(1), ramp(480, 9000))


def test_no_device_falls_back_to_virtual_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class NoDevices(FakeSoundDevice):
        def query_devices(self, device: Any = None, kind: str | None = None) -> dict[str, Any]:
            raise RuntimeError("Error querying device -1")  # what PortAudio says with no sound card

    monkeypatch.setattr(player, "import_sounddevice", NoDevices)
    monkeypatch.setattr(player, "_warned_no_device", False)
    with caplog.at_level(logging.WARNING, logger="digihuman.audio.player"):
        first = player.open_default_device()
        second = player.open_default_device()
    assert isinstance(first, VirtualOutput) and isinstance(second, VirtualOutput)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "no audio output device: playing without sound" in warnings[0].getMessage()


def test_missing_portaudio_library_also_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_library() -> Any:
        raise OSError("PortAudio library not found")

    monkeypatch.setattr(player, "import_sounddevice", no_library)
    assert isinstance(player.open_default_device(), VirtualOutput)


def sine(rate: int, seconds: float, freq: float = 440.0, start_s: float = 0.0) -> np.ndarray:
    t = start_s + np.arange(round(rate * seconds)) / rate
    return np.sin(2 * np.pi * freq * t).astype(np.float32)


@pytest.mark.parametrize("in_rate", [16000, 22050, 24000, 44100])
def test_resampler_streams_chunks_without_seams(in_rate: int) -> None:
    timeline = PcmResampler(48000)
    signal = sine(in_rate, 1.0)
    step = in_rate // 7  # chunk boundaries that do not line up with anything
    pieces = []
    for start in range(0, len(signal), step):
        chunk = AudioChunk(signal[start : start + step], in_rate, start / in_rate)
        pieces += timeline.add(chunk)
    pieces += timeline.flush()
    out = np.concatenate(pieces)
    assert len(out) == 48000
    expected = sine(48000, 1.0)
    assert np.abs(out[200:-200] - expected[200:-200]).max() < 1e-3


def test_resampler_places_late_chunks_after_silence_and_trims_overlaps() -> None:
    timeline = PcmResampler(1000)
    out = timeline.add(AudioChunk(np.ones(100, np.float32), 1000, 0.0))
    out += timeline.add(AudioChunk(np.full(100, 2.0, np.float32), 1000, 0.15))
    out += timeline.add(AudioChunk(np.full(100, 3.0, np.float32), 1000, 0.2))  # overlaps by 50 samples
    samples = np.concatenate(out)
    assert len(samples) == 300
    assert np.all(samples[:100] == 1) and np.all(samples[100:150] == 0) and np.all(samples[150:250] == 2)
    assert np.all(samples[250:] == 3)  # its first 50 samples overlapped what was already placed


def test_a_device_that_will_not_open_falls_back_to_virtual(monkeypatch: pytest.MonkeyPatch) -> None:
    class BusyStream(FakeStream):
        def start(self) -> None:
            raise RuntimeError("Device unavailable")

    class BusySoundDevice(FakeSoundDevice):
        def OutputStream(self, **kwargs: Any) -> FakeStream:  # sounddevice's name
            return BusyStream(**kwargs)

    monkeypatch.setattr(player, "_warned_no_device", False)
    output = AudioOutput(device=SoundDeviceOutput(sd=BusySoundDevice(rate=44100)))
    output.start()
    try:
        assert output.is_virtual and output.sample_rate == 44100
    finally:
        output.close()
