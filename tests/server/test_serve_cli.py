"""`digihuman serve` as a person runs it: refusals in one line, start, answer, stop on Ctrl-C or SIGTERM."""

from __future__ import annotations

import os
import shutil
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
OPENSSL_REQ = [
    "openssl",
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "1",
    "-subj",
    "/CN=127.0.0.1",
]


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


def test_tls_needs_both_files(digihuman_home: Path) -> None:
    result = run("serve", "--tls-cert", "nope.pem", home=digihuman_home)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "--tls-cert nope.pem" in line and "--tls-key" in line


def self_signed(folder: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [*OPENSSL_REQ, "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.mark.parametrize(
    ("stop", "tls"),
    [(signal.SIGINT, False), (signal.SIGTERM, True)],
    ids=["ctrl-c", "sigterm-https"],
)
def test_serve_answers_and_stops_cleanly(
    digihuman_home: Path, tmp_path: Path, stop: signal.Signals, tls: bool
) -> None:
    port = free_port()
    env = dict(os.environ, DIGIHUMAN_HOME=str(digihuman_home))
    extra = (
        [f"--tls-{k}={p}" for k, p in zip(("cert", "key"), self_signed(tmp_path), strict=True)] if tls else []
    )
    scheme = "https" if tls else "http"
    process = subprocess.Popen(
        [*DIGIHUMAN, "serve", "--port", str(port), "--token", "t0k", *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                auth = {"Authorization": "Bearer t0k"}
                health = httpx.get(f"{scheme}://127.0.0.1:{port}/v1/health", headers=auth, verify=False)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and process.poll() is None, process.stderr
                time.sleep(0.1)
        assert health.json()["status"] == "ok"
        assert httpx.get(f"{scheme}://127.0.0.1:{port}/v1/health", verify=False).status_code == 401
        session = httpx.post(
            f"{scheme}://127.0.0.1:{port}/v1/sessions?token=t0k", json={"character": "ada"}, verify=False
        )
        assert session.status_code == 201
        process.send_signal(stop)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert f"serving {scheme}://127.0.0.1:{port}/?token=t0k" in out
    assert "Traceback" not in err
