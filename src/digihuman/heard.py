"""What a listener heard of a reply: the spoken text cut at the playback position, and sentences joined."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from digihuman.lang import is_unspaced
from digihuman.media import Timing
from digihuman.sentence import Sentence


def join_text(parts: Iterable[str]) -> str:
    """Join sentences: with a space in spaced scripts, without one between Chinese or Japanese text."""
    out = ""
    for part in parts:
        part = part.strip()
        if not part:
            continue
        if out and not (is_unspaced(out[-1]) or is_unspaced(part[0])):
            out += " "
        out += part
    return out


def heard_prefix(
    text: str,
    heard_s: float,
    duration_s: float,
    words: Sequence[Timing] = (),
    phonemes: Sequence[Timing] = (),
) -> str:
    """The part of a sentence's spoken text that was played in its first `heard_s` seconds.

    Word timings give whole words exactly (a word counts once it was fully played). Without them the
    position maps proportionally into the text, over the span where phonemes were spoken when known, and
    is cut back to a word boundary.
    """
    if heard_s >= duration_s - 1e-6:
        return text.strip()
    if heard_s <= 0 or not text:
        return ""
    if words:
        played = [w for w in words if w.end_s <= heard_s + 1e-9]
        end = _end_of_words(text, played)
        if end is not None:
            return text[:end].strip()
    start_s, end_s = 0.0, duration_s
    if phonemes:
        start_s, end_s = phonemes[0].start_s, max(p.end_s for p in phonemes)
    fraction = 0.0 if end_s <= start_s else min(1.0, max(0.0, (heard_s - start_s) / (end_s - start_s)))
    cut = int(len(text) * fraction)
    if cut >= len(text):
        return text.strip()
    if cut > 0 and not text[cut].isspace() and not text[cut - 1].isspace() and not is_unspaced(text[cut - 1]):
        cut = max(text.rfind(" ", 0, cut), 0)  # mid-word: keep only whole words
    return text[:cut].strip()


def _end_of_words(text: str, played: Sequence[Timing]) -> int | None:
    """Where the last played word ends in `text`, with its punctuation; None if the labels don't match."""
    lowered, position = text.lower(), 0
    for word in played:
        label = word.label.strip().lower()
        if not label:
            continue
        found = lowered.find(label, position)
        if found < 0:
            return None
        position = found + len(label)
    if position == 0:
        return 0
    while position < len(text) and not text[position].isspace() and not text[position].isalnum():
        position += 1
    return position


def heard_text(delivered: Sequence[Sentence], heard_s: float) -> str:
    """The reply's spoken text that was played in its first `heard_s` seconds."""
    return join_text(_heard_parts(delivered, heard_s))


def _heard_parts(delivered: Sequence[Sentence], heard_s: float) -> Iterable[str]:
    for sentence in delivered:
        complete = sentence.done and sentence.error is None
        # A sentence whose audio broke off has an unknown length: only word timings can place it.
        duration_s = sentence.duration_s if complete else math.inf
        if complete and heard_s >= sentence.offset_s + duration_s - 1e-6:
            yield sentence.spoken
            continue
        local_s = heard_s - sentence.offset_s
        if local_s > 0:
            words, phonemes = sentence.timings()
            yield heard_prefix(sentence.spoken, local_s, duration_s, words, phonemes if complete else ())
        return
