"""How many web sessions one machine holds while all of them speak: prints one JSON line.

Each session gets a long reply (the stand-in LLM's endless `long` script) and its frames are counted at the
client over a window while all speak at once (frames due in the window on a page playing in real time that
arrived in time); more sessions are added until one falls below 25 fps
delivered (or `--max` is reached). The server runs in its own process; its CPU use is read from /proc.

.venv/bin/python benchmarks/server_sessions.py [--start 2] [--max 12] [--window 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from server_common import Client, Server, cpu_seconds, running_server

TARGET_FPS = 25.0


async def measure(server: Server, count: int, window_s: float) -> dict[str, object]:
    ids = [server.new_session("ada" if i % 2 == 0 else "xiaomei") for i in range(count)]
    clients = [await Client.connect(server, i) for i in ids]
    readers = [asyncio.create_task(c.run()) for c in clients]
    for client in clients:
        await client.send({"type": "user_text", "text": "Tell me a long story."})
    await asyncio.sleep(4.0)  # every session is speaking by now (thinking, first sentence, buffer filled)
    cpu_before, start = cpu_seconds(server.process.pid), time.monotonic()
    await asyncio.sleep(window_s)
    end, cpu_after = time.monotonic(), cpu_seconds(server.process.pid)
    fps = [round(c.video_due_between(start, end) / (end - start), 1) for c in clients]
    for client in clients:
        await client.send({"type": "interrupt"})
        await client.ws.close()
    for reader in readers:
        reader.cancel()
    with server.http() as http:
        for session_id in ids:
            http.delete(f"/v1/sessions/{session_id}")
    cores = (cpu_after - cpu_before) / (end - start)
    return {"sessions": count, "fps": fps, "min_fps": min(fps), "server_cores": round(cores, 2)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=int, default=2)
    parser.add_argument("--step", type=int, default=2)
    parser.add_argument("--max", type=int, default=12)
    parser.add_argument("--window", type=float, default=8.0, help="seconds of speech measured per step")
    args = parser.parse_args()
    runs = []
    with running_server("long", max_sessions=args.max) as server:
        count = args.start
        while count <= args.max:
            run = await measure(server, count, args.window)
            runs.append(run)
            if float(run["min_fps"]) < TARGET_FPS * 0.98:  # 24.5: counting over a window rounds
                break
            count += args.step
    held = max((r["sessions"] for r in runs if float(r["min_fps"]) >= TARGET_FPS * 0.98), default=0)
    print(
        json.dumps(
            {
                "benchmark": "server_sessions",
                "size": 512,
                "target_fps": TARGET_FPS,
                "held": held,
                "runs": runs,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
