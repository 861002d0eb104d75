"""Real model weights for tests, assembled by scripts/fetch_test_models.py into the test cache.

`real_model_path("qwen-gguf")` returns the cached file (or folder) and skips the test, with the command that
fixes it, when the fixture has not been assembled. Nothing is downloaded from here: tests stay offline and
fast, and `scripts/setup.sh --test` fetches the weights once.

Names: whisper-base (faster-whisper folder), piper-joe (Piper .onnx, its .onnx.json beside it),
qwen-gguf (Qwen2.5-Coder-0.5B-Instruct Q4_K_M), smart-turn (Smart Turn v3.2 CPU ONNX), silero-vad (ONNX).
The pytest fixtures below wrap the same call; import them into a test module, or call the function.
`serve_gguf(path, log)` runs a real llama.cpp OpenAI-compatible server on a GGUF for a test.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from types import ModuleType

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
FETCH_HINT = "run .venv/bin/python scripts/fetch_test_models.py"


@cache
def fetch_script() -> ModuleType:
    # scripts/ is not a package: load the script by path, as tests/llm/test_openai_compat.py does.
    script = REPO / "scripts" / "fetch_test_models.py"
    spec = importlib.util.spec_from_file_location("fetch_test_models", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


def real_model_names() -> list[str]:
    return list(fetch_script().FIXTURES)


def real_model_path(name: str) -> Path:
    """The cached fixture's path, or pytest.skip naming the command that assembles it."""
    fetcher = fetch_script()
    if name not in fetcher.FIXTURES:
        raise KeyError(f"unknown real-model fixture {name!r}; known: {', '.join(fetcher.FIXTURES)}")
    path = fetcher.fixture_path(name)
    if path is None:
        pytest.skip(f"real model {name!r} is not in {fetcher.cache_dir()}: {FETCH_HINT} --only {name}")
    return path


@pytest.fixture(scope="session")
def qwen_gguf() -> Path:
    return real_model_path("qwen-gguf")


@pytest.fixture(scope="session")
def whisper_base() -> Path:
    return real_model_path("whisper-base")


@pytest.fixture(scope="session")
def piper_joe() -> Path:
    return real_model_path("piper-joe")


@pytest.fixture(scope="session")
def smart_turn_onnx() -> Path:
    return real_model_path("smart-turn")


@pytest.fixture(scope="session")
def silero_vad_onnx() -> Path:
    return real_model_path("silero-vad")


@contextmanager
def serve_gguf(
    model: Path, log: Path, *, n_ctx: int = 2048, alias: str = "fixture", n_threads: int = 2
) -> Iterator[str]:
    """A real OpenAI-compatible llama.cpp server (`python -m llama_cpp.server`) on `model`: yields its /v1
    URL; skips when the server extra is missing."""
    for module in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (needs: pip install 'digihuman[llamacpp]')")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1"]
    command += [
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
        "--n_threads",
        str(n_threads),
        "--model_alias",
        alias,
    ]
    command += ["--logits_all", "False"]  # the server's default keeps every prompt token's logits: 600 MB
    with log.open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited ({process.returncode}):\n{log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not start in 90 s:\n{log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
