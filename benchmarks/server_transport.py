"""Why the page's media go over a WebSocket as JPEG + PCM and not WebRTC: prints one JSON line.

WebRTC (aiortc) would encode each session's video with VP8 or H.264 in software on the server; the WebSocket
stream sends each frame as a JPEG. This measures the CPU per 512 px talking frame for each encoder (PyAV's
libvpx and libx264 stand in for aiortc's, which use the same libraries) and the bytes per second.

.venv/bin/python benchmarks/server_transport.py [--frames 150]
"""

from __future__ import annotations

import argparse
import json
import time
from fractions import Fraction
from typing import Any

import av
import numpy as np

from digihuman.character import find_character
from digihuman.config import Settings
from digihuman.face.visemes import MouthShape
from digihuman.performer import make_face
from digihuman.server.media import encode_jpeg


def talking_frames(count: int) -> list[np.ndarray]:
    face: Any = make_face(find_character("ada"), Settings())  # the built-in animator
    frames = []
    for index in range(count):
        shape = MouthShape(jaw=float(0.5 + 0.5 * np.sin(index / 2.0)))
        frames.append(face.render(face.mouth_weights(shape), index / 25))
    return frames


def video_codec(name: str, frames: list[np.ndarray], options: dict[str, str]) -> tuple[float, float]:
    codec = av.CodecContext.create(name, "w")
    codec.width, codec.height, codec.pix_fmt = 512, 512, "yuv420p"
    codec.time_base = Fraction(1, 25)
    codec.bit_rate = 1_000_000
    codec.options = options
    size = 0
    started = time.process_time()
    for index, image in enumerate(frames):
        picture = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        picture.pts = index
        size += sum(p.size for p in codec.encode(picture))
    return (time.process_time() - started) / len(frames) * 1000, size / len(frames) * 25 / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=150)
    args = parser.parse_args()
    frames = talking_frames(args.frames)
    started = time.process_time()
    jpeg_bytes = sum(len(encode_jpeg(f)) for f in frames)
    jpeg_ms = (time.process_time() - started) / len(frames) * 1000
    vp8_ms, vp8_kbs = video_codec("libvpx", frames, {"deadline": "realtime", "cpu-used": "8"})
    h264_ms, h264_kbs = video_codec("libx264", frames, {"preset": "ultrafast", "tune": "zerolatency"})
    print(
        json.dumps(
            {
                "benchmark": "server_transport",
                "jpeg_ms_per_frame": round(jpeg_ms, 2),
                "jpeg_kB_per_s": round(jpeg_bytes / len(frames) * 25 / 1000),
                "vp8_realtime_ms_per_frame": round(vp8_ms, 2),
                "vp8_kB_per_s": round(vp8_kbs),
                "h264_ultrafast_ms_per_frame": round(h264_ms, 2),
                "h264_kB_per_s": round(h264_kbs),
            }
        )
    )


if __name__ == "__main__":
    main()
