"""A stand-in OpenAI-compatible transcription server: POST /v1/audio/transcriptions, multipart form.

It follows the documented protocol (fields `file`, `model`, `language`, `prompt`, `response_format`,
`timestamp_granularities[]`; answers json `{"text"}` or verbose_json with `language`, `duration`, `words`;
errors as `{"error": {"message", "type", "code"}}`) and records each request. The "transcript" is the
configured `text`; `refuse_verbose` mimics servers that only do json.
"""

from __future__ import annotations

import io
import json
import threading
import wave
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class TranscriptionServer:
    def __init__(
        self, text: str = "hello there", language: str = "english", models: tuple[str, ...] = ("whisper-1",)
    ):
        self.text = text
        self.language = language
        self.models = models
        self.api_key = "secret"
        self.refuse_verbose = False
        self.fail_with: int | None = None
        self.requests: list[dict[str, Any]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_port}/v1"

    def __enter__(self) -> TranscriptionServer:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, message: str, kind: str) -> None:
                self._send(status, {"error": {"message": message, "type": kind, "code": None}})

            def do_POST(self) -> None:
                # Read the whole request first: answering early would reset the client's upload.
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.path != "/v1/audio/transcriptions":
                    return self._error(404, f"no route {self.path}", "not_found")
                if self.headers.get("Authorization") != f"Bearer {server.api_key}":
                    return self._error(401, "Incorrect API key provided", "invalid_request_error")
                head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
                form = BytesParser(policy=HTTP).parsebytes(head + body)
                fields: dict[str, Any] = {}
                for part in form.iter_parts():
                    name = part.get_param("name", header="content-disposition")
                    payload = part.get_payload(decode=True)
                    fields[name] = payload if name == "file" else payload.decode()
                server.requests.append(fields)
                if server.fail_with:
                    return self._error(server.fail_with, "inference failed: out of memory", "server_error")
                if "file" not in fields or "model" not in fields:
                    return self._error(400, "file and model are required", "invalid_request_error")
                if fields["model"] not in server.models:
                    return self._error(404, f"The model `{fields['model']}` does not exist", "not_found")
                with wave.open(io.BytesIO(fields["file"])) as w:
                    duration = w.getnframes() / w.getframerate()
                fmt = fields.get("response_format", "json")
                if fmt == "verbose_json" and server.refuse_verbose:
                    return self._error(
                        400, "Unsupported response_format: verbose_json", "invalid_request_error"
                    )
                if fmt == "json":
                    return self._send(200, {"text": server.text})
                words = [
                    {"word": w, "start": i * 0.3, "end": i * 0.3 + 0.25}
                    for i, w in enumerate(server.text.split())
                ]
                return self._send(
                    200,
                    {
                        "task": "transcribe",
                        "language": server.language,
                        "duration": duration,
                        "text": server.text,
                        "words": words,
                    },
                )

        return Handler
