"""What an idle web session costs: prints one JSON line.

Measured two ways. (1) The server as built: N pages connected, nothing said; the server process's CPU over
a window, per session. The page loops the idle clip it got once, so the server sends nothing. (2) The
alternative, live idle frames: the render + JPEG cost of one idle frame, as a share of a core at 25 and
5 fps, which is what each idle session would cost if the server streamed its idle face.

.venv/bin/python benchmarks/server_idle.py [--sessions 4] [--window 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from server_common import Client, cpu_seconds, running_server


def live_idle_frame_ms(frames: int = 100) -> float:
    from digihuman.character import find_character
    from digihuman.config import Settings
    from digihuman.performer import make_face
    from digihuman.server.media import IDLE_CLIP_QUALITY, encode_jpeg

    face = make_face(find_character("ada"), Settings())
    encode_jpeg(face.idle_frame(0.0), IDLE_CLIP_QUALITY)
    started = time.process_time()
    for index in range(frames):
        encode_jpeg(face.idle_frame(index / 25), IDLE_CLIP_QUALITY)
    return (time.process_time() - started) / frames * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--window", type=float, default=20.0)
    args = parser.parse_args()
    with running_server("ok", max_sessions=args.sessions) as server:
        baseline_start, baseline_cpu = time.monotonic(), cpu_seconds(server.process.pid)
        await asyncio.sleep(5)
        no_sessions = (cpu_seconds(server.process.pid) - baseline_cpu) / (time.monotonic() - baseline_start)
        ids = [server.new_session() for _ in range(args.sessions)]
        clients = [await Client.connect(server, i) for i in ids]
        readers = [asyncio.create_task(c.run()) for c in clients]
        await asyncio.sleep(5)  # the idle clips arrive (rendered once per character, shared)
        cpu_before, start = cpu_seconds(server.process.pid), time.monotonic()
        await asyncio.sleep(args.window)
        used = (cpu_seconds(server.process.pid) - cpu_before) / (time.monotonic() - start)
        received = sum(len(c.media) for c in clients)
        for client in clients:
            await client.ws.close()
        for reader in readers:
            reader.cancel()
    per_session = max(0.0, used - no_sessions) / args.sessions
    frame_ms = live_idle_frame_ms()
    print(
        json.dumps(
            {
                "benchmark": "server_idle",
                "sessions": args.sessions,
                "server_idle_no_sessions_core_pct": round(no_sessions * 100, 2),
                "server_with_sessions_core_pct": round(used * 100, 2),
                "per_idle_session_core_pct": round(per_session * 100, 2),
                "idle_clip_frames_received": received,
                "live_idle_frame_ms": round(frame_ms, 2),
                "live_idle_25fps_core_pct": round(frame_ms * 25 / 10, 1),
                "live_idle_5fps_core_pct": round(frame_ms * 5 / 10, 1),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
