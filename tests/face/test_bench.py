from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from digihuman.face.bench import run_animator_benchmark

REPO = Path(__file__).resolve().parents[2]


def test_benchmark_reports_speed_on_one_core() -> None:
    result = run_animator_benchmark(size=512, threads=1, frames=60)
    assert result["resolution"] == 512 and result["threads"] == 1 and result["frames"] == 60
    assert result["fps"] > 0 and result["ms_per_frame"] > 0
    # The requirement is 100 frames/s on one core. CPU time is what this process spent, so other work
    # on a busy test machine does not count against it.
    assert result["cpu_ms_per_frame"] < 10.0


def test_benchmark_script_prints_one_json_line() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "animator.py"), "--size", "128", "--frames", "10"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["resolution"] == 128 and result["frames"] == 10 and result["threads"] == 1


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"frames": 0}, "--frames 0"),
        ({"size": 0}, "--size 0"),
        ({"size": 65}, "must be even"),
        ({"threads": 0}, "--threads 0"),
    ],
)
def test_impossible_options_are_one_line_user_errors(options: dict[str, int], needle: str) -> None:
    from digihuman.errors import UserError

    with pytest.raises(UserError, match=needle):
        run_animator_benchmark(**options)
