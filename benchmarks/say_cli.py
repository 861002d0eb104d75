"""Time `digihuman say` from process start to finished MP4, and its peak memory.

Prints one JSON object. Run: .venv/bin/python benchmarks/say_cli.py [--runs 3] [--character ada]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SENTENCES = {
    "en": "Hello there, I'm your digital human. I run on your own computer, "
    "and I'm happy to talk with you today.",
    "zh": "你好，我是你的数字人，就住在你的电脑里。很高兴认识你！",
}


def media_durations(path: Path) -> dict[str, float]:
    import av

    with av.open(str(path)) as container:
        out = {}
        for stream in container.streams:
            out[stream.type] = float(stream.duration * stream.time_base) if stream.duration else 0.0
        return out


def run_once(character: str, text: str, out: Path) -> dict[str, float]:
    cli = Path(sys.executable).with_name("digihuman")
    start = time.perf_counter()
    proc = subprocess.run(
        [str(cli), "say", text, "-c", character, "-o", str(out)], capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"say failed: {proc.stderr.strip()}")
    return {"wall_s": wall, **{f"{k}_s": v for k, v in media_durations(out).items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--character", default="ada")
    parser.add_argument("--language", default="en", choices=sorted(SENTENCES))
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("DIGIHUMAN_HOME", tmp)
        for i in range(args.runs):
            runs.append(run_once(args.character, SENTENCES[args.language], Path(tmp) / f"{i}.mp4"))
    peak_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    walls = sorted(r["wall_s"] for r in runs)
    print(
        json.dumps(
            {
                "benchmark": "say_cli",
                "character": args.character,
                "cores": os.cpu_count(),
                "audio_s": round(runs[0].get("audio_s", 0.0), 3),
                "video_s": round(runs[0].get("video_s", 0.0), 3),
                "wall_s_median": round(walls[len(walls) // 2], 3),
                "wall_s_max": round(walls[-1], 3),
                "target_wall_s": 3.0,
                "peak_rss_mb": round(peak_rss_mb, 1),
                "target_rss_mb": 600,
                "runs": [{k: round(v, 3) for k, v in r.items()} for r in runs],
            }
        )
    )


if __name__ == "__main__":
    main()
