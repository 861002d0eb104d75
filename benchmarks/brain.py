"""The built-in brain on this machine: load time, first token, tokens/s, cancel, memory, and first audio.

The brain is `llm.backend = "llamacpp"` (a GGUF chat model run in-process by llama.cpp). Short questions,
asked one after another with the same persona (as in a conversation: llama.cpp reuses the cached prefix):

- llm: load_s, first_token_s and tokens_per_s (medians over the questions), first_token_after_cancel_s (a
  long reply closed after 3 deltas, until the next question's first token: compare with first_token_s),
  rss_mb (memory the loaded model added);
- first_audio_s: the same questions through the real turn pipeline (sentence splitting, the espeak voice
  synthesizing ahead, an in-memory real-time sink): from the question to the first audio played. Target
  1.5 s for the 0.5B model on 2 cores.

`--compare-server` also measures the alternative the adapter was chosen over: the same model in a managed
`python -m llama_cpp.server` child reached with the OpenAI-compatible adapter (same threads, context and
questions), the two taking turns question by question so machine load hits both alike. Prints one JSON
object.

    .venv/bin/python benchmarks/brain.py --model PATH.gguf [--compare-server]
    (the test fixture: ~/.cache/digihuman-tests/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from digihuman.config import LLMSettings
from digihuman.llm import make_llm
from digihuman.llm.base import LLM, Message, Usage
from digihuman.llm.llamacpp import DEFAULT_MODEL, LlamaCppLLM, first_sentence_threads, thread_count
from digihuman.testing.fakes import FakeSink, ScriptedFace
from digihuman.turn import Stage, Turn

PERSONA = Message(
    "system",
    "You are Ada, a warm and curious digital human. Speak naturally and kindly, and reply briefly: one to "
    "three short sentences.",
)
QUESTIONS = [
    "What is the capital of France?",
    "How many legs does a spider have?",
    "What should I cook for dinner tonight?",
    "What is your favourite colour?",
    "Why is the sky blue?",
    "What is a good name for a cat?",
    "How do bees make honey?",
    "What is the tallest mountain in the world?",
]
LONG_ASK = "Tell me a long story about a lighthouse keeper and the sea."
FIRST_AUDIO_TARGET_S = 1.5


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


async def ask(llm: LLM, question: str, usage: Usage) -> str:
    return "".join([d async for d in llm.stream([PERSONA, Message("user", question)], usage)])


def interleaved(brains: dict[str, LLM], index: int) -> list[tuple[str, LLM]]:
    """The brains in turn, starting with a different one each round, so machine load hits all alike."""
    items = list(brains.items())
    shift = index % len(items)
    return items[shift:] + items[:shift]


async def measure_llm(brains: dict[str, LLM], questions: list[str]) -> dict[str, dict[str, Any]]:
    first: dict[str, list[float]] = {name: [] for name in brains}
    rates: dict[str, list[float]] = {name: [] for name in brains}
    cancels: dict[str, list[float]] = {name: [] for name in brains}
    for index, question in enumerate(questions):
        for name, llm in interleaved(brains, index):
            usage = Usage()
            await ask(llm, question, usage)
            if usage.first_token_s is not None:
                first[name].append(usage.first_token_s)
            if usage.tokens_per_s and usage.completion_tokens >= 5:
                rates[name].append(usage.tokens_per_s)
    for index, question in enumerate(questions[:3]):
        for name, llm in interleaved(brains, index):
            stream = llm.stream([PERSONA, Message("user", LONG_ASK)])
            for _ in range(3):
                await anext(stream)
            await stream.aclose()  # type: ignore[attr-defined]  # the adapters stream with async generators
            closed = time.monotonic()
            usage = Usage()
            stream = llm.stream([PERSONA, Message("user", question)], usage)
            await anext(stream)  # the next question's first words, however long the old reply held on
            cancels[name].append(time.monotonic() - closed)
            await stream.aclose()  # type: ignore[attr-defined]
    return {
        name: {
            "first_token_s": median(first[name]),
            "tokens_per_s": median(rates[name]),
            "first_token_after_cancel_s": median(cancels[name]),
        }
        for name in brains
    }


async def measure_first_audio(brains: dict[str, LLM], questions: list[str]) -> dict[str, dict[str, Any]]:
    from digihuman.tts.espeak import EspeakTTS

    tts = EspeakTTS()
    stage = Stage(tts=tts, sinks=[FakeSink()], face=ScriptedFace(), language="en")
    times: dict[str, list[float]] = {name: [] for name in brains}
    turn_ids = iter(range(1, 1000))
    try:
        for index, question in enumerate(questions):
            for name, llm in interleaved(brains, index):
                usage = Usage()
                stream = llm.stream([PERSONA, Message("user", question)], usage)
                turn = Turn(next(turn_ids), stream, stage, usage=usage)
                await turn.run()
                if turn.metrics.first_audio_played_s is not None:
                    times[name].append(turn.metrics.first_audio_played_s)
    finally:
        await tts.aclose()
    report = {}
    for name, values in times.items():
        value = median(values)
        report[name] = {
            "first_audio_s": value,
            "first_audio_s_max": round(max(values), 3) if values else None,
            "target_s": FIRST_AUDIO_TARGET_S,
            "ok": value is not None and value <= FIRST_AUDIO_TARGET_S,
        }
    return report


@contextlib.contextmanager
def server_child(path: Path, settings: LLMSettings) -> Iterator[tuple[str, subprocess.Popen[bytes], float]]:
    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(path), "--host", "127.0.0.1"]
    command += [
        "--port",
        str(port),
        "--n_ctx",
        str(settings.n_ctx),
        "--n_threads",
        str(thread_count(settings)),
    ]
    command += ["--logits_all", "False", "--model_alias", "brain"]  # its default keeps every prompt logit
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        while True:
            if process.poll() is not None:
                raise SystemExit(f"llama_cpp.server exited with {process.returncode}")
            try:
                if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        yield url, process, time.monotonic() - started
    finally:
        process.terminate()
        process.wait()


async def measure(settings: LLMSettings, questions: list[str], compare: bool) -> dict[str, Any]:
    llm = make_llm(settings)
    assert isinstance(llm, LlamaCppLLM)
    before = rss_mb(os.getpid())
    started = time.monotonic()
    await llm.preload()
    report: dict[str, Any] = {
        "in_process": {
            "load_s": round(time.monotonic() - started, 3),
            "rss_mb": round(rss_mb(os.getpid()) - before),
        }
    }
    brains: dict[str, LLM] = {"in_process": llm}
    with contextlib.ExitStack() as stack:
        if compare:
            assert llm.path is not None
            url, process, ready_s = stack.enter_context(server_child(llm.path, settings))
            served = settings.model_copy(update={"backend": "openai", "url": url, "model": "brain"})
            brains["managed_server"] = make_llm(served)
            report["managed_server"] = {"load_s": round(ready_s, 3)}
        try:
            for name, figures in (await measure_llm(brains, questions)).items():
                report[name] |= figures
            for name, figures in (await measure_first_audio(brains, questions)).items():
                report[name]["turn"] = figures
            if compare:
                report["managed_server"]["rss_mb"] = round(rss_mb(process.pid))
        finally:
            for brain in brains.values():
                await brain.aclose()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="a .gguf path or a model name")
    parser.add_argument(
        "--threads", type=int, default=0, help="llama.cpp threads (0: every core, then half after a sentence)"
    )
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--max-tokens", type=int, default=48, help="token budget per reply")
    parser.add_argument("--questions", type=int, default=6, help=f"how many (at most {len(QUESTIONS)})")
    parser.add_argument("--compare-server", action="store_true", help="also measure a llama_cpp.server child")
    args = parser.parse_args()
    settings = LLMSettings(
        backend="llamacpp",
        model=str(Path(args.model).expanduser()) if args.model.endswith(".gguf") else args.model,
        n_threads=args.threads,
        n_ctx=args.n_ctx,
        num_predict=args.max_tokens,
    )
    questions = QUESTIONS[: max(1, args.questions)]
    report: dict[str, Any] = {
        "benchmark": "brain",
        "model": settings.model,
        "threads": thread_count(settings),
        "first_sentence_threads": first_sentence_threads(settings),
        "cpu_count": os.cpu_count(),
        "n_ctx": settings.n_ctx,
        "max_tokens": settings.num_predict,
    }
    report |= asyncio.run(measure(settings, questions, args.compare_server))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
