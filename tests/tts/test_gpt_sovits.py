"""GPT-SoVITS adapter against a local stand-in of api_v2.py (real HTTP, documented behaviour)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from digihuman.errors import BackendError
from digihuman.tts.gpt_sovits import GptSovitsTTS, gpt_sovits_language
from tests.tts.gpt_sovits_server import REF_AUDIO_RANGE_MESSAGE, Running, StandIn, render

SENTENCE = "Hello there, how are you today? I am fine."
REPO = Path(__file__).resolve().parents[2]


def write_voice(path: Path, seconds: float) -> Path:
    rate = 16000
    t = np.arange(int(rate * seconds)) / rate
    sf.write(path, (0.2 * np.sin(2 * np.pi * 180 * t)).astype(np.float32), rate)
    return path


@pytest.fixture
def ref_audio(tmp_path: Path) -> Path:
    return write_voice(tmp_path / "voice.wav", 4.0)


@pytest.fixture
def serve() -> Iterator:
    running: list[Running] = []

    def start(**options) -> Running:
        server = Running(StandIn(**options)).__enter__()
        running.append(server)
        return server

    yield start
    for server in running:
        server.__exit__(None, None, None)


def expected_pcm(text: str, rate: int, speed: float = 1.0) -> np.ndarray:
    return np.concatenate(render(text, rate, speed)).astype(np.float32) / 32768


async def speak(tts: GptSovitsTTS, text: str = SENTENCE, language: str = "en") -> list:
    try:
        return [chunk async for chunk in tts.synthesize(text, language)]
    finally:
        await tts.aclose()


def joined(chunks: list) -> np.ndarray:
    return np.concatenate([c.pcm for c in chunks])


@pytest.mark.parametrize(("version", "rate"), [("v2", 32000), ("v3", 24000), ("v4", 48000)])
@pytest.mark.parametrize("streaming", [True, False, 2])
async def test_audio_arrives_at_the_model_rate(serve, ref_audio, version, rate, streaming) -> None:
    server = serve(version=version)
    tts = GptSovitsTTS(
        server.url, ref_audio_path=str(ref_audio), prompt_text="A sample.", streaming=streaming
    )
    chunks = await speak(tts)
    assert {c.sample_rate for c in chunks} == {rate}
    assert all(c.pcm.dtype == np.float32 and c.pcm.ndim == 1 for c in chunks)
    np.testing.assert_array_equal(joined(chunks), expected_pcm(SENTENCE, rate))
    starts = [c.start_s for c in chunks]
    assert starts[0] == 0.0 and starts == sorted(starts)
    assert all(c.text == SENTENCE for c in chunks)
    if streaming:
        assert len(chunks) >= 3  # one or more per segment, as they arrive
    request = server.standin.requests[0]
    assert request["method"] == "POST"
    assert request["streaming_mode"] == streaming
    assert request["media_type"] == "wav"


async def test_request_carries_character_voice_and_passthrough_params(serve, ref_audio) -> None:
    server = serve()
    tts = GptSovitsTTS(
        server.url,
        ref_audio_path=str(ref_audio),
        prompt_text="你好。",
        prompt_lang="zh",
        top_k=5,
        speed_factor=2.0,
    )
    chunks = await speak(tts, "你好，世界。", "zh")
    request = server.standin.requests[0]
    assert request["ref_audio_path"] == str(ref_audio)
    assert (request["text_lang"], request["prompt_lang"], request["prompt_text"]) == ("zh", "zh", "你好。")
    assert (request["top_k"], request["speed_factor"], request["text_split_method"]) == (5, 2.0, "cut5")
    np.testing.assert_array_equal(joined(chunks), expected_pcm("你好，世界。", 32000, speed=2.0))


async def test_first_chunk_arrives_before_the_sentence_is_done(serve, ref_audio) -> None:
    server = serve(piece_delay_s=0.15)
    tts = GptSovitsTTS(server.url, ref_audio_path=str(ref_audio))
    started = time.monotonic()
    stream = tts.synthesize(SENTENCE, "en")
    await anext(stream)
    first_s = time.monotonic() - started
    rest = [c async for c in stream]
    total_s = time.monotonic() - started
    await tts.aclose()
    assert len(rest) >= 2 and first_s < total_s - 0.2


async def test_split_header_and_odd_byte_reads(serve, ref_audio) -> None:
    server = serve(jagged=True)
    chunks = await speak(GptSovitsTTS(server.url, ref_audio_path=str(ref_audio), streaming=2))
    np.testing.assert_array_equal(joined(chunks), expected_pcm(SENTENCE, 32000))


async def test_old_server_gets_the_bool_form_and_is_remembered(serve, ref_audio) -> None:
    server = serve(api="old")
    tts = GptSovitsTTS(server.url, ref_audio_path=str(ref_audio), streaming=2)
    first = [c async for c in tts.synthesize(SENTENCE, "en")]
    second = await speak(tts, "Again.")
    modes = [(r["streaming_mode"], r.get("status")) for r in server.standin.requests]
    assert modes == [(2, None), (True, 200), (True, 200)]  # one 422, then only the bool form
    np.testing.assert_array_equal(joined(first), expected_pcm(SENTENCE, 32000))
    assert joined(second).size > 0


async def test_old_server_header_rate_can_be_overridden(serve, ref_audio) -> None:
    server = serve(api="old", version="v4")  # its streaming header says 32000 for 48 kHz audio
    wrong = await speak(GptSovitsTTS(server.url, ref_audio_path=str(ref_audio), prompt_text="Hi."))
    right = await speak(
        GptSovitsTTS(server.url, ref_audio_path=str(ref_audio), prompt_text="Hi.", sample_rate=48000)
    )
    assert {c.sample_rate for c in wrong} == {32000}
    assert {c.sample_rate for c in right} == {48000}


@pytest.mark.parametrize("api", ["newest", "old"])
async def test_get_only_server_is_asked_with_get(serve, ref_audio, api) -> None:
    server = serve(get_only=True, api=api)
    tts = GptSovitsTTS(server.url, ref_audio_path=str(ref_audio), streaming=3)
    chunks = await speak(tts)
    methods = [r["method"] for r in server.standin.requests]
    assert methods[0] == "POST" and set(methods[1:]) == {"GET"}
    assert server.standin.requests[-1]["streaming_mode"] == ("3" if api == "newest" else "true")
    np.testing.assert_array_equal(joined(chunks), expected_pcm(SENTENCE, 32000))


@pytest.mark.parametrize("streaming", [False, True])
async def test_missing_reference_audio_is_explained(serve, tmp_path, streaming) -> None:
    server = serve()
    missing = tmp_path / "nowhere.wav"
    with pytest.raises(BackendError) as info:
        await speak(GptSovitsTTS(server.url, ref_audio_path=str(missing), streaming=streaming))
    message = str(info.value)
    assert "tts failed" in message and f"{missing} not exists" in message and "server's disk" in message
    assert "\n" not in message


@pytest.mark.parametrize("streaming", [False, True, 2])
async def test_short_reference_audio_is_explained(serve, tmp_path, streaming) -> None:
    server = serve()
    short = write_voice(tmp_path / "short.wav", 2.0)
    with pytest.raises(BackendError) as info:
        await speak(GptSovitsTTS(server.url, ref_audio_path=str(short), streaming=streaming))
    assert REF_AUDIO_RANGE_MESSAGE in str(info.value) and "3-10 s" in str(info.value)
    if streaming:  # the stream dropped, and a non-streaming request fetched the reason
        assert [r["streaming_mode"] for r in server.standin.requests] == [streaming, False]


async def test_language_the_model_version_lacks(serve, ref_audio) -> None:
    server = serve(version="v1")
    with pytest.raises(BackendError, match=r"\(400\): text_lang: ko is not supported in version v1"):
        await speak(GptSovitsTTS(server.url, ref_audio_path=str(ref_audio)), "안녕하세요.", "ko")


async def test_missing_required_field(serve, ref_audio) -> None:
    server = serve()
    with pytest.raises(BackendError, match="prompt_lang is required"):
        await speak(GptSovitsTTS(server.url, ref_audio_path=str(ref_audio), prompt_lang=""))


async def test_v3_without_prompt_text(serve, ref_audio) -> None:
    server = serve(version="v3")
    with pytest.raises(BackendError, match=r"prompt_text cannot be empty.*words said in the reference audio"):
        await speak(GptSovitsTTS(server.url, ref_audio_path=str(ref_audio), streaming=False))


async def test_stream_dropped_after_audio(serve, ref_audio) -> None:
    server = serve(break_after_pieces=1)
    tts = GptSovitsTTS(server.url, ref_audio_path=str(ref_audio))
    received = []
    with pytest.raises(BackendError, match="stopped in the middle of a sentence"):
        async for chunk in tts.synthesize(SENTENCE, "en"):
            received.append(chunk)
    await tts.aclose()
    assert received and len(server.standin.requests) == 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_server_not_running_says_how_to_start_it(ref_audio) -> None:
    with pytest.raises(BackendError) as info:
        await speak(GptSovitsTTS(f"http://127.0.0.1:{free_port()}", ref_audio_path=str(ref_audio)))
    assert "is not running" in str(info.value)
    assert "python api_v2.py -a 127.0.0.1 -p 9880 -c GPT_SoVITS/configs/tts_infer.yaml" in str(info.value)


async def test_slow_server_times_out_clearly(serve, ref_audio) -> None:
    server = serve(first_delay_s=1.5)
    with pytest.raises(BackendError, match=r"sent nothing for 0\.3 s.*timeout_s"):
        await speak(GptSovitsTTS(server.url, ref_audio_path=str(ref_audio), streaming=False, timeout_s=0.3))


async def test_not_gpt_sovits(serve, ref_audio) -> None:
    server = serve()
    with pytest.raises(BackendError, match="no /tts endpoint"):
        await speak(GptSovitsTTS(server.url + "/elsewhere", ref_audio_path=str(ref_audio)))


async def test_cancelling_closes_the_response_and_frees_the_server(serve, ref_audio) -> None:
    server = serve(piece_delay_s=0.05)
    tts = GptSovitsTTS(server.url, ref_audio_path=str(ref_audio), streaming=2)
    stream = tts.synthesize(SENTENCE * 3, "en")
    await anext(stream)
    await stream.aclose()
    assert await asyncio.to_thread(server.standin.disconnected.wait, 2.0)
    total = sum(len(p) for p in render(SENTENCE * 3, 32000)) // int(0.05 * 32000)
    assert server.standin.pieces_sent < total / 2
    again = await speak(tts, "Next one.")  # the request lock was released
    assert joined(again).size > 0


async def test_task_cancellation_while_waiting(serve, ref_audio) -> None:
    server = serve(first_delay_s=0.3, piece_delay_s=0.05)
    tts = GptSovitsTTS(server.url, ref_audio_path=str(ref_audio))

    async def consume() -> None:
        async for _ in tts.synthesize(SENTENCE, "en"):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(server.standin.disconnected.wait, 2.0)
    await tts.aclose()


async def test_sentences_are_requested_one_at_a_time(serve, ref_audio) -> None:
    server = serve(piece_delay_s=0.02)
    tts = GptSovitsTTS(server.url, ref_audio_path=str(ref_audio))
    first = tts.synthesize("One, two.", "en")
    second = tts.synthesize("Three, four.", "en")
    a, b = await asyncio.gather(_drain(first), _drain(second))
    await tts.aclose()
    assert len(server.standin.requests) == 2 and server.standin.max_in_flight == 1
    np.testing.assert_array_equal(joined(a), expected_pcm("One, two.", 32000))
    np.testing.assert_array_equal(joined(b), expected_pcm("Three, four.", 32000))


async def _drain(stream) -> list:
    return [c async for c in stream]


async def test_empty_text_makes_no_request(serve, ref_audio) -> None:
    server = serve()
    assert await speak(GptSovitsTTS(server.url, ref_audio_path=str(ref_audio)), "  ") == []
    assert server.standin.requests == []


def test_languages() -> None:
    assert [gpt_sovits_language(x) for x in ("en", "zh", "zh-CN", "ja", "yue", "fr")] == [
        "en",
        "zh",
        "zh",
        "ja",
        "yue",
        "auto",
    ]


def test_bad_streaming_value() -> None:
    with pytest.raises(ValueError, match="streaming"):
        GptSovitsTTS(ref_audio_path="x.wav", streaming=7)


async def test_stand_in_runs_as_a_module(ref_audio) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.tts.gpt_sovits_server", "--port", str(port), "--version", "v4"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = await asyncio.to_thread(process.stdout.readline)
        assert f"127.0.0.1:{port}" in line
        tts = GptSovitsTTS(f"http://127.0.0.1:{port}", ref_audio_path=str(ref_audio), prompt_text="Hi.")
        chunks = await speak(tts)
        assert {c.sample_rate for c in chunks} == {48000}
    finally:
        process.terminate()
        process.wait(5)
