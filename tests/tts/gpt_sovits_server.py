"""A stand-in for GPT-SoVITS `api_v2.py`: real HTTP on 127.0.0.1, the documented behaviour, no model.

It follows RVC-Boss/GPT-SoVITS api_v2.py (see /work/shared/reference/backends.md):
- `/tts` by POST (JSON) or GET (query); required text, text_lang, ref_audio_path, prompt_lang, with the
  same 400 messages; languages checked per model version;
- inference errors: 400 `{"message": "tts failed", "Exception": ...}` outside streaming; inside a
  streaming response the generator raises after the 200 went out, so the connection just drops;
- the reference audio must exist on this machine's disk and be 3-10 s long; v3/v4 need prompt_text;
- streaming WAV: a header with data length 0, then raw int16 PCM (fragment per cut5 segment for
  mode 1, smaller pieces for modes 2/3); non-streaming: one complete WAV written by soundfile;
- `--api old` is the 20250606v2pro-era server: streaming_mode is a bool (FastAPI answers 422 to 2 or 3)
  and its streaming header always says 32000 Hz, whatever the model's rate;
- `--get-only` has no POST route (405), like a server that only registered GET.

The "speech" is a deterministic tone per segment, so tests can compare exact samples: see `render`.

Run: `python -m tests.tts.gpt_sovits_server --port 9880 [--version v2] [--api newest|old]`.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import soundfile as sf

SAMPLE_RATES = {"v1": 32000, "v2": 32000, "v2Pro": 32000, "v2ProPlus": 32000, "v3": 24000, "v4": 48000}
V1_LANGUAGES = ["auto", "en", "zh", "ja", "all_zh", "all_ja"]
V2_LANGUAGES = ["auto", "auto_yue", "en", "zh", "ja", "yue", "ko", "all_zh", "all_ja", "all_yue", "all_ko"]
CUT_METHODS = ["cut0", "cut1", "cut2", "cut3", "cut4", "cut5"]
REF_AUDIO_RANGE_MESSAGE = "参考音频在3~10秒范围外，请更换！"
SECONDS_PER_CHAR = 0.02
PIECE_S = 0.05  # streaming modes 2 and 3 send pieces of about this length
_CUT5 = re.compile(r"(?<=[,.;?!、，。？！：…])")


def segments(text: str) -> list[str]:
    """cut5: split after every punctuation mark."""
    return [s for s in (p.strip() for p in _CUT5.split(text)) if s]


def render(text: str, sample_rate: int, speed_factor: float = 1.0) -> list[np.ndarray]:
    """The int16 audio of each segment: a tone whose length follows the text."""
    pieces = []
    for index, segment in enumerate(segments(text)):
        n = int(sample_rate * max(0.1, SECONDS_PER_CHAR * len(segment)) / speed_factor)
        t = np.arange(n) / sample_rate
        tone = 0.3 * np.sin(2 * np.pi * (220 + 40 * index) * t)
        pieces.append((tone * 32767).astype(np.int16))
    return pieces


class InferenceError(Exception):
    """What `TTS.run` raises in the real server."""


@dataclass
class StandIn:
    version: str = "v2"
    api: str = "newest"  # or "old"
    get_only: bool = False
    first_delay_s: float = 0.0  # "inference" time before the first audio
    piece_delay_s: float = 0.0  # between streamed pieces
    jagged: bool = False  # split the header and the PCM into odd-sized writes
    break_after_pieces: int | None = None  # drop the connection mid-stream
    requests: list[dict[str, Any]] = field(default_factory=list)
    disconnected: threading.Event = field(default_factory=threading.Event)
    pieces_sent: int = 0
    max_in_flight: int = 0  # the real pipeline is shared: concurrent requests would corrupt it
    _in_flight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATES[self.version]

    @property
    def languages(self) -> list[str]:
        return V1_LANGUAGES if self.version == "v1" else V2_LANGUAGES

    def check_params(self, req: dict[str, Any]) -> str | None:
        """api_v2's check_params: the message of the 400, or None."""
        text_lang, prompt_lang = req.get("text_lang"), req.get("prompt_lang")
        if req.get("ref_audio_path") in (None, ""):
            return "ref_audio_path is required"
        if req.get("text") in (None, ""):
            return "text is required"
        if text_lang in (None, ""):
            return "text_lang is required"
        if text_lang.lower() not in self.languages:
            return self._unsupported("text_lang", text_lang)
        if prompt_lang in (None, ""):
            return "prompt_lang is required"
        if prompt_lang.lower() not in self.languages:
            return self._unsupported("prompt_lang", prompt_lang)
        media_type = req.get("media_type", "wav")
        if media_type not in ("wav", "raw", "ogg", "aac"):
            return f"media_type: {media_type} is not supported"
        if req.get("text_split_method", "cut5") not in CUT_METHODS:
            return f"text_split_method:{req['text_split_method']} is not supported"
        return None

    def _unsupported(self, key: str, value: str) -> str:
        if self.api == "old":
            return f"{key} is not supported"
        return f"{key}: {value} is not supported in version {self.version}"

    def infer(self, req: dict[str, Any]) -> list[np.ndarray]:
        """TTS.run's checks, then the audio."""
        path = req["ref_audio_path"]
        if self.version in ("v3", "v4") and not req.get("prompt_text"):
            raise InferenceError("prompt_text cannot be empty when using SoVITS_V3")
        if not Path(path).exists():
            raise InferenceError(f"{path} not exists")
        if not 3.0 <= sf.info(path).duration <= 10.0:
            raise InferenceError(REF_AUDIO_RANGE_MESSAGE)
        if self.first_delay_s:
            time.sleep(self.first_delay_s)
        return render(req["text"], self.sample_rate, float(req.get("speed_factor", 1.0)))


