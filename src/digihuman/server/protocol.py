"""The web protocol (version 1): JSON control messages and binary media frames on one WebSocket.

Text frames are JSON objects with a `type`. Binary frames carry media with a fixed 20-byte header,
little-endian: `kind` (u8), 3 pad bytes, `turn` (u32: 0 for the idle clip and the client's own media),
`t` (f64: pts or start on the turn's timeline, seconds), `extra` (u32: the sample rate for audio, the
frame index for the idle clip, else 0), then the payload.

Server -> client kinds: AUDIO (int16 mono PCM, `t` = start on the turn timeline), VIDEO (JPEG, `t` = pts),
IDLE (JPEG of the idle loop, `extra` = index; sent once per connection, the browser loops it).
Client -> server kinds: MIC (int16 mono PCM at `extra` Hz, 16 kHz expected), CAMERA (JPEG).

A timed media frame and the turn clock share one timeline, so the browser plays audio at
`turn_start + t` on its AudioContext and shows the newest frame whose pts that clock has reached.

`hello` is exchanged first (the server sends its own on connect; the client answers with its
capabilities). A later protocol can add `render: "rig"` (the browser warps the portrait itself from the
rig, sent once, and per-frame weights); a server offers only what both sides list.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

PROTOCOL_VERSION = 1
HEADER = struct.Struct("<B3xIdI")  # kind, turn, t, extra
AUDIO, VIDEO, IDLE, MIC, CAMERA = 1, 2, 3, 16, 17
RENDER_MODES = ("frames",)  # "rig" (browser-side animation) is reserved for a later version

MAX_TEXT_CHARS = 10_000
MAX_JSON_BYTES = 64 * 1024  # a control message; user text is at most 10,000 chars (40 kB of UTF-8)
MAX_MEDIA_BYTES = 1024 * 1024  # one mic chunk or camera JPEG
MIC_RATE = 16000


class ProtocolError(ValueError):
    """A message the server cannot use; it answers with an `error` event and carries on."""


@dataclass(frozen=True, slots=True)
class MediaFrame:
    kind: int
    turn: int
    t: float
    extra: int
    payload: bytes


def pack(kind: int, turn: int, t: float, extra: int, payload: bytes) -> bytes:
    return HEADER.pack(kind, turn, t, extra) + payload


def unpack(data: bytes) -> MediaFrame:
    if len(data) < HEADER.size:
        raise ProtocolError(f"a binary message needs a {HEADER.size}-byte header")
    kind, turn, t, extra = HEADER.unpack_from(data)
    return MediaFrame(kind, turn, t, extra, bytes(data[HEADER.size :]))


def pcm16(pcm: np.ndarray) -> bytes:
    """Float PCM in [-1, 1] as little-endian int16 (half the bytes of float32, what the browser decodes)."""
    clipped = np.clip(np.asarray(pcm, dtype=np.float32), -1.0, 1.0)
    return (clipped * 32767.0).astype("<i2").tobytes()


def from_pcm16(payload: bytes) -> np.ndarray:
    if len(payload) % 2:
        raise ProtocolError("microphone audio must be 16-bit PCM (an even number of bytes)")
    return np.frombuffer(payload, dtype="<i2").astype(np.float32) / 32768.0


def parse_json(text: str) -> dict[str, Any]:
    """A client control message, checked for shape (not for meaning: that is the session's job)."""
    if len(text.encode("utf-8")) > MAX_JSON_BYTES:
        raise ProtocolError(f"message too large: at most {MAX_JSON_BYTES // 1024} kB of JSON")
    try:
        message = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"not JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError('a message must be a JSON object with a "type"')
    kind = message["type"]
    if kind not in CLIENT_TYPES:
        raise ProtocolError(f"unknown message type {kind!r}; known: {', '.join(sorted(CLIENT_TYPES))}")
    for key, expected in CLIENT_TYPES[kind].items():
        name, optional = key.rstrip("?"), key.endswith("?")
        value = message.get(name)
        if value is None and optional:
            continue
        wrong_bool = isinstance(value, bool) and expected is not bool
        if value is None or wrong_bool or not isinstance(value, expected):
            raise ProtocolError(f"{kind}: {name!r} must be {_type_name(expected)}")
    if kind == "user_text":
        check_text(message["text"])
    return message


def check_text(text: str) -> str:
    if not text.strip():
        raise ProtocolError("the text is empty")
    if len(text) > MAX_TEXT_CHARS:
        raise ProtocolError(f"the text is too long: at most {MAX_TEXT_CHARS:,} characters")
    return text


def _type_name(expected: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false", dict: "an object"}
    if isinstance(expected, tuple):
        return " or ".join(names.get(t, t.__name__) for t in expected)
    return names.get(expected, expected.__name__)


# Client message types and their fields (a trailing "?" marks an optional one).
CLIENT_TYPES: dict[str, dict[str, type | tuple[type, ...]]] = {
    "hello": {"protocol": int, "capabilities?": dict},
    "user_text": {"text": str},
    "interrupt": {},
    # Playback position the browser heard of a turn; `done` once its last sample played.
    "played": {"turn": int, "played_s": (int, float), "done?": bool},
    # The microphone opened or closed: binary MIC frames are accepted only in between.
    "mic": {"state": str},
    "ping": {},
}


def server_hello(
    session_id: str, character: dict[str, Any], *, fps: int, size: int, resumed: bool
) -> dict[str, Any]:
    return {
        "type": "hello",
        "protocol": PROTOCOL_VERSION,
        "session": session_id,
        "character": character,
        "resumed": resumed,
        "render": "frames",
        "render_modes": list(RENDER_MODES),
        "media": {
            "audio": {"codec": "pcm16", "kind": AUDIO},
            "video": {"codec": "jpeg", "kind": VIDEO, "fps": fps, "size": size},
            "idle": {"codec": "jpeg", "kind": IDLE},
            "mic": {"codec": "pcm16", "kind": MIC, "sample_rate": MIC_RATE},
            "camera": {"codec": "jpeg", "kind": CAMERA},
            "header": "<B3xIdI",
        },
        "limits": {
            "text_chars": MAX_TEXT_CHARS,
            "json_bytes": MAX_JSON_BYTES,
            "media_bytes": MAX_MEDIA_BYTES,
        },
    }
