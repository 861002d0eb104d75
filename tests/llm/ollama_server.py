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

The model name selects a scripted behaviour (see MODELS). Start it from tests with
`OllamaTestServer().start()` or from a shell: `python -m tests.llm.ollama_server --port 11434`.
It needs only the standard library.
"""

from __future__ import annotations

import argparse
import binascii
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

VERSION = "0.12.6"
MAX_TOKENS = 4096  # a safety cap for num_predict -1 (unbounded) with the endless scripts
BUSY_ERROR = "server busy, please try again.  maximum pending requests exceeded"
MID_STREAM_ERROR = "an error was encountered while running the model: unexpected EOF"
_CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")
# One "token": a CJK character, a word with its trailing space, or a run of whitespace.
_TOKEN = re.compile(
    r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]|[^\s\u3000-\u303f\u3400-\u9fff\uff00-\uffef]+\s*|\s+"
)
_DURATION = re.compile(r"^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+$")
_BASE64_ALPHABET = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


@dataclass(frozen=True, slots=True)
class Step:
    """One scripted event: a token of thinking or content, a pause, or an error."""

    kind: str  # "think" | "say" | "pause" | "error"
    text: str = ""
    seconds: float = 0.0


@dataclass(slots=True)
class ChatCall:
    """A validated chat request, whichever endpoint it came in on."""

    model: str
    messages: list[dict[str, Any]]
    images: int
    think: bool | str | None
    num_predict: int
    stream: bool
    include_usage: bool = False


@dataclass(slots=True)
class RecordedRequest:
    method: str
    path: str
    body: Any  # the parsed JSON body, or the raw text when it was not JSON
    headers: dict[str, str] = field(default_factory=dict)


class HTTPFailure(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _last_user_text(call: ChatCall) -> str:
    for message in reversed(call.messages):
        if message.get("role") == "user":
            return str(message.get("text", "")).strip()
    return ""


def _reply_text(call: ChatCall) -> str:
    """A deterministic, readable reply that shows what arrived (text and image count)."""
    said = _last_user_text(call)
    if _CJK.search(said):
        seen = f"我看到了{call.images}张图片。" if call.images else ""
        return f"你好！你刚才说：「{said}」。{seen}很高兴和你聊天。"
    seen = f"I can see {call.images} image{'s' if call.images != 1 else ''}. " if call.images else ""
    return f"Hello! You said: {said.rstrip('.!?')}. {seen}Nice to talk with you."


def _say(text: str) -> Iterator[Step]:
    for token in tokens(text):
        yield Step("say", token)


def _think(text: str) -> Iterator[Step]:
    for token in tokens(text):
        yield Step("think", token)


def _forever(steps: Callable[[], Iterator[Step]]) -> Iterator[Step]:
    while True:
        yield from steps()


@dataclass(frozen=True, slots=True)
class Model:
    """A scripted model: whether it can think, and what it streams for a request."""

    script: Callable[[OllamaTestServer, ChatCall], Iterator[Step]]
    thinks: bool = False
    family: str = "qwen3"
    vision: bool = True  # reads pictures ("vision" in /api/show's capabilities)


def _ok(server: OllamaTestServer, call: ChatCall) -> Iterator[Step]:
    yield from _say(_reply_text(call))


def _thinker(server: OllamaTestServer, call: ChatCall) -> Iterator[Step]:
    # Like a real thinking model: thinking is on unless the request says think:false.
    if call.think is None or call.think:
        yield from _think("The user greeted me. I should answer warmly and briefly.")
    yield from _say(_reply_text(call))


def _thinking_only(server: OllamaTestServer, call: ChatCall) -> Iterator[Step]:
    # A "thinking" variant that ignores think:false and never gets to the answer.
    yield from _think("Let me consider what the user wants. Maybe a greeting. Or maybe a question.")


def _think_forever(server: OllamaTestServer, call: ChatCall) -> Iterator[Step]:
    yield from _forever(lambda: _think("Hmm, let me reconsider this from another angle. "))


def _slow_thinker(server: OllamaTestServer, call: ChatCall) -> Iterator[Step]:
    while True:
        yield Step("think", "pondering ")
        yield Step("pause", seconds=0.05)


def _think_tags(server: OllamaTestServer, call: ChatCall) -> Iterator[Step]:
    # Reasoning inside the content, with both tags split across tokens, as some templates produce it.
    for piece in (
        "<th",
        "ink>",
        "The user",
        " wants a",
        " greeting",
        ".</thi",
        "nk>",
        "\n\n",
        "Hello",
        " from",
        " tags.",
    ):
        yield Step("say", piece)


def _mid_error(server: OllamaTestServer, call: ChatCall) -> Iterator[Step]:
    yield from _say("Hello there, ")
    yield Step("error", MID_STREAM_ERROR)


def _slow_first_token(server: OllamaTestServer, call: ChatCall) -> Iterator[Step]:
    yield Step("pause", seconds=server.slow_first_token_s)
    yield from _ok(server, call)


def _long(server: OllamaTestServer, call: ChatCall) -> Iterator[Step]:
    # Endless but never repeating: for throughput and budget tests.
    topics = (
        "the river",
        "a quiet morning",
        "green tea",
        "the old bridge",
        "city lights",
        "a long walk",
        "rain",
    )
    number = 0
    while True:
        number += 1
        topic, other = topics[number % len(topics)], topics[(number * 3 + 1) % len(topics)]
        yield from _say(f"Thought {number} is about {topic} and {other}. ")


def _loop(server: OllamaTestServer, call: ChatCall) -> Iterator[Step]:
    yield from _say("Sure. ")
    yield from _forever(lambda: _say("I am always here for you. "))


def _loop_zh(server: OllamaTestServer, call: ChatCall) -> Iterator[Step]:
    yield from _say("好的。")
    yield from _forever(lambda: _say("我一直在这里陪着你。"))


MODELS: dict[str, Model] = {
    "ok": Model(_ok),
    "qwen3-vl:4b-instruct": Model(_ok),  # the default model in digihuman's settings
    "llama3.2:1b": Model(_ok, family="llama"),
    "qwen2.5:0.5b": Model(_ok, family="qwen2", vision=False),  # text only
    "thinker": Model(_thinker, thinks=True),
    "thinking-only": Model(_thinking_only, thinks=True),
    "think-forever": Model(_think_forever, thinks=True),
    "slow-thinker": Model(_slow_thinker, thinks=True),
    "think-tags": Model(_think_tags),
    "mid-error": Model(_mid_error),
    "busy-then-ok": Model(_ok),  # answers 503 to its first `busy_failures` requests
    "busy": Model(_ok),  # always 503
    "slow-first-token": Model(_slow_first_token),
    "long": Model(_long),
    "loop": Model(_loop),
    "loop-zh": Model(_loop_zh),
}


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _first_bad_base64_byte(text: str) -> int | None:
    for index, char in enumerate(text):
        if char not in _BASE64_ALPHABET:
            return index
    try:
        binascii.a2b_base64(text, strict_mode=True)
    except binascii.Error:
        return len(text)
    return None


def _parse_json(raw: bytes) -> Any:
    if not raw.strip():
        raise HTTPFailure(400, "missing request body")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HTTPFailure(400, f"invalid character in request body: {exc}") from None


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


def _validate_think(value: Any, model_name: str, model: Model) -> bool | str | None:
    if value is None or isinstance(value, bool) or value in ("low", "medium", "high"):
        think = value
    else:
        raise HTTPFailure(400, f"invalid think value: {json.dumps(value)}")
    if think and not model.thinks:
        raise HTTPFailure(400, f'"{model_name}" does not support thinking')
    return think


def _validate_keep_alive(value: Any) -> None:
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return
    if isinstance(value, str) and (_DURATION.match(value) or value in ("0", "-1")):
        return
    raise HTTPFailure(400, f'time: invalid duration "{value}"')


ROLES = ("system", "user", "assistant", "tool")


def _int_option(options: dict[str, Any], key: str, default: int) -> int:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise HTTPFailure(400, f"option {key} must be a number, got {json.dumps(value)}")
    return int(value)


def _check_role(message: Any, error: str) -> None:
    """Both APIs accept the same roles; each words its 400 its own way."""
    if not isinstance(message, dict) or message.get("role") not in ROLES:
        raise HTTPFailure(400, error)


def _check_vision(name: str, model: Model, images: int) -> None:
    if images and not model.vision:
        raise HTTPFailure(400, f'"{name}" does not support vision')


def _native_call(body: Any, server: OllamaTestServer) -> tuple[Model, ChatCall]:
    if not isinstance(body, dict):
        raise HTTPFailure(400, "json: cannot unmarshal request into Go value of type api.ChatRequest")
    name = body.get("model") or ""
    model = server.model(name, openai=False)
    messages, images = [], 0
    for message in body.get("messages") or []:
        _check_role(message, "invalid message: role must be system, user, assistant or tool")
        if not isinstance(message.get("content", ""), str):
            raise HTTPFailure(
                400, "json: cannot unmarshal array into Go struct field Message.messages.content"
            )
        for image in message.get("images") or []:
            bad = _first_bad_base64_byte(image) if isinstance(image, str) else 0
            if bad is not None:
                raise HTTPFailure(400, f"illegal base64 data at input byte {bad}")
            images += 1
        messages.append({"role": message["role"], "text": message.get("content", "")})
    _check_vision(name, model, images)
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise HTTPFailure(400, "options must be an object")
    if not isinstance(options.get("temperature", 0.8), (int, float)):
        raise HTTPFailure(400, "option temperature must be a number")
    _validate_keep_alive(body.get("keep_alive"))
    stream = body.get("stream", True)
    call = ChatCall(
        model=name,
        messages=messages,
        images=images,
        think=_validate_think(body.get("think"), name, model),
        num_predict=_int_option(options, "num_predict", -1),
        stream=stream is not False,
    )
    return model, call


def _openai_call(body: Any, server: OllamaTestServer) -> tuple[Model, ChatCall]:
    if not isinstance(body, dict):
        raise HTTPFailure(400, "invalid request body")
    name = body.get("model") or ""
    model = server.model(name, openai=True)
    messages, images = [], 0
    for message in body.get("messages") or []:
        _check_role(message, "invalid message role")
        content = message.get("content", "")
        if isinstance(content, str):
            messages.append({"role": message["role"], "text": content})
            continue
        if not isinstance(content, list):
            raise HTTPFailure(400, "invalid message content type")
        texts = []
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                texts.append(str(part.get("text", "")))
            elif kind == "image_url":
                url = part.get("image_url")
                url = url.get("url") if isinstance(url, dict) else url
                prefix, _, data = str(url).partition(";base64,")
                if not prefix.startswith("data:image/") or _first_bad_base64_byte(data) is not None:
                    raise HTTPFailure(400, "invalid image input")
                images += 1
            else:
                raise HTTPFailure(400, f"invalid message part type: {kind}")
        messages.append({"role": message["role"], "text": " ".join(texts)})
    _check_vision(name, model, images)
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
        raise HTTPFailure(400, "max_tokens must be an integer")
    stream_options = body.get("stream_options") or {}
    think = body.get("reasoning_effort")  # Ollama maps reasoning_effort to think; absent = model default
    call = ChatCall(
        model=name,
        messages=messages,
        images=images,
        think=think if think in ("low", "medium", "high") else None,
        num_predict=-1 if limit is None else limit,
        stream=bool(body.get("stream", False)),
        include_usage=bool(stream_options.get("include_usage")),
    )
    return model, call


def _prompt_tokens(call: ChatCall) -> int:
    return sum(len(tokens(m["text"])) + 4 for m in call.messages) + 256 * call.images


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
                self._native_chat(_parse_json(raw))
            elif self.path == "/api/show":
                self._show(_parse_json(raw))
            elif openai:
                self._openai_chat(_parse_json(raw))
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
        model, call = _native_call(body, self.app)
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
            "prompt_eval_count": _prompt_tokens(call),
            "prompt_eval_duration": first_token - started,
            "eval_count": eval_count,
            "eval_duration": max(1, now - first_token),
        }

    # --- /v1/chat/completions ---

    def _openai_chat(self, body: Any) -> None:
        model, call = _openai_call(body, self.app)
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
                    usage = {"prompt_tokens": _prompt_tokens(call), "completion_tokens": count}
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
                usage = {"prompt_tokens": _prompt_tokens(call), "completion_tokens": count}
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
