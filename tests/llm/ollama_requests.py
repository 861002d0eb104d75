"""The stand-in Ollama server's request checks: a chat request (native or OpenAI-style) parsed and
validated the way the real server does, or an HTTPFailure with its status and message."""

from __future__ import annotations

import binascii
import json
import re
from typing import TYPE_CHECKING, Any

from tests.llm.ollama_models import ChatCall, Model, tokens

if TYPE_CHECKING:
    from tests.llm.ollama_server import OllamaTestServer

_DURATION = re.compile(r"^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+$")
_BASE64_ALPHABET = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


class HTTPFailure(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _first_bad_base64_byte(text: str) -> int | None:
    for index, char in enumerate(text):
        if char not in _BASE64_ALPHABET:
            return index
    try:
        binascii.a2b_base64(text, strict_mode=True)
    except binascii.Error:
        return len(text)
    return None


def parse_json(raw: bytes) -> Any:
    if not raw.strip():
        raise HTTPFailure(400, "missing request body")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HTTPFailure(400, f"invalid character in request body: {exc}") from None


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


def native_call(body: Any, server: OllamaTestServer) -> tuple[Model, ChatCall]:
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


def openai_call(body: Any, server: OllamaTestServer) -> tuple[Model, ChatCall]:
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


def prompt_tokens(call: ChatCall) -> int:
    return sum(len(tokens(m["text"])) + 4 for m in call.messages) + 256 * call.images
