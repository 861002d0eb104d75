"""`digihuman serve` as a person runs it: refusals in one line, start, answer, stop on Ctrl-C or SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import free_port

DIGIHUMAN = [sys.executable, "-m", "digihuman.cli"]


def run(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DIGIHUMAN_HOME=str(home))
    return subprocess.run([*DIGIHUMAN, *args], capture_output=True, text=True, timeout=60, env=env)


def test_a_public_host_without_a_token_is_refused(digihuman_home: Path) -> None:
    result = run("serve", "--host", "0.0.0.0", home=digihuman_home)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "--host 0.0.0.0" in line and "--token" in line


def test_a_port_in_use_is_one_line(digihuman_home: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("serve", "--port", str(port), home=digihuman_home)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert f"cannot listen on 127.0.0.1:{port}" in line and "--port" in line


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_serve_answers_and_stops_cleanly(digihuman_home: Path, stop: signal.Signals) -> None:
    port = free_port()
    env = dict(os.environ, DIGIHUMAN_HOME=str(digihuman_home))
    process = subprocess.Popen(
        [*DIGIHUMAN, "serve", "--port", str(port), "--token", "t0k"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(
                    f"http://127.0.0.1:{port}/v1/health", headers={"Authorization": "Bearer t0k"}
                )
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and process.poll() is None, process.stderr
                time.sleep(0.1)
        assert health.json()["status"] == "ok"
        assert httpx.get(f"http://127.0.0.1:{port}/v1/health").status_code == 401
        session = httpx.post(f"http://127.0.0.1:{port}/v1/sessions?token=t0k", json={"character": "ada"})
        assert session.status_code == 201
        process.send_signal(stop)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert f"serving http://127.0.0.1:{port}/?token=t0k" in out
    assert "Traceback" not in err