def _parse_bool(value: Any) -> bool | None:
    """pydantic's lax bool: True/False, 0/1 and the usual strings; None when it is not one."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.lower()
        if lowered in ("1", "true", "t", "yes", "y", "on"):
            return True
        if lowered in ("0", "false", "f", "no", "n", "off"):
            return False
    return None


def _parse_streaming_mode(value: Any, api: str) -> bool | int | None:
    as_bool = _parse_bool(value)
    if as_bool is not None or api == "old":
        return as_bool
    try:  # newest: Union[bool, int]
        return int(value)
    except (TypeError, ValueError):
        return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read `requests`
        pass

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/tts":
            return self._json(404, {"detail": "Not Found"})
        req = {k: v[-1] for k, v in parse_qs(url.query).items()}
        self._handle("GET", req, "query")

    def do_POST(self) -> None:
        if urlsplit(self.path).path != "/tts":
            return self._json(404, {"detail": "Not Found"})
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.server.standin.get_only:
            self.server.standin.requests.append({"method": "POST", "status": 405})
            return self._json(405, {"detail": "Method Not Allowed"})
        try:
            req = json.loads(body)
        except ValueError:
            return self._json(
                422, {"detail": [{"type": "json_invalid", "loc": ["body"], "msg": "JSON decode error"}]}
            )
        self._handle("POST", req, "body")

    def _handle(self, method: str, req: dict[str, Any], where: str) -> None:
        standin = self.server.standin
        record = {"method": method, **req}
        standin.requests.append(record)
        mode = _parse_streaming_mode(req.get("streaming_mode", False), standin.api)
        if mode is None:
            return self._json(
                422,
                {
                    "detail": [
                        {
                            "type": "bool_parsing",
                            "loc": [where, "streaming_mode"],
                            "msg": "Input should be a valid boolean, unable to interpret input",
                            "input": req["streaming_mode"],
                        }
                    ]
                },
            )
        if (message := standin.check_params(req)) is not None:
            return self._json(400, {"message": message})
        if not isinstance(mode, bool) and mode not in (0, 1, 2, 3):
            return self._json(
                400, {"message": "the value of streaming_mode must be 0, 1, 2, 3(int) or true/false(bool)"}
            )
        record["status"] = 200
        standin.enter()
        try:
            if int(mode) == 0:
                self._whole(req)
            else:
                self._stream(req, small_pieces=int(mode) >= 2)
        finally:
            standin.leave()

    def _whole(self, req: dict[str, Any]) -> None:
        standin = self.server.standin
        try:
            pcm = np.concatenate(standin.infer(req))
        except InferenceError as exc:
            return self._json(400, {"message": "tts failed", "Exception": str(exc)})
        buffer = io.BytesIO()
        sf.write(buffer, pcm, standin.sample_rate, format="WAV", subtype="PCM_16")
        self._send(200, buffer.getvalue(), "audio/wav")

    def _stream(self, req: dict[str, Any], small_pieces: bool) -> None:
        standin = self.server.standin
        self.send_response(200)
        self.send_header("Content-Type", "audio/wav")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            if standin.api == "old":  # the old server sent its (32 kHz) header before running the model
                self._write(_wav_header(32000))
            try:
                pieces = standin.infer(req)
            except InferenceError:
                return self._drop()  # uvicorn logs the exception and closes the connection
            if standin.api != "old":
                self._write(_wav_header(standin.sample_rate))
            if small_pieces:
                step = int(PIECE_S * standin.sample_rate)
                pieces = [p[i : i + step] for p in pieces for i in range(0, len(p), step)]
            for index, piece in enumerate(pieces):
                if standin.break_after_pieces is not None and index >= standin.break_after_pieces:
                    return self._drop()
                if standin.piece_delay_s:
                    time.sleep(standin.piece_delay_s)
                self._write(piece.tobytes())
                standin.pieces_sent += 1
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            standin.disconnected.set()
            self.close_connection = True

    def _write(self, data: bytes) -> None:
        sizes = [len(data)]
        if self.server.standin.jagged:  # odd pieces, the first one cutting the header in two
            sizes = [min(7, len(data))] + [1001] * ((len(data) - 7) // 1001 + 1)
        for start, size in _spans(sizes, len(data)):
            self.wfile.write(f"{size:X}\r\n".encode() + data[start : start + size] + b"\r\n")
            self.wfile.flush()
            if self.server.standin.jagged:
                time.sleep(0.002)

    def _drop(self) -> None:
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def _json(self, status: int, content: dict[str, Any]) -> None:
        self._send(status, json.dumps(content, ensure_ascii=False).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _spans(sizes: list[int], total: int) -> list[tuple[int, int]]:
    spans, start = [], 0
    for size in sizes:
        size = min(size, total - start)
        if size > 0:
            spans.append((start, size))
            start += size
    return spans


def _wav_header(sample_rate: int) -> bytes:
    """What api_v2's wave_header_chunk() yields: a mono int16 header with no frames."""
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(b"")
    return buffer.getvalue()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: StandIn


class Running:
    """A stand-in serving on a background thread; use as a context manager."""

    def __init__(self, standin: StandIn, port: int = 0) -> None:
        self.standin = standin
        self._server = _Server(("127.0.0.1", port), Handler)
        self._server.standin = standin
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    def __enter__(self) -> Running:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=9880, help="0 picks a free port")
    parser.add_argument("--version", default="v2", choices=sorted(SAMPLE_RATES))
    parser.add_argument("--api", default="newest", choices=["newest", "old"])
    parser.add_argument("--get-only", action="store_true")
    parser.add_argument("--first-delay", type=float, default=0.0, metavar="S")
    parser.add_argument("--piece-delay", type=float, default=0.0, metavar="S")
    args = parser.parse_args()
    standin = StandIn(args.version, args.api, args.get_only, args.first_delay, args.piece_delay)
    server = _Server(("127.0.0.1", args.port), Handler)
    server.standin = standin
    print(
        f"GPT-SoVITS stand-in ({args.version}, {args.api}) on http://127.0.0.1:{server.server_address[1]}",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
