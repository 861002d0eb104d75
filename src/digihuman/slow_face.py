"""A slow face (SadTalker, Wav2Lip) in a turn: render sentence N+1 while sentence N plays.

Frames are rendered one sentence at a time, at most one sentence ahead of delivery. With a real-time
`fallback` face, audio goes first: a sentence whose frames are not ready when it is due is animated by the
fallback instead, and its render is cancelled.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from digihuman.clock import Clock
from digihuman.face.base import Face
from digihuman.media import VideoFrame
from digihuman.sentence import Sentence
from digihuman.streams import close_stream, iterate

logger = logging.getLogger(__name__)

# How often playback is polled while a sentence's frames are awaited with a fallback.
POLL_S = 0.01
# With a fallback face, a slow sentence is due when the previous one has this little left to play.
DUE_MARGIN_S = 0.2


class TurnProgress(Protocol):
    """What the renderer reads from the turn it serves."""

    turn_id: int
    delivering: int  # the index of the sentence being delivered

    async def sentence_at(self, index: int) -> Sentence | None: ...

    async def progress(self) -> None:
        """Return at the turn's next change (a new sentence, delivery moving on, a failure)."""
        ...

    def notify(self) -> None: ...

    def played(self) -> float: ...


class SlowFaceRenderer:
    def __init__(self, face: Face, fallback: Face | None, turn: TurnProgress, clock: Clock) -> None:
        self.face = face
        self.fallback = fallback
        self.turn = turn
        self.clock = clock

    async def render_ahead(self) -> None:
        """Render each sentence once its audio is complete, at most one sentence ahead of delivery."""
        index = 0
        while (sentence := await self.turn.sentence_at(index)) is not None:
            while self.turn.delivering < index - 1:
                await self.turn.progress()
            await sentence.wait_done()
            if sentence.error is not None:
                self.turn.notify()  # delivery reports the TTS failure
                return
            if not sentence.skip_render:
                sentence.render = asyncio.create_task(self._render(sentence))
                self.turn.notify()
                await asyncio.wait([sentence.render])
            index += 1

    async def _render(self, sentence: Sentence) -> list[VideoFrame]:
        frames = aiter(self.face.animate(iterate(sentence.chunks)))
        try:
            return [frame async for frame in frames]
        finally:
            await close_stream(frames)

    async def frames_for(self, sentence: Sentence) -> list[VideoFrame] | None:
        """The slow face's frames for `sentence`, or None when the fallback face must take over."""
        fallback = self.fallback
        while True:
            if sentence.error is not None:
                raise sentence.error
            render = sentence.render
            if render is not None and render.done() and not render.cancelled():
                error = render.exception()
                if error is None:
                    return render.result()
                if fallback is None:
                    raise error
                logger.warning("turn %d: face failed, using the fallback: %s", self.turn.turn_id, error)
                return None
            if fallback is not None and self.turn.played() >= sentence.offset_s - DUE_MARGIN_S:
                sentence.skip_render = True
                if render is not None:
                    render.cancel()
                return None
            if fallback is None and render is not None:
                await asyncio.wait([render])
            elif fallback is None:
                await self.turn.sentence_at(sentence.index)  # surfaces a fatal error
                await self.turn.progress()
            else:
                await self.clock.sleep(POLL_S)
