"""Model files: local paths, spec parsing, the cache, and downloads through huggingface_hub.

Downloads go to a stand-in hub: a local HTTP server that answers the requests huggingface_hub makes
(HEAD/GET .../resolve/REV/FILE with the hub's headers, and the model-info and tree APIs for snapshots).
It can cut a body short or fail, to check that nothing half-downloaded is used.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from digihuman import models
from digihuman.cli import main
from digihuman.errors import BackendError, UserError

COMMIT = "0123456789abcdef0123456789abcdef01234567"
JOE = "en/en_US/joe/medium/en_US-joe-medium"


class Hub:
    """The files of some repos, served the way huggingface.co serves them."""

    def __init__(self, repos: dict[str, dict[str, bytes]]) -> None:
        self.repos = repos
        self.requests: list[tuple[str, str]] = []
        self.truncate: set[str] = set()  # paths whose body stops half-way (once each)
        self.fail: set[str] = set()  # paths answered with 403 (a 5xx would be retried for half a minute)
        handler = self._handler()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self._answer(body=False)

            def do_GET(self) -> None:
                self._answer(body=True)

            def _answer(self, body: bool) -> None:
                path = unquote(urlparse(self.path).path)
                hub.requests.append((self.command, path))
                if path.startswith("/api/models/"):
                    return self._api(path.removeprefix("/api/models/"))
                repo, sep, rest = path.lstrip("/").partition("/resolve/")
                files = hub.repos.get(repo)
                file = rest.partition("/")[2]
                if not sep or files is None:
                    return self._send(
                        401, b'{"error": "Repository not found"}', {"X-Error-Code": "RepoNotFound"}
                    )
                if file not in files:
                    return self._send(404, b'{"error": "Entry not found"}', {"X-Error-Code": "EntryNotFound"})
                if file in hub.fail:
                    return self._send(403, b'{"error": "Forbidden"}')
                data = files[file]
                headers = {
                    "X-Repo-Commit": COMMIT,
                    "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                    "Content-Type": "application/octet-stream",
                }
                start = 0
                if (wanted := self.headers.get("Range")) and wanted.startswith("bytes="):
                    start = int(wanted[6:].split("-")[0])
                    headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                part = data[start:]
                if not body:
                    return self._send(200, b"", headers, length=len(data))
                if self.command == "GET" and file in hub.truncate:
                    hub.truncate.discard(file)
                    self.send_response(206 if start else 200)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(part)))
                    self.end_headers()
                    self.wfile.write(part[: len(part) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return None
                return self._send(206 if start else 200, part, headers)

            def _api(self, rest: str) -> None:
                repo, _, _ = (
                    rest.partition("/revision/") if "/revision/" in rest else rest.partition("/tree/")
                )
                files = hub.repos.get(repo)
                if files is None:
                    return self._send(
                        401, b'{"error": "Repository not found"}', {"X-Error-Code": "RepoNotFound"}
                    )
                if "/revision/" in rest:
                    info = {"id": repo, "sha": COMMIT, "siblings": [{"rfilename": f} for f in files]}
                    return self._send(200, json.dumps(info).encode(), {"Content-Type": "application/json"})
                tree = [
                    {"type": "file", "path": f, "size": len(d), "oid": hashlib.sha1(d).hexdigest()}
                    for f, d in files.items()
                ]
                return self._send(200, json.dumps(tree).encode(), {"Content-Type": "application/json"})

            def _send(
                self, status: int, data: bytes, headers: dict[str, str] | None = None, length: int = -1
            ) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data) if length < 0 else length))
                self.end_headers()
                if data and self.command != "HEAD":
                    self.wfile.write(data)

        return Handler

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


VOICE = {f"{JOE}.onnx": b"onnx-bytes" * 5000, f"{JOE}.onnx.json": b'{"audio": {"sample_rate": 22050}}'}
WHISPER = {
    "config.json": b"{}",
    "model.bin": b"weights" * 3000,
    "tokenizer.json": b"{}",
    "vocabulary.txt": b"a\nb\n",
    "README.md": b"# not needed",
}


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[Hub]:
    stand_in = Hub(
        {
            "rhasspy/piper-voices": dict(VOICE),
            "Systran/faster-whisper-base": dict(WHISPER),
            "someone/tiny-gguf": {"tiny.gguf": b"GGUF" + bytes(100)},
        }
    )
    monkeypatch.setenv("HF_ENDPOINT", stand_in.url)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    yield stand_in
    stand_in.close()


# --- naming ------------------------------------------------------------------------------------------


def test_local_paths_are_used_where_they_are(tmp_path: Path) -> None:
    model = tmp_path / "voice.onnx"
    model.write_bytes(b"x")
    with pytest.raises(UserError, match=r"voice.onnx has no config next to it: put voice.onnx.json"):
        models.resolve(model, kind="voice")
    (tmp_path / "voice.onnx.json").write_text("{}")
    assert models.resolve(str(model), kind="voice") == model.resolve()
    assert models.resolve(tmp_path) == tmp_path.resolve()
    with pytest.raises(UserError, match=r"is not a faster-whisper model folder"):
        models.resolve(tmp_path, kind="asr")
    with pytest.raises(UserError, match=r"model file .*missing.gguf does not exist"):
        models.resolve(str(tmp_path / "missing.gguf"))
    with pytest.raises(UserError, match=r"model file .*gone.gguf does not exist"):
        models.resolve("gone.gguf")
    assert not models.cache_dir().exists()  # nothing was downloaded or created


def test_specs_that_name_the_same_file_are_one_model() -> None:
    by_name = models.lookup("qwen2.5-0.5b-instruct")
    assert models.lookup("hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF:qwen2.5-0.5b-instruct-q4_k_m.gguf") == by_name
    assert models.lookup("Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf") == by_name
    assert by_name.kind == "llm" and by_name.license == "Apache-2.0"
    assert by_name.path == models.cache_dir() / "Qwen--Qwen2.5-0.5B-Instruct-GGUF" / by_name.files[0]

    voice = models.lookup("en_US-amy-medium", kind="voice")
    assert voice == models.lookup("piper:en_US-amy-medium")
    assert voice.files == (
        "en/en_US/amy/medium/en_US-amy-medium.onnx",
        "en/en_US/amy/medium/en_US-amy-medium.onnx.json",
    )
    whisper = models.lookup("base", kind="asr")
    assert (
        whisper.name == "whisper:base" and whisper.repo == "Systran/faster-whisper-base" and not whisper.files
    )
    other = models.lookup("hf:someone/tiny-gguf:tiny.gguf", kind="llm")
    assert other.kind == "llm" and other.license == "unknown"


@pytest.mark.parametrize(
    ("spec", "kind", "message"),
    [
        ("whisper:base", "voice", "is a model of kind asr, not voice"),
        ("amy", "voice", "not a Piper voice name"),
        ("nonsense", None, "unknown model 'nonsense'.*models list"),
        ("hf:not a repo:x", None, "is not a Hugging Face repo id"),
    ],
)
def test_bad_specs_are_one_line_user_errors(spec: str, kind: str | None, message: str) -> None:
    with pytest.raises(UserError, match=message) as caught:
        models.resolve(spec, kind=kind)
    assert not isinstance(caught.value, BackendError) and "\n" not in str(caught.value)


# --- downloads ---------------------------------------------------------------------------------------


def test_a_piper_voice_downloads_once_into_the_cache(hub: Hub, capsys: pytest.CaptureFixture[str]) -> None:
    path = models.resolve("piper:en_US-joe-medium", kind="voice")
    assert path == models.cache_dir() / "rhasspy--piper-voices" / f"{JOE}.onnx"
    assert path.read_bytes() == VOICE[f"{JOE}.onnx"]
    assert Path(f"{path}.json").read_bytes() == VOICE[f"{JOE}.onnx.json"]
    stderr = capsys.readouterr().err
    assert "downloading piper:en_US-joe-medium (63 MB)" in stderr
    assert "%|" not in stderr  # no progress bar without a terminal: the log line says it
    served = len(hub.requests)
    assert models.resolve("en_US-joe-medium", kind="voice") == path
    assert len(hub.requests) == served  # the second time is offline
    assert [(m.name, m.kind, m.license) for m in models.cached()] == [
        ("piper:en_US-joe-medium", "voice", "CC0-1.0")
    ]
    assert not list(path.parent.glob("*.incomplete"))


def test_whisper_is_a_snapshot_of_the_model_files(hub: Hub) -> None:
    folder = models.resolve("whisper:base", kind="asr")
    assert folder == models.cache_dir() / "Systran--faster-whisper-base"
    assert (folder / "model.bin").read_bytes() == WHISPER["model.bin"]
    assert not (folder / "README.md").exists()  # only what faster-whisper loads
    assert any(m.name == "whisper:base" and m.path == folder for m in models.cached())


def test_a_file_fetched_by_hub_id_is_listed_as_cached(hub: Hub) -> None:
    path = models.resolve("someone/tiny-gguf/tiny.gguf", kind="llm")
    assert path.read_bytes().startswith(b"GGUF")
    listed = {m.name: m for m in models.cached()}
    assert listed["hf:someone/tiny-gguf:tiny.gguf"].kind == "llm"
    assert listed["hf:someone/tiny-gguf:tiny.gguf"].size_bytes == 104


def test_an_interrupted_download_is_never_used(hub: Hub) -> None:
    hub.fail.add(f"{JOE}.onnx.json")  # the second file fails: the model is incomplete
    with pytest.raises(BackendError, match="could not download model piper:en_US-joe-medium"):
        models.resolve("piper:en_US-joe-medium")
    ref = models.lookup("piper:en_US-joe-medium")
    assert not ref.is_complete() and models.cached() == []
    with pytest.raises(BackendError, match="is not downloaded: run `digihuman models pull piper:en_US-joe"):
        models.resolve("piper:en_US-joe-medium", download=False)

    hub.fail.clear()
    hub.truncate.add(f"{JOE}.onnx")  # the connection drops half-way through the big file
    models.lookup("piper:en_US-joe-medium").path.unlink(missing_ok=True)
    path = models.resolve("piper:en_US-joe-medium")
    assert path.read_bytes() == VOICE[f"{JOE}.onnx"]  # resumed or retried, never the half file
    gets = [p for method, p in hub.requests if method == "GET" and p.endswith(f"{JOE}.onnx")]
    assert len(gets) >= 3 and not hub.truncate  # the cut happened, and a second request completed it


def test_a_missing_file_or_repo_names_it(hub: Hub) -> None:
    with pytest.raises(BackendError, match=r"rhasspy/piper-voices has no file .*en_US-nobody-low\.onnx"):
        models.resolve("piper:en_US-nobody-low")
    with pytest.raises(BackendError, match="someone/else was not found"):
        models.resolve("hf:someone/else:model.gguf")


def test_offline_is_one_line_naming_the_model_the_cache_and_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:  # a port nothing listens on: the real "connection refused"
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    started = time.monotonic()
    with pytest.raises(BackendError) as caught:
        models.resolve("piper:en_US-joe-medium", kind="voice")
    assert time.monotonic() - started < 5  # no half-minute of retries
    message = str(caught.value)
    folder = models.cache_dir() / "rhasspy--piper-voices" / "en/en_US/joe/medium"
    assert "\n" not in message
    assert "could not download model piper:en_US-joe-medium" in message
    assert (
        f"put en_US-joe-medium.onnx and en_US-joe-medium.onnx.json (from http://127.0.0.1:{port}/" in message
    )
    assert f"into {folder}" in message and "or give a local path instead" in message
    # Placing the files by hand, as the message says, is enough.
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "en_US-joe-medium.onnx").write_bytes(b"x")
    (folder / "en_US-joe-medium.onnx.json").write_text("{}")
    assert models.resolve("piper:en_US-joe-medium") == folder / "en_US-joe-medium.onnx"


# --- CLI ---------------------------------------------------------------------------------------------


def test_models_cli(hub: Hub, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "path", "whisper:base"]) == 3
    assert "models pull whisper:base" in capsys.readouterr().err
    assert main(["models", "pull", "whisper:base"]) == 0
    folder = capsys.readouterr().out.strip()
    assert main(["models", "path", "base"]) == 2  # a bare size needs the kind: say what names look like
    capsys.readouterr()
    assert main(["models", "path", "whisper:base"]) == 0
    assert capsys.readouterr().out.strip() == folder
    assert main(["models", "list", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["whisper:base"]["cached"] is True and rows["whisper:base"]["path"] == folder
    assert rows["piper:en_US-joe-medium"]["cached"] is False
    assert rows["qwen2.5-0.5b-instruct"]["license"] == "Apache-2.0"
    assert set(rows["smart-turn-v3"]) == {
        "name",
        "kind",
        "size_mb",
        "license",
        "cached",
        "path",
        "description",
    }
    assert main(["models", "list"]) == 0
    table = capsys.readouterr().out
    assert "whisper:base" in table and folder in table and "(not downloaded)" in table
