"""The window under SDL's dummy video driver: what it draws is read back from the window surface."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import numpy as np
import pytest

from digihuman.audio.player import AudioOutput, VirtualOutput
from digihuman.errors import BackendError
from digihuman.media import AudioChunk
from digihuman.output import window as window_module
from digihuman.output.window import WindowPlayer, display_available
from tests.output.fake_face import IDLE_COLOUR, FakeFace, decode_index

pygame = pytest.importorskip("pygame")

FPS = 25
SIZE = 64


@pytest.fixture
async def player(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[WindowPlayer]:
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    # The face renders smaller than the window, so scaling is exercised too.
    window = WindowPlayer(
        FakeFace(fps=FPS, size=48), "test", fps=FPS, size=SIZE, audio=AudioOutput(VirtualOutput())
    )
    await window.start()
    yield window
    await window.aclose()
    window.audio.close()


def on_screen(window: WindowPlayer) -> int | str | None:
    """The frame index on screen, "idle", or None for anything else; the picture must be uniform."""
    pixels = window.read_screen()
    assert pixels.shape == (SIZE, SIZE, 3)
    assert (pixels == pixels[0, 0]).all(), "the window shows a mix of pictures"
    if tuple(pixels[0, 0]) == IDLE_COLOUR:
        return "idle"
    return decode_index(pixels[0, 0], tolerance=0)


async def speak(window: WindowPlayer, turn_id: int, seconds: float, frames: bool = True) -> None:
    window.begin_turn(turn_id)
    await window.write_audio(
        AudioChunk(np.zeros(round(24000 * seconds), np.float32), 24000, 0.0, turn_id=turn_id)
    )
    if frames:
        for index in range(round(seconds * FPS)):
            await window.write_frame(window.face.frame(index, turn_id))


async def test_idles_between_turns(player: WindowPlayer) -> None:
    await asyncio.sleep(0.05)
    calls_before = player.face.idle_calls
    assert on_screen(player) == "idle"
    await asyncio.sleep(0.4)
    calls = player.face.idle_calls - calls_before
    assert 6 <= calls <= 12  # about fps x 0.4 s
    assert on_screen(player) == "idle"


async def test_frames_follow_the_audio_clock(player: WindowPlayer) -> None:
    await speak(player, 1, 1.0)
    ended = asyncio.create_task(player.end_turn(1))
    samples: list[tuple[int, float, float]] = []
    while not ended.done():
        before = player.played_s(1)
        shown = on_screen(player)
        after = player.played_s(1)
        if isinstance(shown, int):
            samples.append((shown, before, after))
        await asyncio.sleep(0.03)
    assert len(samples) >= 15
    indices = [index for index, _, _ in samples]
    assert indices == sorted(indices)  # in order
    assert indices[-1] >= 22  # reached the end of the turn
    for index, _, after in samples:
        assert index / FPS <= after + 1e-6  # never shown before its pts
    lags = [before - index / FPS for index, before, _ in samples]
    assert float(np.median(lags)) < 2 / FPS  # and not far behind it

    shown = [s for s in player.history if s.turn_id == 1]
    assert all(s.pts_s is not None and s.pts_s <= s.clock_s + 1e-9 for s in shown)
    assert [s.pts_s for s in shown] == sorted({s.pts_s for s in shown})
    assert player.first_frame_shown_at[1] == shown[0].shown_at

    await asyncio.sleep(5 / FPS)
    assert on_screen(player) == "idle"  # back to idling after the turn


async def test_late_frames_are_dropped_not_drifted(player: WindowPlayer) -> None:
    await speak(player, 2, 1.0, frames=False)
    await asyncio.sleep(0.4)  # the voice runs ahead of a slow face
    clock_at_write = player.played_s(2)
    for index in range(25):
        await player.write_frame(player.face.frame(index, 2))
    await asyncio.sleep(0.06)
    current = on_screen(player)
    assert isinstance(current, int) and current / FPS >= clock_at_write - 1 / FPS  # caught up at once
    await player.end_turn(2)
    shown = [s.pts_s for s in player.history if s.turn_id == 2]
    late = [pts for pts in shown if pts is not None and pts < clock_at_write - 1 / FPS]
    # The window may catch frame 0 while the burst is still arriving, but it never plays the late
    # frames out one by one (that would be drift: the face a whole 0.4 s behind the voice).
    assert len(late) <= 2
    assert shown[-1] == pytest.approx(24 / FPS)


async def test_cancel_stops_the_voice_and_the_face(player: WindowPlayer) -> None:
    await speak(player, 3, 2.0)
    await asyncio.sleep(0.3)
    heard = player.cancel_turn(3)
    assert 0.2 < heard < 0.45
    await asyncio.wait_for(player.end_turn(3), 0.2)  # a cancelled turn ends at once
    await asyncio.sleep(0.25)
    assert player.played_s(3) == pytest.approx(heard)
    assert on_screen(player) == "idle"


async def test_stale_frames_of_an_old_turn_are_not_shown(player: WindowPlayer) -> None:
    await speak(player, 5, 0.4)
    await player.write_frame(player.face.frame(30, 4))  # an old turn's frame
    await player.end_turn(5)
    assert all(s.turn_id in (5, None) for s in player.history)


async def test_closing_the_window_sets_closed(player: WindowPlayer) -> None:
    assert not player.closed.is_set()
    pygame.event.post(pygame.event.Event(pygame.QUIT))
    await asyncio.wait_for(player.wait_closed(), 2.0)
    assert player.closed.is_set()


async def test_first_frame_shows_soon_after_the_voice_is_ready(player: WindowPlayer) -> None:
    ready_at = time.monotonic()
    await speak(player, 6, 0.3)
    await player.end_turn(6)
    assert player.first_frame_shown_at[6] - ready_at < 0.1


def test_display_available_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(window_module.sys, "platform", "linux")
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"):
        monkeypatch.delenv(name, raising=False)
    assert not display_available()
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    assert display_available()


async def test_start_without_a_display_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SDL_VIDEODRIVER", "no-such-driver")
    window = WindowPlayer(FakeFace(), "test", audio=AudioOutput(VirtualOutput()))
    with pytest.raises(window_module.BackendError, match="cannot open the window"):
        await window.start()
    await window.aclose()
    window.audio.close()


async def test_a_second_window_in_one_process_is_refused(player: WindowPlayer) -> None:
    """pygame has one display per process: a second window would take over (and then close) the first."""
    second = WindowPlayer(FakeFace(), "second", audio=AudioOutput(VirtualOutput()))
    try:
        with pytest.raises(BackendError, match="another window is open"):
            await second.start()
    finally:
        await second.aclose()
        second.audio.close()
    assert on_screen(player) == "idle"  # the first one is unharmed
