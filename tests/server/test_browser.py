"""The page in a real browser (Debian's Chromium driven by Playwright): what a person sees and hears.

Skips, saying why, where Chromium or Playwright is missing (`scripts/setup.sh --test` installs both).
"""

from __future__ import annotations

import shutil
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.llm.ollama_server import OllamaTestServer
from tests.server.conftest import RunningServer, server_settings, start_server

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]

# A small grayscale copy of the face canvas, to see it move.
SNAP = """() => {
  const c = document.getElementById('face'), s = document.createElement('canvas');
  s.width = 64; s.height = 64;
  const g = s.getContext('2d'); g.drawImage(c, 0, 0, 64, 64);
  const d = g.getImageData(0, 0, 64, 64).data, out = [];
  for (let i = 0; i < d.length; i += 4) out.push((d[i] + d[i + 1] + d[i + 2]) / 3);
  return out;
}"""
STATS = """() => {
  const s = window.digihuman.player.stats;
  return {shown: s.framesShown, skipped: s.framesSkipped, mean: s.syncMeanMs, max: s.syncMaxMs,
          samples: s.syncSamples, idle: s.idleFramesShown, firstIdle: s.firstIdleFrameMs,
          typed: window.digihuman.typedToAudioMs};
}"""


def launch(playwright: Any, extra_args: tuple[str, ...] = ()) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=[*ARGS, *extra_args])


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.skip("Chromium is not installed: scripts/setup.sh --test installs it (apt: chromium)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is missing: scripts/setup.sh --test installs it"
    )
    with sync_api.sync_playwright() as running:
        yield running


@pytest.fixture(scope="module")
def browser(playwright: Any) -> Iterator[Any]:
    browser = launch(playwright)
    yield browser
    browser.close()


def open_page(browser: Any, url: str, **context: Any) -> Any:
    page = browser.new_context(**context).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    page.goto(url)
    page.wait_for_function("window.digihuman?.player?.stats.firstIdleFrameMs != null", timeout=15_000)
    return page


def moving_block(snaps: list[list[float]], block: int = 8) -> tuple[int, int]:
    """Where the picture changes most over `snaps` (64x64 grayscale): the mouth, while it talks."""
    std = np.asarray(snaps, np.float32).reshape(len(snaps), 64, 64).std(axis=0)
    sums = std.cumsum(0).cumsum(1)
    padded = np.pad(sums, ((1, 0), (1, 0)))
    totals = (
        padded[block:, block:] - padded[:-block, block:] - padded[block:, :-block] + padded[:-block, :-block]
    )
    y, x = np.unravel_index(int(np.argmax(totals)), totals.shape)
    return int(y), int(x)


def motion(snaps: list[list[float]], where: tuple[int, int], block: int = 8) -> float:
    """How much the picture changes within one block over `snaps` (the mean per-pixel deviation)."""
    y, x = where
    frames = np.asarray(snaps, np.float32).reshape(len(snaps), 64, 64)[:, y : y + block, x : x + block]
    return float(frames.std(axis=0).mean())


def snaps(page: Any, count: int, every_ms: int = 80) -> list[list[float]]:
    out = []
    for _ in range(count):
        out.append(page.evaluate(SNAP))
        page.wait_for_timeout(every_ms)
    return out


def test_typed_conversation_face_voice_and_subtitles_in_sync(browser: Any, server: RunningServer) -> None:
    page = open_page(browser, server.url + "/")
    assert page.locator("#send").text_content() == "Send"
    idle_before = snaps(page, 8)
    page.fill("#text", "Hello there")
    page.click("#send")
    page.wait_for_function("document.getElementById('subtitle').textContent.length > 0", timeout=30_000)
    assert "You said: Hello there" in page.text_content("#subtitle")
    assert page.get_attribute("#state", "data-state") == "speaking"
    talking = snaps(page, 16, every_ms=60)
    page.wait_for_function("window.digihuman.lastTurn !== null", timeout=60_000)
    page.wait_for_function("document.getElementById('state').dataset.state === 'idle'", timeout=30_000)
    page.wait_for_timeout(600)
    idle_after = snaps(page, 8)
    stats = page.evaluate(STATS)
    # The face talks (its mouth moves far more than breathing and blinking move it) and idles afterwards.
    mouth = moving_block(talking)
    moving, still = motion(talking, mouth), max(motion(idle_before, mouth), motion(idle_after, mouth))
    assert moving > 2 * still, (mouth, moving, still)
    assert max(np.asarray(idle_after[-1])) > 0  # idle frames, not a blank canvas
    assert stats["idle"] > 10
    # A/V sync as seen in the browser: every shown frame's pts against the heard audio position.
    # Within 40 ms; a single frame held up by a loaded machine (a GC pause, a missed refresh) is tolerated.
    skew = np.abs(np.asarray(stats.pop("samples")))
    assert stats["shown"] >= 40, stats
    assert np.percentile(skew, 98) <= 40.0 and stats["mean"] <= 20.0, stats
    panel = page.text_content("#metrics")
    assert "A/V sync" in panel and "first audio played" in panel
    assert "Hello there" in page.text_content("#log")
    assert page.errors == []
    page.context.close()


