"""The turn engine's own cost, with scripted backends of known latency (digihuman.testing.fakes).

(a) orchestration overhead, real clock: first_audio_played_s minus (the LLM's time to the end of the first
    sentence + the TTS's time to first audio). Whatever remains is ours (splitting, scheduling, delivery).
(b) pipelining, virtual clock: a 5-sentence reply played as we do it (synthesis ahead, delivery in order)
    vs sequentially (whole reply, then all synthesis, then playback): first audio and total time.
(c) cancel-to-silence, real clock: from `task.cancel()` to the sinks' cancel_turn, and to every backend
    (LLM, TTS, face) having stopped.

Prints one JSON object. Run: .venv/bin/python benchmarks/turn_pipeline.py [--runs 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time
from typing import Any

from digihuman.clock import run_virtual
from digihuman.llm.base import Usage
from digihuman.media import AudioChunk
from digihuman.testing.fakes import FakeSink, Reply, ScriptedFace, ScriptedLLM, ScriptedTTS
from digihuman.turn import Stage, Turn, run_turn

REPLY = (
    "Good morning to you! I hope you slept well last night. The weather looks lovely today. "
    "We could take a walk in the park later. Tell me what you would like to do."
)
LLM_FIRST_TOKEN_S = 0.25
LLM_TOKEN_S = 0.02
TTS_FIRST_AUDIO_S = 0.15
TTS_RTF = 0.3  # seconds of synthesis per second of audio, after the first chunk


def stage(sink: FakeSink, tts: ScriptedTTS | None = None) -> Stage:
    voice = tts or ScriptedTTS(first_audio_s=TTS_FIRST_AUDIO_S, rtf=TTS_RTF)
    return Stage(tts=voice, sinks=[sink], face=ScriptedFace())


def first_sentence_deltas() -> int:
    """How many deltas the LLM sends until the first sentence's end mark ("!" needs no look-ahead)."""
    words = REPLY.split()
    return next(i for i, word in enumerate(words) if word.endswith("!")) + 1


async def overhead_once() -> dict[str, float]:
    """One turn on the real clock, cut once its first audio played; times are the fakes' actual ones."""
    llm = ScriptedLLM([Reply(REPLY, LLM_FIRST_TOKEN_S, LLM_TOKEN_S)])
    tts = ScriptedTTS(first_audio_s=TTS_FIRST_AUDIO_S, rtf=TTS_RTF)
    usage = Usage()
    turn = Turn(1, llm.stream([], usage), stage(FakeSink(), tts), usage=usage)
    task = asyncio.create_task(turn.run())
    while turn.metrics.first_audio_played_s is None:
        await asyncio.sleep(0.005)
    turn.cancel()
    await task
    m, t0 = turn.metrics, turn.metrics.started_at
    deltas = llm.calls[0].delta_times
    llm_first_sentence_s = deltas[first_sentence_deltas() - 1] - t0  # the delta holding the end mark
    # The splitter decides on the next delta (a closing quote could still follow the "!").
    llm_decidable_s = deltas[first_sentence_deltas()] - t0
    synthesis = tts.calls[0]
    assert synthesis.first_audio_at is not None and m.first_sentence_s is not None
    tts_first_audio_s = synthesis.first_audio_at - synthesis.started_at
    played_s = m.first_audio_played_s or 0.0
    return {
        "overhead": played_s - (llm_decidable_s + tts_first_audio_s),
        "overhead_vs_end_mark": played_s - (llm_first_sentence_s + tts_first_audio_s),
        "splitting": m.first_sentence_s - llm_decidable_s,
        "to_tts": synthesis.started_at - t0 - m.first_sentence_s,
        "delivery": played_s - (synthesis.first_audio_at - t0),
        "llm_first_sentence": llm_first_sentence_s,
        "tts_first_audio": tts_first_audio_s,
    }


def bench_overhead(runs: int) -> dict[str, Any]:
    samples = [asyncio.run(overhead_once()) for _ in range(runs)]

    def ms(key: str, pick: Any = statistics.median) -> float:
        return round(pick([s[key] for s in samples]) * 1000, 2)

    return {
        "clock": "real",
        "runs": runs,
        "llm_token_interval_ms": LLM_TOKEN_S * 1000,
        "llm_time_to_first_sentence_ms_median": ms("llm_first_sentence"),
        "tts_time_to_first_audio_ms_median": ms("tts_first_audio"),
        "overhead_ms_median": ms("overhead"),
        "overhead_ms_max": ms("overhead", max),
        "overhead_breakdown_ms_median": {
            "sentence_split": ms("splitting"),
            "sentence_to_tts_start": ms("to_tts"),
            "tts_audio_to_playback": ms("delivery"),
        },
        "note": "overhead counts from the delta that lets the splitter decide the first sentence (the one "
        "after its end mark); overhead_vs_end_mark also counts that one-token look-ahead",
        "overhead_vs_end_mark_ms_median": ms("overhead_vs_end_mark"),
        "overhead_vs_end_mark_ms_max": ms("overhead_vs_end_mark", max),
        "limit_ms": 30,
        "ok": ms("overhead", max) <= 30 and ms("overhead_vs_end_mark") <= 30,
    }


