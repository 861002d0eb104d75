"""media.chunk_audio: the one way a voice cuts a synthesized piece into timed chunks."""

from __future__ import annotations

import numpy as np

from digihuman.media import Timing, chunk_audio


def test_chunks_follow_each_other_and_carry_overlapping_timings() -> None:
    pcm = np.zeros(1000, np.float32)
    phonemes = (Timing("a", 0.0, 0.15), Timing("b", 0.15, 0.5))
    chunks = chunk_audio(pcm, 1000, chunk_s=0.2, offset_s=1.0, phonemes=phonemes, words=(Timing("w", 0, 1),))
    assert [c.start_s for c in chunks] == [1.0, 1.2, 1.4, 1.6, 1.8]
    assert sum(len(c.pcm) for c in chunks) == 1000
    assert [t.label for t in chunks[0].phonemes] == ["a", "b"]  # "b" spans the first two chunks
    assert [t.label for t in chunks[1].phonemes] == ["b"] and chunks[3].phonemes == ()
    assert chunks[0].phonemes[0] == Timing("a", 1.0, 1.15)  # shifted onto the utterance timeline
    assert all(c.words == (Timing("w", 1.0, 2.0),) for c in chunks)
