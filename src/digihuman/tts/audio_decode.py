"""Incremental decoders for audio that arrives in network-sized pieces: streaming WAV and MP3.

Both take bytes as they come (a header may be split across reads, a sample across two reads) and
return float32 mono PCM in [-1, 1] for whatever is complete so far.
"""

from __future__ import annotations

import struct

import numpy as np

_RIFF_HEADER = 12  # "RIFF", size, "WAVE"
_CHUNK_HEADER = 8  # id, size
_UNKNOWN_LENGTHS = (0, 0xFFFFFFFF)  # streaming writers put 0 (or the maximum) in the data size
_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE
_EMPTY = np.zeros(0, np.float32)


class WavStreamDecoder:
    """A WAV byte stream in, PCM out.

    Streaming servers (GPT-SoVITS among them) send a header whose data length is 0 and then raw
    PCM until the connection ends, so a zero length means "until the end". `sample_rate` is None
    until the header has been read.
    """

    def __init__(self) -> None:
        self.sample_rate: int | None = None
        self.channels = 1
        self._dtype: np.dtype | None = None
        self._buffer = bytearray()
        self._data_left: int | None = None  # None: unbounded

    def feed(self, data: bytes) -> np.ndarray:
        """Add bytes; return the samples they complete. Raises ValueError when this is not WAV."""
        self._buffer += data
        if self._dtype is None and not self._read_header():
            return _EMPTY
        return self._take_samples()

    def finish(self) -> None:
        """Check the stream ended cleanly; raise ValueError when it stopped inside the header."""
        if self._dtype is None:
            raise ValueError(f"the WAV stream ended inside its header ({len(self._buffer)} bytes)")

    def _read_header(self) -> bool:
        buf = self._buffer
        self._check_magic()
        if len(buf) < _RIFF_HEADER:
            return False
        pos = _RIFF_HEADER
        fmt: tuple[int, int, int, int] | None = None
        while len(buf) >= pos + _CHUNK_HEADER:
            chunk_id = bytes(buf[pos : pos + 4])
            (size,) = struct.unpack_from("<I", buf, pos + 4)
            body = pos + _CHUNK_HEADER
            if chunk_id == b"data":
                if fmt is None:
                    raise ValueError("WAV data chunk comes before its fmt chunk")
                self._set_format(*fmt)
                self._data_left = None if size in _UNKNOWN_LENGTHS else size
                del buf[:body]
                return True
            if len(buf) < body + size:
                return False  # wait for the rest of this chunk
            if chunk_id == b"fmt ":
                fmt = _parse_fmt(bytes(buf[body : body + size]))
            pos = body + size + (size & 1)  # chunks are padded to even sizes
        return False

    def _check_magic(self) -> None:
        head = bytes(self._buffer[:_RIFF_HEADER])
        riff, wave = head[:4], head[8:12]
        if not b"RIFF".startswith(riff) or not b"WAVE".startswith(wave):
            raise ValueError(f"not a WAV stream (it starts with {head[:12]!r})")

    def _set_format(self, audio_format: int, channels: int, sample_rate: int, bits: int) -> None:
        dtypes = {(_PCM, 16): "<i2", (_PCM, 32): "<i4", (_FLOAT, 32): "<f4", (_FLOAT, 64): "<f8"}
        if (audio_format, bits) not in dtypes:
            raise ValueError(f"unsupported WAV sample format {audio_format} with {bits} bits")
        if channels < 1 or sample_rate < 1:
            raise ValueError(f"invalid WAV header: {channels} channels at {sample_rate} Hz")
        self._dtype = np.dtype(dtypes[(audio_format, bits)])
        self.channels = channels
        self.sample_rate = sample_rate

    def _take_samples(self) -> np.ndarray:
        assert self._dtype is not None
        available = len(self._buffer)
        if self._data_left is not None:
            available = min(available, self._data_left)
        frame_bytes = self._dtype.itemsize * self.channels
        usable = available - available % frame_bytes  # an odd byte waits for its partner
        if usable == 0:
            if self._data_left is not None and self._data_left < frame_bytes:
                self._buffer.clear()  # past the data chunk: trailing chunks are not audio
            return _EMPTY
        raw = np.frombuffer(self._buffer[:usable], self._dtype)  # the slice is already a copy
        del self._buffer[:usable]
        if self._data_left is not None:
            self._data_left -= usable
        return _to_float_mono(raw, self.channels)


