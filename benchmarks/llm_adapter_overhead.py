"""How much the Ollama adapter costs per streamed delta, on top of reading the NDJSON stream itself.

Streams the same long reply (model "long" of the stand-in Ollama server, run in its own process) three ways:
raw httpx + json.loads (the protocol floor), the official ollama client, and OllamaLLM.stream (client plus
reply guard). CPU time of this process is what the adapter adds; wall time is bounded by the server's pace.
Prints one JSON object. Run: .venv/bin/python benchmarks/llm_adapter_overhead.py [--tokens 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import ollama

from digihuman.config import LLMSettings
from digihuman.llm.base import Message, Usage
from digihuman.llm.guard import ReplyGuard
from digihuman.llm.ollama import OllamaLLM

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stand_in import ollama_stand_in

# One "token" as the stand-in server counts them: a CJK character, a word with its space, or whitespace.
_TOKEN = re.compile(
    r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]|[^\s\u3000-\u303f\u3400-\u9fff\uff00-\uffef]+\s*|\s+"
)


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


MESSAGES = [Message("user", "Tell me a long story.")]


async def raw_ndjson(url: str, count: int) -> int:
    body = {
        "model": "long",
        "messages": [{"role": "user", "content": MESSAGES[0].content}],
        "think": False,
        "options": {"num_predict": count},
    }
    seen = 0
    async with (
        httpx.AsyncClient(timeout=60) as client,
        client.stream("POST", f"{url}/api/chat", json=body) as reply,
    ):
        async for line in reply.aiter_lines():
            if line:
                seen += bool(json.loads(line)["message"]["content"])
    return seen


async def official_client(url: str, count: int) -> int:
    client = ollama.AsyncClient(host=url)
    seen = 0
    async for part in await client.chat(
        model="long",
        messages=[{"role": "user", "content": MESSAGES[0].content}],
        stream=True,
        think=False,
        options={"num_predict": count},
    ):
        seen += bool(part.message.content)
    await client.close()
    return seen


async def adapter(url: str, count: int) -> int:
    llm = OllamaLLM(LLMSettings(url=url, model="long", num_predict=count))
    usage = Usage()
    async for _ in llm.stream(MESSAGES, usage):
        pass
    await llm.aclose()
    return usage.completion_tokens


async def measure(
    run: Callable[[str, int], Awaitable[int]], url: str, count: int, repeats: int
) -> dict[str, float]:
    best_cpu, best_wall, seen = float("inf"), float("inf"), 0
    for _ in range(repeats):
        cpu, wall = time.process_time(), time.perf_counter()
        seen = await run(url, count)
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
    return {
        "tokens": seen,
        "cpu_us_per_token": best_cpu / seen * 1e6,
        "wall_us_per_token": best_wall / seen * 1e6,
    }


def guard_only(count: int) -> float:
    """The reply guard alone, on the same kind of text, in deltas of one token."""
    text = "".join(f"Thought {n} is about the river and a quiet morning. " for n in range(count // 10 + 1))
    deltas = tokens(text)[:count]
    guard = ReplyGuard(Usage(), model="bench", token_budget=len(deltas) + 1, started=time.monotonic())
    started = time.perf_counter()
    for delta in deltas:
        guard.content(delta)
    guard.finish("stop")
    return (time.perf_counter() - started) / len(deltas) * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with ollama_stand_in() as url:
        await adapter(url, 16)  # warm up imports and the server
        raw = await measure(raw_ndjson, url, args.tokens, args.repeats)
        client = await measure(official_client, url, args.tokens, args.repeats)
        full = await measure(adapter, url, args.tokens, args.repeats)
    result = {
        "benchmark": "llm_adapter_overhead",
        "tokens": args.tokens,
        "raw_ndjson_cpu_us_per_token": round(raw["cpu_us_per_token"], 1),
        "ollama_client_cpu_us_per_token": round(client["cpu_us_per_token"], 1),
        "adapter_cpu_us_per_token": round(full["cpu_us_per_token"], 1),
        "adapter_overhead_cpu_us_per_token": round(full["cpu_us_per_token"] - raw["cpu_us_per_token"], 1),
        "guard_us_per_delta": round(guard_only(args.tokens), 1),
        "adapter_wall_us_per_token": round(full["wall_us_per_token"], 1),
        "raw_wall_us_per_token": round(raw["wall_us_per_token"], 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
