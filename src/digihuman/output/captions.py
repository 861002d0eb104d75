"""What the window writes over the face: the session's state, and subtitles for both sides.

The character's words appear when the audio clock reaches them (a reply's text is known up to a
sentence ahead of its sound); the user's words appear as they are heard. Captions fade after a while so the
face is left alone between turns. Thread-safe: the event loop writes, the window thread draws.
"""

from __future__ import annotations

import threading
import time
from functools import cache
from pathlib import Path
from typing import Any

SHOW_FOR_S = 6.0  # a caption stays up this long after it appeared (or until the next one)
FONT_FILES = (  # the first that exists; these cover Chinese as well as Latin text
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
)
STATE_LABELS = {"listening": "listening…", "thinking": "thinking…", "speaking": "", "idle": ""}


class Captions:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = ""
        self._text = ""
        self._shown_at = 0.0
        self._pending: list[tuple[int, float, str]] = []  # (turn id, at_s on its timeline, text)

    def set_state(self, state: str) -> None:
        with self._lock:
            self._state = STATE_LABELS.get(state, state)

    def heard(self, text: str) -> None:
        """The user's words, shown at once."""
        self._show(f"» {text}")

    def say_at(self, turn_id: int, at_s: float, text: str) -> None:
        """The character's words, shown when turn `turn_id`'s audio reaches `at_s`."""
        with self._lock:
            self._pending.append((turn_id, at_s, text))

    def advance(self, turn_id: int | None, clock_s: float) -> None:
        """Show what the audio clock has reached; drop what belongs to an older turn."""
        with self._lock:
            keep, due = [], None
            for item in self._pending:
                if turn_id is not None and item[0] < turn_id:
                    continue
                if item[0] == turn_id and item[1] <= clock_s + 1e-6:
                    due = item[2]
                else:
                    keep.append(item)
            self._pending = keep
        if due is not None:
            self._show(due)

    def _show(self, text: str) -> None:
        with self._lock:
            self._text, self._shown_at = text, time.monotonic()

    def lines(self) -> tuple[str, str]:
        """(state label, subtitle) to draw now."""
        with self._lock:
            fresh = time.monotonic() - self._shown_at < SHOW_FOR_S
            return self._state, self._text if fresh else ""

    def draw(self, pygame: Any, screen: Any) -> None:
        state, text = self.lines()
        if not state and not text:
            return
        width, height = screen.get_size()
        size = max(12, width // 28)
        font = _font(pygame, size)
        rows = _wrap(font, text, width - 2 * size) if text else []
        if rows:
            band = pygame.Surface((width, (len(rows) + 0.6) * font.get_linesize()), pygame.SRCALPHA)
            band.fill((0, 0, 0, 150))
            top = height - band.get_height()
            screen.blit(band, (0, top))
            for index, row in enumerate(rows):
                line = font.render(row, True, (255, 255, 255))
                screen.blit(
                    line, ((width - line.get_width()) // 2, top + (index + 0.3) * font.get_linesize())
                )
        if state:
            label = font.render(state, True, (255, 255, 255), (0, 0, 0))
            screen.blit(label, (size // 2, size // 2))


@cache
def _font(pygame: Any, size: int) -> Any:
    pygame.font.init()
    path = next((f for f in FONT_FILES if Path(f).is_file()), None)
    return pygame.font.Font(path, size)


def _wrap(font: Any, text: str, width: int) -> list[str]:
    """Lines that fit `width` px: at spaces, or anywhere in Chinese text; at most three (the last ones)."""
    rows: list[str] = []
    row = ""
    for char in text:
        if font.size(row + char)[0] > width and row:
            cut = row.rfind(" ")
            if cut > 0 and char != " ":
                rows.append(row[:cut])
                row = row[cut + 1 :]
            else:
                rows.append(row)
                row = ""
        row += char
    if row.strip():
        rows.append(row)
    return [r.strip() for r in rows][-3:]
