"""Captions over the face: state and subtitles drawn at their time, Chinese included, gone after a while."""

from __future__ import annotations

import os

import numpy as np
import pytest

from digihuman.output import captions as captions_module
from digihuman.output.captions import Captions

pygame = pytest.importorskip("pygame")  # drawing on a Surface needs no display


def drawn(captions: Captions, size: int = 256) -> np.ndarray:
    screen = pygame.Surface((size, size))
    screen.fill((120, 120, 120))
    captions.draw(pygame, screen)
    return pygame.surfarray.array3d(screen).transpose(1, 0, 2)


def test_a_reply_subtitle_waits_for_the_audio_clock_then_shows_at_the_bottom() -> None:
    captions = Captions()
    plain = drawn(captions)
    captions.say_at(turn_id=2, at_s=1.5, text="The second sentence.")
    captions.advance(2, clock_s=1.0)
    assert np.array_equal(drawn(captions), plain)  # not yet: its sound has not started
    captions.advance(2, clock_s=1.6)
    shown = drawn(captions)
    changed_rows = np.where((shown != plain).any(axis=(1, 2)))[0]
    assert changed_rows.min() > 256 * 0.6  # a band at the bottom: the face stays visible


def test_the_state_label_shows_while_thinking_and_not_while_speaking() -> None:
    captions = Captions()
    plain = drawn(captions)
    captions.set_state("thinking")
    assert not np.array_equal(drawn(captions), plain)
    captions.set_state("speaking")
    assert np.array_equal(drawn(captions), plain)


def test_older_turns_captions_are_dropped_and_captions_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    captions = Captions()
    captions.say_at(turn_id=1, at_s=5.0, text="never shown: the turn was cut")
    captions.advance(2, clock_s=10.0)
    assert captions.lines() == ("", "")
    captions.heard("what the user said")
    assert captions.lines()[1] == "» what the user said"
    monkeypatch.setattr(captions_module, "SHOW_FOR_S", 0.0)
    assert captions.lines()[1] == ""


def test_chinese_subtitles_render_with_real_glyphs() -> None:
    if not any(os.path.isfile(f) for f in captions_module.FONT_FILES):
        pytest.skip("no CJK font installed (apt-get install fonts-wqy-zenhei)")
    first, second = Captions(), Captions()
    first.heard("你好，很高兴认识你")
    second.heard("今天天气非常好呀")
    # Missing glyphs would draw identical boxes for both texts.
    assert not np.array_equal(drawn(first), drawn(second))
