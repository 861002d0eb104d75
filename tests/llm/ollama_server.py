"""A stand-in Ollama server for tests: a real HTTP server on 127.0.0.1 speaking Ollama's documented protocol.

No Ollama binary can be installed here, so the adapter is tested against this instead. It serves:
- `GET /` ("Ollama is running"), `GET /api/version`, `GET /api/tags`, `GET /api/ps`, `POST /api/show` (details
  and `capabilities`: "vision" only for the vision models);
- `POST /api/chat` with NDJSON streaming (or one JSON object with `stream: false`), preload/unload with empty
  `messages`, reasoning in `message.thinking`, mid-stream `{"error": ...}` lines, metrics in nanoseconds;
- `POST /v1/chat/completions` (Ollama's OpenAI-compatible endpoint): SSE, reasoning in `delta.reasoning`,
  a usage chunk when `stream_options.include_usage` is set, and `GET /v1/models`.
Requests are validated like the real server (400 on bad JSON, images must be plain base64 on /api/chat and
data URLs on /v1, `think:true` on a model that cannot think, bad keep_alive durations; 404 for a model that is
not pulled; pictures sent to a text-only model get a 400 worded like Ollama's capability errors, e.g.
`"qwen2.5:0.5b" does not support vision`) and recorded in `server.requests`, so tests can assert what the
adapter sent.

The model name selects a scripted behaviour (see MODELS in ollama_models.py). Start it from tests with
`OllamaTestServer().start()` or from a shell: `python -m tests.llm.ollama_server --port 11434`.
It needs only the standard library.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.llm.ollama_models import (  # re-exported: tests import them from here
    MID_STREAM_ERROR,
    MODELS,
    ChatCall,
    Model,
    Step,
    tokens,
)
from tests.llm.ollama_requests import (
    HTTPFailure,
    native_call,
    openai_call,
    parse_json,
    prompt_tokens,
)

__all__ = [
    "BUSY_ERROR",
    "MID_STREAM_ERROR",
    "MODELS",
    "ChatCall",
    "Model",
    "OllamaTestServer",
    "Step",
    "tokens",
]

VERSION = "0.12.6"
MAX_TOKENS = 4096  # a safety cap for num_predict -1 (unbounded) with the endless scripts
BUSY_ERROR = "server busy, please try again.  maximum pending requests exceeded"


@dataclass(slots=True)
class RecordedRequest:
    method: str
    path: str
    body: Any  # the parsed JSON body, or the raw text when it was not JSON
    headers: dict[str, str] = field(default_factory=dict)


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class OllamaTestServer:
    """The scripted server. Not thread-safe to reconfigure while requests run; set attributes first."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token_delay_s: float = 0.0,
        slow_first_token_s: float = 3.0,
        busy_failures: int = 2,
        reasoning_field: str = "reasoning",
    ) -> None:
        self.token_delay_s = token_delay_s
        self.slow_first_token_s = slow_first_token_s
        self.busy_failures = busy_failures
        self.reasoning_field = (
            reasoning_field  # "reasoning" (Ollama, vLLM) or "reasoning_content" (llama.cpp)
        )
        self.requests: list[RecordedRequest] = []
        self._busy_answered: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._httpd = _HTTPServer((host, port), _Handler)
        self._httpd.app = self
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> OllamaTestServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="ollama-test-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> OllamaTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def bodies(self, path: str = "/api/chat") -> list[Any]:
        """The JSON bodies received on `path`, oldest first."""
        with self._lock:
            return [r.body for r in self.requests if r.path == path]

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    # --- request handling, called from the handler threads ---

    def model(self, name: str, *, openai: bool) -> Model:
        if not name:
            raise HTTPFailure(400, "model is required")
        model = MODELS.get(name)
        if model is None:
            if openai:
                raise HTTPFailure(404, f'model "{name}" not found, try pulling it first')
            raise HTTPFailure(404, f"model '{name}' not found")
        return model

    def check_busy(self, name: str) -> None:
        with self._lock:
            if name == "busy" or (name == "busy-then-ok" and self._busy_answered[name] < self.busy_failures):
                self._busy_answered[name] += 1
                raise HTTPFailure(503, BUSY_ERROR)

    def steps(self, model: Model, call: ChatCall) -> Iterator[Step]:
        """The script with num_predict applied; ends with a "done" step carrying the done_reason."""
        limit = call.num_predict if call.num_predict >= 0 else MAX_TOKENS
        produced = 0
        for step in model.script(self, call):
            if step.kind == "pause":
                time.sleep(step.seconds)
                continue
            if step.kind == "error":
                yield step
                return
            if produced >= limit:
                yield Step("done", "length")
                return
            produced += 1
            yield step
            if self.token_delay_s:
                time.sleep(self.token_delay_s)
        yield Step("done", "stop")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a handler sleeping in a slow script must not hold up stop()
    app: OllamaTestServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client closing its keep-alive connection is normal; anything else is a bug worth seeing.
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read server.requests instead

    @property
    def app(self) -> OllamaTestServer:
        return self.server.app

    def do_HEAD(self) -> None:
        self._send_text(200, "")

    def do_GET(self) -> None:
        self.app.record(RecordedRequest("GET", self.path, None, dict(self.headers)))
        if self.path == "/":
            self._send_text(200, "Ollama is running")
        elif self.path == "/api/version":
            self._send_json(200, {"version": VERSION})
        elif self.path == "/api/tags":
            self._send_json(200, {"models": [self._tag(name, model) for name, model in MODELS.items()]})
        elif self.path == "/api/ps":
            self._send_json(200, {"models": []})
        elif self.path == "/v1/models":
            data = [{"id": name, "object": "model", "created": 0, "owned_by": "library"} for name in MODELS]
            self._send_json(200, {"object": "list", "data": data})
        else:
            self._send_text(404, "404 page not found")

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body: Any = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = raw.decode("utf-8", "replace")
        self.app.record(RecordedRequest("POST", self.path, body, dict(self.headers)))
        openai = self.path == "/v1/chat/completions"
        try:
            if self.path == "/api/chat":
                self._native_chat(parse_json(raw))
            elif self.path == "/api/show":
                self._show(parse_json(raw))
            elif openai:
                self._openai_chat(parse_json(raw))
            else:
                self._send_text(404, "404 page not found")
        except HTTPFailure as failure:
            if openai:
                kind = "invalid_request_error" if failure.status == 400 else "api_error"
                error = {"message": failure.message, "type": kind, "param": None, "code": None}
                self._send_json(failure.status, {"error": error})
            else:
                self._send_json(failure.status, {"error": failure.message})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client hung up mid-stream (a timeout or a cut loop)

    # --- /api/chat ---

    def _native_chat(self, body: Any) -> None:
        model, call = native_call(body, self.app)
        started = time.monotonic_ns()
        if not call.messages:
            keep_alive = body.get("keep_alive")
            reason = "unload" if keep_alive in (0, "0", "0s") else "load"
            reply = {
                "model": call.model,
                "created_at": _now(),
                "message": {"role": "assistant", "content": ""},
            }
            self._send_json(200, {**reply, "done_reason": reason, "done": True})
            return
        self.app.check_busy(call.model)
        if not call.stream:
            self._native_whole(model, call, started)
            return
        self._start_stream("application/x-ndjson")
        first_token = 0
        for eval_count, step in enumerate(self.app.steps(model, call)):
            if step.kind == "error":
                self._write_chunk(json.dumps({"error": step.text}) + "\n")
                break
            if step.kind == "done":
                final = self._native_final(call, step.text, eval_count, started, first_token)
                self._write_chunk(json.dumps(final) + "\n")
                break
            first_token = first_token or time.monotonic_ns()
            message = {"role": "assistant", "content": step.text if step.kind == "say" else ""}
            if step.kind == "think":
                message["thinking"] = step.text
            line = {"model": call.model, "created_at": _now(), "message": message, "done": False}
            self._write_chunk(json.dumps(line, ensure_ascii=False) + "\n")
        self._end_stream()

    def _native_whole(self, model: Model, call: ChatCall, started: int) -> None:
        content, thinking, first_token = [], [], 0
        for eval_count, step in enumerate(self.app.steps(model, call)):
            if step.kind == "error":
                self._send_json(500, {"error": step.text})
                return
            if step.kind == "done":
                final = self._native_final(call, step.text, eval_count, started, first_token)
                final["message"] = {"role": "assistant", "content": "".join(content)}
                if thinking:
                    final["message"]["thinking"] = "".join(thinking)
                self._send_json(200, final)
                return
            first_token = first_token or time.monotonic_ns()
            (content if step.kind == "say" else thinking).append(step.text)

    def _native_final(
        self, call: ChatCall, reason: str, eval_count: int, started: int, first_token: int
    ) -> dict[str, Any]:
        now = time.monotonic_ns()
        first_token = first_token or now
        return {
            "model": call.model,
            "created_at": _now(),
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": reason,
            "total_duration": now - started,
            "load_duration": 0,
            "prompt_eval_count": prompt_tokens(call),
            "prompt_eval_duration": first_token - started,
            "eval_count": eval_count,
            "eval_duration": max(1, now - first_token),
        }

    # --- /v1/chat/completions ---

    def _openai_chat(self, body: Any) -> None:
        model, call = openai_call(body, self.app)
        self.app.check_busy(call.model)
        if not call.stream:
            self._openai_whole(model, call)
            return
        self._start_stream("text/event-stream")
        completion_id = f"chatcmpl-{time.monotonic_ns() % 1000}"

        def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": call.model,
                "system_fingerprint": "fp_ollama",
                "choices": [choice],
            }

        for count, step in enumerate(self.app.steps(model, call)):
            if step.kind == "error":
                self._write_event(
                    {"error": {"message": step.text, "type": "api_error", "param": None, "code": None}}
                )
                break
            if step.kind == "done":
                self._write_event(chunk({"role": "assistant", "content": ""}, step.text))
                if call.include_usage:
                    usage = {"prompt_tokens": prompt_tokens(call), "completion_tokens": count}
                    usage["total_tokens"] = usage["prompt_tokens"] + count
                    self._write_event({**chunk({}, None), "choices": [], "usage": usage})
                self._write_chunk("data: [DONE]\n\n")
                break
            if step.kind == "think":
                delta = {"role": "assistant", "content": "", self.app.reasoning_field: step.text}
            else:
                delta = {"role": "assistant", "content": step.text}
            self._write_event(chunk(delta, None))
        self._end_stream()

    def _openai_whole(self, model: Model, call: ChatCall) -> None:
        content, reasoning = [], []
        for count, step in enumerate(self.app.steps(model, call)):
            if step.kind == "error":
                self._send_json(500, {"error": {"message": step.text, "type": "api_error"}})
                return
            if step.kind == "done":
                message: dict[str, Any] = {"role": "assistant", "content": "".join(content)}
                if reasoning:
                    message[self.app.reasoning_field] = "".join(reasoning)
                choice = {"index": 0, "message": message, "finish_reason": step.text}
                usage = {"prompt_tokens": prompt_tokens(call), "completion_tokens": count}
                usage["total_tokens"] = usage["prompt_tokens"] + count
                reply = {"id": "chatcmpl-1", "object": "chat.completion", "created": int(time.time())}
                self._send_json(200, {**reply, "model": call.model, "choices": [choice], "usage": usage})
                return
            (content if step.kind == "say" else reasoning).append(step.text)

    # --- /api/show ---

    def _show(self, body: Any) -> None:
        name = (body.get("model") or body.get("name") or "") if isinstance(body, dict) else ""
        model = self.app.model(name, openai=False)
        capabilities = ["completion", "tools"] + ["vision"] * model.vision + ["thinking"] * model.thinks
        details = self._tag(name, model)["details"]
        architecture = model.family
        self._send_json(
            200,
            {
                "license": "Apache License 2.0",
                "modelfile": f'# Modelfile generated by "ollama show"\nFROM {name}\n',
                "parameters": "temperature 0.7\ntop_p 0.8",
                "template": "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n"
                "{{ end }}",
                "details": {"parent_model": "", **details, "families": [model.family]},
                "model_info": {
                    "general.architecture": architecture,
                    "general.parameter_count": 4_000_000_000,
                    f"{architecture}.context_length": 32768,
                },
                "capabilities": capabilities,
                "modified_at": _now(),
            },
        )

    # --- plumbing ---

    @staticmethod
    def _tag(name: str, model: Model) -> dict[str, Any]:
        details = {
            "format": "gguf",
            "family": model.family,
            "parameter_size": "4B",
            "quantization_level": "Q4_K_M",
        }
        return {"name": name, "model": name, "size": 3_300_000_000, "digest": "0" * 64, "details": details}

    def _send_json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        self._send(status, data, "application/json; charset=utf-8")

    def _send_text(self, status: int, text: str) -> None:
        self._send(status, text.encode(), "text/plain; charset=utf-8")

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _start_stream(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _write_chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _write_event(self, payload: dict[str, Any]) -> None:
        self._write_chunk(f"data: {json.dumps(payload, ensure_ascii=False)}\n\n")

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A scripted stand-in Ollama server for tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument("--token-delay", type=float, default=0.0, help="seconds between streamed tokens")
    parser.add_argument("--slow-first-token", type=float, default=3.0, help="delay of model slow-first-token")
    args = parser.parse_args(argv)
    server = OllamaTestServer(
        args.host, args.port, token_delay_s=args.token_delay, slow_first_token_s=args.slow_first_token
    )
    print(f"Ollama test server listening on {server.url} (models: {', '.join(MODELS)})", flush=True)
    try:
        server._httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server._httpd.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
