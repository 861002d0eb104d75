"""Per-turn latency metrics, the JSON line written per turn, and per-hour cost accounting."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args

from digihuman.clock import Clock, LoopClock
from digihuman.llm.base import Usage

if TYPE_CHECKING:
    from digihuman.turn import TurnResult

Milestone = Literal[
    "llm_first_token_s",
    "first_sentence_s",
    "tts_first_audio_s",
    "first_frame_s",
    "first_audio_played_s",
    "llm_done_s",
    "total_s",
]
MILESTONES: tuple[Milestone, ...] = get_args(Milestone)


@dataclass(slots=True)
class TurnMetrics:
    """Seconds from the trigger (user text, camera round) to each milestone; None when not reached."""

    clock: Clock = field(default_factory=LoopClock, repr=False, compare=False)
    started_at: float = field(default=-1.0)
    llm_first_token_s: float | None = None
    first_sentence_s: float | None = None
    tts_first_audio_s: float | None = None
    first_frame_s: float | None = None
    first_audio_played_s: float | None = None
    llm_done_s: float | None = None
    total_s: float | None = None
    # A spoken turn counts from the end of the user's speech: where it ended on the microphone's timeline,
    # and how long the final transcript took after it.
    user_speech_end_s: float | None = None
    asr_final_s: float | None = None

    def __post_init__(self) -> None:
        if self.started_at < 0:
            self.started_at = self.clock.now()

    def elapsed(self) -> float:
        return self.clock.now() - self.started_at

    def mark(self, milestone: Milestone, at: float | None = None) -> None:
        """Stamp a milestone once (the first time wins), now or at clock time `at`."""
        if getattr(self, milestone) is None:
            when = self.clock.now() if at is None else at
            setattr(self, milestone, max(0.0, when - self.started_at))

    def as_dict(self) -> dict[str, float | None]:
        values: dict[str, float | None] = {name: _ms_round(getattr(self, name)) for name in MILESTONES}
        if self.user_speech_end_s is not None:
            values["user_speech_end_s"] = _ms_round(self.user_speech_end_s)
            values["asr_final_s"] = _ms_round(self.asr_final_s)
            values["voice_to_voice_s"] = values["first_audio_played_s"]  # counted from the end of speech
        return values


def _ms_round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def usage_record(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "images": usage.images,
        "first_token_s": _ms_round(usage.first_token_s),
        "duration_s": _ms_round(usage.duration_s),
        "tokens_per_s": round(usage.tokens_per_s, 2),
        "done_reason": usage.done_reason,
        "thinking_chars": usage.thinking_chars,
    }


def turn_record(result: TurnResult, cost: CostMeter | None = None) -> dict[str, Any]:
    """The JSON line for one turn (turns.jsonl, `--metrics`); `cost` adds the running per-hour totals."""
    record: dict[str, Any] = {
        "turn": result.turn_id,
        "trigger": result.trigger,
        "status": result.status,
        "error": result.error,
        "text_shown": result.text_shown,
        **(
            {"user_text": result.user_text, "user_language": result.user_language} if result.user_text else {}
        ),
        "text_spoken": result.text_spoken,
        "sentences": result.sentences,
        "audio_s": round(result.audio_s, 3),
        "heard_s": round(result.heard_s, 3),
        "metrics": result.metrics.as_dict(),
        "usage": usage_record(result.usage),
    }
    if result.user_text:
        record["user_text"], record["user_language"] = result.user_text, result.user_language
    if cost is not None:
        record["cost"] = cost.snapshot()
    return record


@dataclass(slots=True)
class CostTotals:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    images: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: CostTotals) -> None:
        self.calls += other.calls
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.images += other.images


class CostMeter:
    """What the model was asked for: calls, tokens and images, in total and per hour of running time.

    Calls are recorded by kind ("proactive" camera rounds, "user" replies), so the cost of looking can be told
    apart from the cost of answering.
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or LoopClock()
        self.started_at = self._clock.now()
        self.by_kind: dict[str, CostTotals] = {}

    def record(self, usage: Usage, kind: str = "user") -> None:
        call = CostTotals(1, usage.prompt_tokens, usage.completion_tokens, usage.images)
        self.by_kind.setdefault(kind, CostTotals()).add(call)

    def total(self) -> CostTotals:
        total = CostTotals()
        for part in self.by_kind.values():
            total.add(part)
        return total

    def elapsed_s(self) -> float:
        return max(0.0, self._clock.now() - self.started_at)

    def snapshot(self) -> dict[str, Any]:
        """Totals and per-hour rates (rates are over the running time so far, at least one minute)."""
        elapsed_s = self.elapsed_s()
        hours = max(elapsed_s, 60.0) / 3600.0
        total = self.total()

        def rates(t: CostTotals) -> dict[str, float]:
            return {
                "calls": round(t.calls / hours, 2),
                "prompt_tokens": round(t.prompt_tokens / hours, 1),
                "completion_tokens": round(t.completion_tokens / hours, 1),
                "tokens": round(t.tokens / hours, 1),
                "images": round(t.images / hours, 2),
            }

        return {
            "elapsed_s": round(elapsed_s, 1),
            "calls": total.calls,
            "prompt_tokens": total.prompt_tokens,
            "completion_tokens": total.completion_tokens,
            "images": total.images,
            "per_hour": rates(total),
            "by_kind": {
                kind: {"calls": t.calls, "tokens": t.tokens, "images": t.images, "per_hour": rates(t)}
                for kind, t in sorted(self.by_kind.items())
            },
        }

    def summary_line(self) -> str:
        """One line for the end of a session."""
        snap = self.snapshot()
        rate = snap["per_hour"]
        return (
            f"model cost: {snap['calls']} calls, {snap['prompt_tokens']} prompt + "
            f"{snap['completion_tokens']} completion tokens, {snap['images']} images in "
            f"{snap['elapsed_s'] / 60:.1f} min (per hour: {rate['calls']:.0f} calls, "
            f"{rate['tokens']:.0f} tokens, {rate['images']:.0f} images)"
        )
