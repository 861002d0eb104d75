"""Incremental WAV and MP3 decoding, fed in every kind of split."""

from __future__ import annotations

import io
import struct
import wave

import numpy as np
import pytest
import soundfile as sf

from digihuman.tts.audio_decode import Mp3StreamDecoder, WavStreamDecoder
from tests.tts.mp3_audio import encode_mp3, tone

INT16 = (np.sin(np.arange(301) / 5) * 20000).astype(np.int16)


def feed_in_pieces(decoder, data: bytes, sizes: list[int]) -> np.ndarray:
    out, start, i = [], 0, 0
    while start < len(data):
        size = sizes[i % len(sizes)]
        out.append(decoder.feed(data[start : start + size]))
        start, i = start + size, i + 1
    return np.concatenate(out)


def soundfile_wav(samples: np.ndarray, rate: int, subtype: str = "PCM_16", channels: int = 1) -> bytes:
    buffer = io.BytesIO()
    data = np.repeat(samples[:, None], channels, axis=1) if channels > 1 else samples
    sf.write(buffer, data, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


def streaming_wav(samples: np.ndarray, rate: int) -> bytes:
    """api_v2's streaming form: a header written for zero frames, then raw PCM."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
    return buffer.getvalue() + samples.tobytes()


@pytest.mark.parametrize("make", [soundfile_wav, streaming_wav])
def test_wav_every_split_point(make) -> None:
    data = make(INT16, 24000)
    for cut in range(1, 60):  # every cut inside the header and the first samples
        decoder = WavStreamDecoder()
        pcm = np.concatenate([decoder.feed(data[:cut]), decoder.feed(data[cut:])])
        assert decoder.sample_rate == 24000
        np.testing.assert_array_equal(pcm, INT16.astype(np.float32) / 32768)


@pytest.mark.parametrize("sizes", [[1], [3], [7, 1001], [2, 5, 11]])
def test_wav_odd_sized_reads(sizes) -> None:
    decoder = WavStreamDecoder()
    pcm = feed_in_pieces(decoder, streaming_wav(INT16, 48000), sizes)
    decoder.finish()
    assert decoder.sample_rate == 48000
    np.testing.assert_array_equal(pcm, INT16.astype(np.float32) / 32768)


def test_wav_float_and_stereo() -> None:
    samples = INT16.astype(np.float32) / 32768
    decoder = WavStreamDecoder()
    pcm = feed_in_pieces(decoder, soundfile_wav(samples, 16000, "FLOAT", channels=2), [5])
    assert decoder.channels == 2
    np.testing.assert_allclose(pcm, samples, atol=1e-7)


def test_wav_chunks_after_data_are_not_audio() -> None:
    data = soundfile_wav(INT16, 32000) + b"LIST" + struct.pack("<I", 6) + b"abcdef"
    decoder = WavStreamDecoder()
    pcm = feed_in_pieces(decoder, data, [64])
    assert len(pcm) == len(INT16)


def test_wav_unknown_chunk_before_data_is_skipped() -> None:
    plain = soundfile_wav(INT16, 32000)
    fmt_end = 12 + 8 + 16
    junk = b"junk" + struct.pack("<I", 3) + b"xyz\x00"  # odd size, padded
    decoder = WavStreamDecoder()
    pcm = feed_in_pieces(decoder, plain[:fmt_end] + junk + plain[fmt_end:], [9])
    assert len(pcm) == len(INT16)


def test_not_wav() -> None:
    with pytest.raises(ValueError, match="not a WAV stream"):
        WavStreamDecoder().feed(b'{"message": "tts failed"}')
    with pytest.raises(ValueError, match="not a WAV stream"):
        WavStreamDecoder().feed(b"RIFX")


def test_stream_ending_inside_the_header() -> None:
    decoder = WavStreamDecoder()
    decoder.feed(streaming_wav(INT16, 24000)[:30])
    with pytest.raises(ValueError, match="inside its header"):
        decoder.finish()


def dominant_hz(pcm: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm))
    return float(np.argmax(spectrum) * rate / len(pcm))


@pytest.mark.parametrize("id3", [False, True])
@pytest.mark.parametrize("size", [1, 333, 4096])
def test_mp3_decodes_incrementally(id3, size) -> None:
    source = tone(0.5, hz=440)
    decoder = Mp3StreamDecoder()
    pieces = [decoder.feed(b) for b in _split(encode_mp3(source, id3=id3), size)]
    early = sum(len(p) for p in pieces)
    pcm = np.concatenate([*pieces, decoder.flush()])
    assert decoder.sample_rate == 24000 and pcm.dtype == np.float32
    assert early > 0.3 * 24000  # audio comes out while bytes still arrive, not only at flush
    assert len(source) <= len(pcm) <= len(source) + 3 * 1152  # plus encoder delay and padding
    assert abs(dominant_hz(pcm, 24000) - 440) < 5


def test_mp3_garbage_does_not_raise() -> None:
    decoder = Mp3StreamDecoder()
    pcm = np.concatenate([decoder.feed(b"\xff\xfb" + bytes(500)), decoder.flush()])
    assert pcm.dtype == np.float32


def _split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]