def test_chinese_ui_and_a_chinese_character(browser: Any, server: RunningServer) -> None:
    page = open_page(browser, server.url + "/?character=xiaomei", locale="zh-CN")
    assert page.locator("#send").text_content() == "发送"
    assert page.get_attribute("#text", "placeholder") == "说点什么……"
    assert page.locator("#state").text_content() in ("空闲", "正在连接……")
    assert page.locator("#character").input_value() == "xiaomei"
    page.fill("#text", "你好")
    page.click("#send")
    page.wait_for_function("document.getElementById('subtitle').textContent.includes('你好')", timeout=30_000)
    assert page.locator("#state").text_content() == "正在说话"
    page.wait_for_function("window.digihuman.lastTurn !== null", timeout=60_000)
    assert "音画同步" in page.text_content("#metrics")
    page.context.close()


def test_a_full_server_says_so_on_the_page(browser: Any, ollama: OllamaTestServer) -> None:
    running = start_server(server_settings(ollama.url, max_sessions=1))
    try:
        first = open_page(browser, running.url + "/")
        second = browser.new_context().new_page()
        second.goto(running.url + "/")
        second.wait_for_selector("#message:not([hidden])", timeout=15_000)
        assert "The server is full" in second.text_content("#message")
        assert "server.max_sessions" in second.text_content("#message")
        first.context.close()
        second.context.close()
    finally:
        running.stop()


def write_wav(path: Path, pcm: np.ndarray, rate: int = 16000) -> None:
    with wave.open(str(path), "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(rate)
        file.writeframes((np.clip(pcm, -1, 1) * 32767).astype("<i2").tobytes())


def test_spoken_conversation_through_the_microphone(
    playwright: Any, ollama: OllamaTestServer, tmp_path: Path
) -> None:
    from digihuman.config import ASRSettings, ListenSettings
    from digihuman.testing.speech import piper
    from tests.real_models import real_model_path

    whisper, vad, turn = (real_model_path(n) for n in ("whisper-base", "silero-vad", "smart-turn"))
    question = piper("What is the weather like today?")
    silence = np.zeros(16000 * 3, np.float32)
    wav = tmp_path / "question.wav"
    write_wav(wav, np.concatenate([silence[:8000], question, silence]))
    settings = server_settings(ollama.url)
    settings.asr = ASRSettings(model=str(whisper), language="en")
    settings.listen = ListenSettings(vad_model=str(vad), turn_model=str(turn))
    running = start_server(settings)
    browser = launch(playwright, (f"--use-file-for-fake-audio-capture={wav}",))
    try:
        page = open_page(browser, running.url + "/")
        page.click("#mic")  # hands-free
        page.wait_for_function(
            "document.getElementById('heard').classList.contains('final') &&"
            " document.getElementById('heard').textContent.toLowerCase().includes('weather')",
            timeout=90_000,
        )
        page.wait_for_function(
            "document.getElementById('subtitle').textContent.toLowerCase().includes('weather')",
            timeout=60_000,
        )
        assert "You said:" in page.text_content("#subtitle")
    finally:
        browser.close()
        running.stop()


def test_camera_reload_and_a_new_character_from_the_page(
    browser: Any, server: RunningServer, tmp_path: Path
) -> None:
    from PIL import Image

    page = open_page(browser, server.url + "/")
    first_id = page.evaluate("window.digihuman.sessionId")
    # The fake camera's frames reach the model: the stand-in LLM says how many images came with the text.
    page.click("#camera")
    page.wait_for_timeout(1500)
    page.fill("#text", "Look at me")
    page.click("#send")
    page.wait_for_function("window.digihuman.lastTurn !== null", timeout=60_000)
    assert "I can see" in page.evaluate("window.digihuman.lastTurn.text_spoken")
    page.click("#camera")
    # A reload resumes the same conversation.
    page.reload()
    page.wait_for_function("window.digihuman?.hello?.resumed === true", timeout=15_000)
    assert page.evaluate("window.digihuman.sessionId") == first_id
    # "New character": the CLI's refusal for a photo without a face, shown on the page.
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((200, 200, 3), 220, np.uint8)).save(blank)
    page.click("#new-character summary")
    page.fill("#create-form input[name=name]", "Blank")
    page.set_input_files("#create-form input[name=portrait]", str(blank))
    page.click("#create-form button[type=submit]")
    page.wait_for_selector("#create-status.error", timeout=30_000)
    assert "no face found in the portrait" in page.text_content("#create-status")
    assert page.errors == []
    page.context.close()