async def pipelined() -> dict[str, float]:
    llm = ScriptedLLM([Reply(REPLY, LLM_FIRST_TOKEN_S, LLM_TOKEN_S)])
    usage = Usage()
    result = await run_turn(llm.stream([], usage), stage(FakeSink()), usage=usage)
    assert result.sentences == 5, result.sentences
    m = result.metrics
    return {
        "first_audio_s": round(m.first_audio_played_s or 0, 3),
        "total_s": round(m.total_s or 0, 3),
        "audio_s": round(result.audio_s, 3),
    }


async def sequential() -> dict[str, float]:
    """The naive way: wait for the whole reply, synthesize every sentence, then play it all."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    llm = ScriptedLLM([Reply(REPLY, LLM_FIRST_TOKEN_S, LLM_TOKEN_S)])
    text = "".join([delta async for delta in llm.stream([])])
    sentences = [s.strip() + "." for s in text.replace("!", ".").split(".") if s.strip()]
    tts, sink = ScriptedTTS(first_audio_s=TTS_FIRST_AUDIO_S, rtf=TTS_RTF), FakeSink()
    audio: list[AudioChunk] = []
    offset = 0.0
    for sentence in sentences:
        chunks = [chunk async for chunk in tts.synthesize(sentence, "en")]
        audio += [AudioChunk(c.pcm, c.sample_rate, offset + c.start_s, turn_id=1) for c in chunks]
        offset += sum(c.duration_s for c in chunks)
    sink.begin_turn(1)
    first_audio = loop.time() - start
    for chunk in audio:
        await sink.write_audio(chunk)
    await sink.end_turn(1)
    total_s = loop.time() - start
    return {"first_audio_s": round(first_audio, 3), "total_s": round(total_s, 3), "audio_s": round(offset, 3)}


def bench_pipelining() -> dict[str, Any]:
    ours, naive = run_virtual(pipelined()), run_virtual(sequential())
    return {
        "clock": "virtual",
        "sentences": 5,
        "pipelined": ours,
        "sequential": naive,
        "first_audio_ratio": round(ours["first_audio_s"] / naive["first_audio_s"], 3),
        "total_ratio": round(ours["total_s"] / naive["total_s"], 3),
    }


async def cancel_once() -> dict[str, float]:
    llm = ScriptedLLM([Reply(REPLY * 3, 0.05, 0.03)])
    tts, face, sink = ScriptedTTS(first_audio_s=0.05, rtf=0.5, chunk_s=0.1), ScriptedFace(), FakeSink()
    turn = Turn(1, llm.stream([]), Stage(tts=tts, sinks=[sink], face=face))
    task = asyncio.create_task(turn.run())
    while sink.played_s(1) < 0.4:
        await asyncio.sleep(0.005)
    cancelled_at = time.perf_counter()
    loop_cancelled_at = asyncio.get_running_loop().time()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    stopped = time.perf_counter() - cancelled_at
    silent = sink.cancels[0][0] - loop_cancelled_at
    assert llm.activity.active == tts.activity.active == face.activity.active == 0
    await asyncio.sleep(0.2)
    stale = len(sink.written_after(sink.cancels[0][0], 1))
    return {"silence_ms": silent * 1000, "stopped_ms": stopped * 1000, "stale": stale}


def bench_cancel(runs: int) -> dict[str, Any]:
    samples = [asyncio.run(cancel_once()) for _ in range(runs)]
    silence = sorted(s["silence_ms"] for s in samples)
    stopped = sorted(s["stopped_ms"] for s in samples)
    return {
        "runs": runs,
        "cancel_to_silence_ms_median": round(statistics.median(silence), 2),
        "cancel_to_silence_ms_max": round(silence[-1], 2),
        "cancel_to_all_work_stopped_ms_median": round(statistics.median(stopped), 2),
        "cancel_to_all_work_stopped_ms_max": round(stopped[-1], 2),
        "stale_chunks_after_cancel": sum(s["stale"] for s in samples),
        "limit_ms": 100,
        "ok": stopped[-1] <= 100 and not any(s["stale"] for s in samples),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    report = {
        "orchestration_overhead": bench_overhead(args.runs),
        "pipelining": bench_pipelining(),
        "cancel": bench_cancel(args.runs),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
