"""Real MP3 bytes for tests, encoded with PyAV's bundled LAME."""

from __future__ import annotations

import io

import numpy as np


def tone(seconds: float, rate: int = 24000, hz: float = 440.0, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (level * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def encode_mp3(pcm: np.ndarray, rate: int = 24000, *, bit_rate: int = 48000, id3: bool = False) -> bytes:
    """Mono float32 PCM as a constant-bit-rate MP3 stream (edge-tts sends 24 kHz 48 kbit/s mono)."""
    import av

    buffer = io.BytesIO()
    options = {} if id3 else {"id3v2_version": "0", "write_xing": "0"}
    with av.open(buffer, "w", format="mp3", options=options) as container:
        stream = container.add_stream("libmp3lame", rate=rate, layout="mono")
        stream.bit_rate = bit_rate
        for start in range(0, len(pcm), 1152):
            frame = av.AudioFrame.from_ndarray(pcm[None, start : start + 1152], format="fltp", layout="mono")
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()
