"""`say --play`: how long after the voice is ready does the first frame show in the window?

Runs the real window (pygame; SDL's dummy video driver when there is no display) and the real voice and
animator, and prints one JSON object. Target: first frame <= 0.5 s after the first TTS audio.
Run: .venv/bin/python benchmarks/play_latency.py [--runs 5] [--character ada]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time

from digihuman.character import find_character
from digihuman.config import load_settings
from digihuman.frontend.say import open_window
from digihuman.session import Conversation

TEXT = "Hello there, I'm your digital human. It's nice to meet you."


async def measure(character_name: str, runs: int) -> list[dict[str, float]]:
    settings = load_settings()
    character = find_character(character_name)
    session = Conversation(character, settings)
    await session.prepare()
    window = await open_window(session)
    if window is None:
        raise SystemExit("no window could be opened")
    await session.start([window])
    rows = []
    try:
        for _ in range(runs):
            started = time.monotonic()
            result = await session.speak(TEXT)
            voice_ready = result.metrics.as_dict()["tts_first_audio_s"]
            shown_at = window.first_frame_shown_at[result.turn_id] - result.metrics.started_at
            rows.append(
                {
                    "voice_ready_s": voice_ready,
                    "first_frame_shown_s": shown_at,
                    "frame_after_voice_s": shown_at - voice_ready,
                    "turn_wall_s": time.monotonic() - started,
                    "audio_s": result.audio_s,
                }
            )
    finally:
        await session.aclose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--character", default="ada")
    args = parser.parse_args()
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    rows = asyncio.run(measure(args.character, args.runs))
    gaps = [r["frame_after_voice_s"] for r in rows]
    print(
        json.dumps(
            {
                "benchmark": "play_latency",
                "display": os.environ.get("DISPLAY") or os.environ.get("SDL_VIDEODRIVER"),
                "frame_after_voice_s_median": round(statistics.median(gaps), 4),
                "frame_after_voice_s_max": round(max(gaps), 4),
                "target_s": 0.5,
                "runs": [{k: round(v, 4) for k, v in r.items()} for r in rows],
            }
        )
    )


if __name__ == "__main__":
    main()
