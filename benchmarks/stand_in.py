"""The stand-in Ollama server (tests/llm/ollama_server.py) in its own process, for benchmarks that need a
brain with a known pace. It runs as a program: the benchmarks import nothing from tests/."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def ollama_stand_in() -> Iterator[str]:
    """Start it; yield its URL; stop it."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.llm.ollama_server", "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        process.stdout.readline()  # "listening on ...": it is ready
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)
