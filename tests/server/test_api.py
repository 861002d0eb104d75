"""The HTTP API on the real server: every endpoint, its errors, limits and the security checks."""

from __future__ import annotations

import io
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
from PIL import Image

from digihuman.errors import UserError
from digihuman.server.app import check_bind
from tests.llm.ollama_server import OllamaTestServer
from tests.server.conftest import RunningServer, server_settings, start_server


def astronaut_png() -> bytes:
    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buffer, "PNG")
    return buffer.getvalue()


def blank_png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((256, 256, 3), 200, np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def test_health_and_characters(server: RunningServer) -> None:
    with server.client() as client:
        health = client.get("/v1/health").json()
        assert health["status"] == "ok" and health["protocol"] == 1 and health["max_sessions"] == 3
        characters = client.get("/v1/characters").json()
    assert {"id": "ada", "name": "Ada", "language": "en"} in characters
    assert any(c["id"] == "xiaomei" and c["language"] == "zh" for c in characters)


def test_page_docs_and_openapi_are_local(server: RunningServer) -> None:
    with server.client() as client:
        page = client.get("/")
        assert page.status_code == 200 and "/static/app.js" in page.text
        for asset in ("app.js", "player.js", "media-in.js", "i18n.js", "mic-worklet.js", "style.css"):
            assert client.get(f"/static/{asset}").status_code == 200, asset
        docs = client.get("/docs")
        assert docs.status_code == 200 and "/openapi.json" in docs.text
        assert "cdn" not in (page.text + docs.text).lower()
        paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/v1/health",
        "/v1/characters",
        "/v1/say",
        "/v1/sessions",
        "/v1/sessions/{session_id}/turns",
    } <= set(paths)


def test_create_character_from_an_upload(server: RunningServer, digihuman_home: Path) -> None:
    files = {"portrait": ("me.png", astronaut_png(), "image/png")}
    voice = io.BytesIO()
    import soundfile

    soundfile.write(voice, np.zeros(16000, np.float32), 16000, format="WAV")
    files["voice"] = ("../../voice.wav", voice.getvalue(), "audio/wav")
    with server.client() as client:
        created = client.post("/v1/characters", data={"name": "Eileen", "language": "en"}, files=files)
        assert created.status_code == 201, created.text
        assert created.json() == {"id": "eileen", "name": "Eileen", "language": "en"}
        assert any(c["id"] == "eileen" for c in client.get("/v1/characters").json())
        again = client.post("/v1/characters", data={"name": "Eileen"}, files={"portrait": files["portrait"]})
    assert again.status_code == 409
    assert again.json()["error"] == "a character named 'eileen' already exists; pick another name"
    folder = digihuman_home / "characters" / "eileen"
    assert (folder / "voice.wav").is_file() and (folder / "rig.npz").is_file()


@pytest.mark.parametrize(
    ("data", "files", "status", "message"),
    [
        (
            {"name": "Nobody"},
            {"portrait": ("x.png", "BLANK", "image/png")},
            400,
            "no face found in the portrait",
        ),
        (
            {"name": "X"},
            {"portrait": ("x.txt", b"hello", "text/plain")},
            415,
            "the portrait must be JPEG, PNG",
        ),
        (
            {"name": "X"},
            {"portrait": ("x.png", "BLANK", "image/png"), "voice": ("v", b"x", "video/mp4")},
            415,
            "voice",
        ),
        ({}, {"portrait": ("x.png", "BLANK", "image/png")}, 400, "give the character a name"),
        ({"name": "X"}, {}, 400, "attach a portrait photo"),
        (
            {"name": "../.."},
            {"portrait": ("x.png", "BLANK", "image/png")},
            400,
            "cannot be used as a character name",
        ),
        (
            {"name": "X", "language": "english!"},
            {"portrait": ("x.png", "BLANK", "image/png")},
            400,
            "language",
        ),
    ],
    ids=[
        "no-face",
        "wrong-type",
        "wrong-voice-type",
        "no-name",
        "no-portrait",
        "traversal-name",
        "bad-language",
    ],
)
def test_create_character_errors(
    server: RunningServer,
    data: dict[str, str],
    files: dict[str, tuple[str, object, str]],
    status: int,
    message: str,
) -> None:
    files = {k: (n, blank_png() if body == "BLANK" else body, t) for k, (n, body, t) in files.items()}
    with server.client() as client:
        response = client.post("/v1/characters", data=data, files=files or {"x": ("", b"", "text/plain")})
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    assert "\n" not in response.json()["error"]


def test_character_upload_limits(server: RunningServer) -> None:
    big = b"\xff\xd8" + b"\0" * (20 * 1024 * 1024 + 10)
    with server.client() as client:
        too_big = client.post(
            "/v1/characters", data={"name": "Big"}, files={"portrait": ("a.jpg", big, "image/jpeg")}
        )
        assert too_big.status_code == 413 and "20 MB" in too_big.json()["error"]
        as_json = client.post("/v1/characters", json={"name": "X"})
    assert as_json.status_code == 415