def _parse_fmt(body: bytes) -> tuple[int, int, int, int]:
    if len(body) < 16:
        raise ValueError("WAV fmt chunk is too short")
    audio_format, channels, sample_rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
    if audio_format == _EXTENSIBLE and len(body) >= 26:
        (audio_format,) = struct.unpack_from("<H", body, 24)  # first two bytes of the sub-format GUID
    return audio_format, channels, sample_rate, bits


def _to_float_mono(samples: np.ndarray, channels: int) -> np.ndarray:
    if samples.dtype.kind == "i":
        pcm = samples.astype(np.float32) / float(np.iinfo(samples.dtype).max + 1)
    else:
        pcm = samples.astype(np.float32)
    if channels > 1:
        pcm = pcm.reshape(-1, channels).mean(axis=1)
    return np.clip(pcm, -1.0, 1.0)


class Mp3StreamDecoder:
    """MP3 bytes in (any split), PCM out, decoded with PyAV's bundled FFmpeg.

    An ID3v2 tag at the start is skipped: FFmpeg's frame parser would hand it to the decoder as a
    broken frame. Call `flush` at the end for the frames the parser still holds.
    """

    def __init__(self) -> None:
        import av

        self._av = av
        self._codec = av.CodecContext.create("mp3", "r")
        self._resampler = av.AudioResampler(format="flt", layout="mono")
        self._head = bytearray()  # bytes held until we know whether an ID3 tag is present
        self._started = False
        self.sample_rate: int | None = None

    def feed(self, data: bytes) -> np.ndarray:
        if not self._started:
            self._head += data
            data = self._skip_id3()
            if not data:
                return _EMPTY
        return self._decode(self._codec.parse(data))

    def flush(self) -> np.ndarray:
        pieces = []
        if not self._started and self._head:
            # The stream ended while we held bytes back for the ID3 check: decode them as they are.
            self._started = True
            pieces.append(self._decode(self._codec.parse(bytes(self._head))))
            self._head.clear()
        pieces.append(self._decode(self._codec.parse(None)))
        pieces.append(self._frames_to_pcm(self._codec.decode(None)))
        return np.concatenate(pieces)

    def _skip_id3(self) -> bytes:
        head = self._head
        if len(head) < 10 and b"ID3".startswith(bytes(head[:3])):
            return b""  # too short to tell
        if head[:3] == b"ID3":
            size = 10 + _syncsafe(head[6:10]) + (10 if head[5] & 0x10 else 0)  # footer flag
            if len(head) < size:
                return b""
            del head[:size]
        self._started = True
        data = bytes(head)
        head.clear()
        return data

    def _decode(self, packets: list) -> np.ndarray:
        pieces = []
        for packet in packets:
            try:
                frames = self._codec.decode(packet)
            except self._av.error.InvalidDataError:
                continue  # a damaged frame is dropped, as players do
            pieces.append(self._frames_to_pcm(frames))
        return np.concatenate(pieces) if pieces else _EMPTY

    def _frames_to_pcm(self, frames: list) -> np.ndarray:
        pieces = []
        for frame in frames:
            self.sample_rate = frame.sample_rate
            for mono in self._resampler.resample(frame):
                pieces.append(mono.to_ndarray().reshape(-1))
        return np.concatenate(pieces).astype(np.float32, copy=False) if pieces else _EMPTY


def _syncsafe(four: bytes | bytearray) -> int:
    return (four[0] << 21) | (four[1] << 14) | (four[2] << 7) | four[3]
