"""The Face interface: audio chunks (and timings) in, timed frames out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

import numpy as np

from digihuman.media import AudioChunk, VideoFrame


class Face(Protocol):
    """A prepared portrait that can talk.

    `realtime` tells the turn engine whether frames keep up with playback (the built-in animator) or
    must be rendered ahead while the previous sentence plays (SadTalker, Wav2Lip).
    """

    # Read-only properties, so a class constant, an instance attribute or a property all satisfy them.
    @property
    def name(self) -> str: ...

    @property
    def realtime(self) -> bool: ...

    @property
    def fps(self) -> int: ...

    @property
    def size(self) -> int: ...

    def animate(self, audio: AsyncIterator[AudioChunk]) -> AsyncIterator[VideoFrame]:
        """Frames for one utterance, `pts_s` from its start, at `fps`, covering all of its audio."""
        ...

    def idle_frame(self, t_s: float) -> np.ndarray:
        """The face at rest (blinking, breathing) at wall time `t_s`; shown between utterances."""
        ...

    async def aclose(self) -> None: ...