def test_say_returns_an_mp4_like_say_o(server: RunningServer) -> None:
    with server.client() as client:
        response = client.post("/v1/say", json={"text": "Hello from the web.", "character": "ada"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(response.content)) as container:
        kinds = {s.type for s in container.streams}
        video = container.streams.video[0]
        assert kinds == {"video", "audio"} and video.codec_context.name == "h264"
        assert (video.codec_context.width, video.codec_context.height) == (512, 512)
        assert float(container.duration or 0) / 1e6 > 0.5


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        ({"text": "x" * 10_001, "character": "ada"}, "application/json", 413, "at most 10,000 characters"),
        ({"text": "hi", "character": "nobody"}, "application/json", 404, "unknown character 'nobody'"),
        ({"text": "🙂🙂", "character": "ada"}, "application/json", 400, "nothing to say"),
        ({"text": 5}, "application/json", 400, '"text" must be a string'),
        ("hello", "text/plain", 415, "application/json"),
        ("{not json", "application/json", 400, "not valid JSON"),
        (
            {"text": "../../etc/passwd", "character": "../../etc"},
            "application/json",
            404,
            "unknown character",
        ),
    ],
    ids=[
        "too-long",
        "unknown-character",
        "nothing-to-say",
        "not-a-string",
        "not-json-type",
        "bad-json",
        "traversal",
    ],
)
def test_say_errors(
    server: RunningServer, body: object, content_type: str, status: int, message: str
) -> None:
    import json

    content = body if isinstance(body, str) else json.dumps(body)
    with server.client() as client:
        response = client.post("/v1/say", content=content, headers={"Content-Type": content_type})
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


def test_sessions_turns_and_limits(server: RunningServer) -> None:
    with server.client() as client:
        first = client.post("/v1/sessions", json={"character": "xiaomei"})
        assert first.status_code == 201, first.text
        body = first.json()
        assert body["character"]["id"] == "xiaomei" and body["ws"] == f"/v1/sessions/{body['id']}/ws"
        assert client.get(f"/v1/sessions/{body['id']}/turns").json() == {"id": body["id"], "turns": []}
        assert client.post("/v1/sessions").status_code == 201  # no body: the default character
        assert client.post("/v1/sessions", json={}).status_code == 201
        full = client.post("/v1/sessions", json={"character": "ada"})
        assert full.status_code == 503
        assert full.json()["error"].startswith(
            "the server is full: 3 sessions are open (server.max_sessions)"
        )
        assert client.delete(f"/v1/sessions/{body['id']}").status_code == 204
        assert client.get(f"/v1/sessions/{body['id']}/turns").status_code == 404
        assert client.post("/v1/sessions", json={"character": "ada"}).status_code == 201
        assert client.post("/v1/sessions", json={"character": "nobody"}).status_code in (404, 503)
        assert client.get("/v1/sessions/nope/turns").json()["error"].startswith("no session 'nope'")


def test_unknown_character_session_is_404(server: RunningServer) -> None:
    with server.client() as client:
        response = client.post("/v1/sessions", json={"character": "nobody"})
    assert response.status_code == 404 and "unknown character 'nobody'" in response.json()["error"]


def test_cross_origin_and_foreign_hosts_are_refused(server: RunningServer) -> None:
    with server.client() as client:
        cross = client.post("/v1/sessions", json={}, headers={"Origin": "http://evil.example"})
        assert cross.status_code == 403 and "cross-origin" in cross.json()["error"]
        sandboxed = client.post("/v1/sessions", json={}, headers={"Origin": "null"})
        assert sandboxed.status_code == 403
        rebinding = client.get("/v1/health", headers={"Host": "evil.example"})
        assert rebinding.status_code == 403 and "--token" in rebinding.json()["error"]
        same = client.get("/v1/health", headers={"Origin": server.url})
        assert same.status_code == 200 and "access-control-allow-origin" not in same.headers


def test_token_on_every_request_and_the_socket(ollama: OllamaTestServer) -> None:
    running = start_server(server_settings(ollama.url), token="s3cret")
    try:
        with httpx.Client(base_url=running.url) as anonymous:
            for path in ("/", "/v1/health", "/static/app.js", "/openapi.json", "/docs"):
                refused = anonymous.get(path)
                assert refused.status_code == 401, path
                assert "Authorization: Bearer" in refused.json()["error"]
            assert anonymous.get("/v1/health?token=wrong").status_code == 401
            assert anonymous.get("/v1/health?token=s3cret").status_code == 200
            page = anonymous.get("/?token=s3cret")  # sets the cookie the page's own requests carry
            assert page.status_code == 200
            assert anonymous.get("/static/app.js").status_code == 200
        with running.client() as client:
            session_id = client.post("/v1/sessions").json()["id"]
        from websockets.exceptions import InvalidStatus
        from websockets.sync.client import connect

        with pytest.raises(InvalidStatus):
            connect(f"{running.ws_url}/v1/sessions/{session_id}/ws").close()
        with connect(f"{running.ws_url}/v1/sessions/{session_id}/ws?token=s3cret", max_queue=None) as ws:
            assert '"hello"' in str(ws.recv(timeout=10))
    finally:
        running.stop()


def test_a_public_host_needs_a_token() -> None:
    with pytest.raises(UserError, match=r"--host 0\.0\.0\.0 .*--token"):
        check_bind("0.0.0.0", "")
    check_bind("0.0.0.0", "secret")
    check_bind("127.0.0.1", "")
    check_bind("::1", "")
    check_bind("localhost", "")
