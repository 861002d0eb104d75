"""CPU of the whole `digihuman run` process while idle, with a video-file camera and default settings.

Starts the stand-in Ollama server, generates a static 640x480 30 fps clip, runs
`digihuman run --camera CLIP --no-window` and, once the greeting is over, samples the process's CPU time
(/proc, all threads) over a quiet window. Prints one JSON object; target: <= 10% of one core.

    .venv/bin/python benchmarks/run_idle_cpu.py [--settle 12] [--seconds 30]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from camera_idle_cpu import make_static_video  # noqa: E402
from stand_in import ollama_stand_in  # noqa: E402

TARGET_PERCENT = 10.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--settle", type=float, default=12.0, help="seconds for start-up and the greeting")
    parser.add_argument("--seconds", type=float, default=30.0, help="the idle window measured")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, ollama_stand_in() as ollama_url:
        clip = Path(tmp) / "static.mp4"
        make_static_video(clip, seconds=int(args.settle + args.seconds + 10))
        env = {**os.environ, "DIGIHUMAN_HOME": tmp}
        cli = Path(sys.executable).with_name("digihuman")
        run = subprocess.Popen(
            [
                str(cli),
                "run",
                "--camera",
                str(clip),
                "--no-window",
                "--llm-url",
                ollama_url,
                "--record",
                str(Path(tmp) / "rec"),
            ],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            time.sleep(args.settle)
            cpu0, wall0 = cpu_seconds(run.pid), time.monotonic()
            time.sleep(args.seconds)
            cpu1, wall1 = cpu_seconds(run.pid), time.monotonic()
        finally:
            run.send_signal(2)  # Ctrl-C: the companion's normal way out
            _, stderr = run.communicate(timeout=30)
        turns = (Path(tmp) / "rec" / "turns.jsonl").read_text().splitlines()
    percent = 100 * (cpu1 - cpu0) / (wall1 - wall0)
    print(
        json.dumps(
            {
                "benchmark": "run_idle_cpu",
                "camera": "640x480 30 fps static video file, default camera settings",
                "idle_window_s": round(wall1 - wall0, 1),
                "cpu_percent_of_one_core": round(percent, 2),
                "target_percent": TARGET_PERCENT,
                "ok": percent <= TARGET_PERCENT,
                "turns_spoken": len(turns),
                "exit_code": run.returncode,
                "cost_line": next((ln for ln in stderr.splitlines() if ln.startswith("model cost")), ""),
            }
        )
    )


if __name__ == "__main__":
    main()
