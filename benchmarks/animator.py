"""Benchmark the built-in portrait animator: prints one JSON line.

.venv/bin/python benchmarks/animator.py [--size 512] [--threads 1] [--frames 300]
"""

from __future__ import annotations

import argparse
import json

from digihuman.face.bench import run_animator_benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="frame size in pixels (square)")
    parser.add_argument("--threads", type=int, default=1, help="animator render threads")
    parser.add_argument("--frames", type=int, default=300, help="frames of speech to render")
    args = parser.parse_args()
    print(json.dumps(run_animator_benchmark(size=args.size, threads=args.threads, frames=args.frames)))


if __name__ == "__main__":
    main()
