"""Turn metrics, the per-turn JSON record, and per-hour cost accounting."""

from __future__ import annotations

import json

import pytest

from digihuman.llm.base import Usage
from digihuman.metrics import MILESTONES, CostMeter, TurnMetrics, turn_record
from digihuman.turn import TurnResult


class ManualClock:
    def __init__(self) -> None:
        self.t = 100.0

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds


def test_milestones_are_seconds_since_the_trigger_and_the_first_stamp_wins() -> None:
    clock = ManualClock()
    metrics = TurnMetrics(clock=clock)
    assert metrics.started_at == 100.0
    clock.t = 100.25
    metrics.mark("llm_first_token_s")
    clock.t = 101.0
    metrics.mark("llm_first_token_s")  # ignored: already reached
    metrics.mark("first_audio_played_s", at=100.75)
    assert metrics.llm_first_token_s == 0.25
    assert metrics.first_audio_played_s == 0.75
    assert metrics.elapsed() == 1.0
    record = metrics.as_dict()
    assert list(record) == list(MILESTONES)
    assert record["total_s"] is None and record["llm_first_token_s"] == 0.25


def test_turn_record_is_one_json_line_with_the_documented_keys() -> None:
    clock = ManualClock()
    metrics = TurnMetrics(clock=clock, started_at=99.0)
    metrics.mark("total_s")
    usage = Usage(prompt_tokens=812, completion_tokens=34, images=3, first_token_s=0.41, done_reason="stop")
    result = TurnResult(
        4, "proactive", "cut", None, "Hi there. Nice hat!", "Hi there.", metrics, usage, 2, 2.5, 1.2
    )
    meter = CostMeter(clock)
    meter.record(usage, "proactive")
    record = turn_record(result, meter)
    line = json.dumps(record)
    assert "\n" not in line
    for key in ("turn", "trigger", "status", "error", "text_spoken", "metrics", "usage"):
        assert key in record
    assert record["turn"] == 4 and record["trigger"] == "proactive" and record["status"] == "cut"
    assert record["text_spoken"] == "Hi there."
    assert record["metrics"]["total_s"] == 1.0
    assert {"prompt_tokens": 812, "completion_tokens": 34, "images": 3}.items() <= record["usage"].items()
    assert record["cost"]["calls"] == 1


def test_cost_meter_counts_calls_tokens_and_images_per_hour() -> None:
    clock = ManualClock()
    meter = CostMeter(clock)
    for _ in range(3):
        meter.record(Usage(prompt_tokens=1000, completion_tokens=50, images=3), "proactive")
    meter.record(Usage(prompt_tokens=400, completion_tokens=20), "user")
    clock.t += 1800  # half an hour
    snap = meter.snapshot()
    assert snap["calls"] == 4 and snap["images"] == 9
    assert snap["prompt_tokens"] == 3400 and snap["completion_tokens"] == 170
    assert snap["per_hour"]["calls"] == 8
    assert snap["per_hour"]["tokens"] == pytest.approx(2 * 3570)
    assert snap["by_kind"]["proactive"]["per_hour"]["images"] == 18
    assert snap["by_kind"]["user"]["calls"] == 1
    line = meter.summary_line()
    assert "4 calls" in line and "9 images" in line and "30.0 min" in line


def test_cost_rates_are_not_inflated_in_the_first_minute() -> None:
    clock = ManualClock()
    meter = CostMeter(clock)
    meter.record(Usage(prompt_tokens=100), "user")
    clock.t += 1.0
    assert meter.snapshot()["per_hour"]["calls"] == 60  # one call over (at least) one minute
