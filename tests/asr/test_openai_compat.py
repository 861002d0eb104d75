from __future__ import annotations

import socket

import numpy as np
import pytest

from digihuman.asr.openai_compat import OpenAICompatASR
from digihuman.errors import BackendError
from tests.asr.transcription_server import TranscriptionServer

AUDIO = (0.1 * np.sin(np.arange(16000) / 5)).astype(np.float32)


@pytest.fixture
def server():
    with TranscriptionServer() as s:
        yield s


async def test_text_language_and_word_timings(server: TranscriptionServer) -> None:
    asr = OpenAICompatASR(server.url, "whisper-1", api_key="secret", language="en")
    result = await asr.transcribe(AUDIO)
    assert (result.text, result.language) == ("hello there", "en")
    assert [w.label for w in result.words] == ["hello", "there"]
    sent = server.requests[0]
    assert (
        sent["model"] == "whisper-1"
        and sent["language"] == "en"
        and sent["response_format"] == "verbose_json"
    )
    assert sent["file"][:4] == b"RIFF" and len(sent["file"]) == 44 + 2 * len(AUDIO)  # 16-bit WAV in memory
    await asr.aclose()


async def test_servers_without_verbose_json_get_plain_json(server: TranscriptionServer) -> None:
    server.refuse_verbose = True
    asr = OpenAICompatASR(server.url, "whisper-1", api_key="secret")
    assert (await asr.transcribe(AUDIO)).text == "hello there"
    assert (await asr.transcribe(AUDIO)).text == "hello there"
    assert [r["response_format"] for r in server.requests] == ["verbose_json", "json", "json"]


async def test_chinese_comes_back_simplified_with_a_simplified_prompt(server: TranscriptionServer) -> None:
    server.text, server.language = "我們明天見，謝謝你的幫助。", "chinese"
    asr = OpenAICompatASR(server.url, "whisper-1", api_key="secret", language="zh-CN")
    result = await asr.transcribe(AUDIO)
    assert (result.text, result.language) == ("我们明天见，谢谢你的帮助。", "zh")
    assert server.requests[0]["language"] == "zh" and "普通话" in server.requests[0]["prompt"]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda s: setattr(s, "api_key", "other"), "refused the API key"),
        (lambda s: setattr(s, "models", ("large-v3",)), "no model 'whisper-1'"),
        (lambda s: setattr(s, "fail_with", 500), "failed.*out of memory"),
    ],
)
async def test_server_errors_are_one_line_backend_errors(
    server: TranscriptionServer, setup, message: str
) -> None:
    setup(server)
    asr = OpenAICompatASR(server.url, "whisper-1", api_key="secret")
    with pytest.raises(BackendError, match=message) as err:
        await asr.transcribe(AUDIO)
    assert "\n" not in str(err.value)


async def test_no_server_names_the_url_and_the_fix() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    asr = OpenAICompatASR(f"http://127.0.0.1:{port}/v1", "whisper-1", timeout_s=2)
    with pytest.raises(BackendError, match=f"cannot reach the ASR server at http://127.0.0.1:{port}/v1"):
        await asr.transcribe(AUDIO)
