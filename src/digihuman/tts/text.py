"""Text on its way to a voice, cut into sentences (cleaning is in clean.py).

Both jobs share one notion of "speech units" (one per CJK character, one per Latin word or number):

- `SentenceSplitter` cuts a streaming LLM reply (mixed Chinese and English) into sentences, so the voice
  can start on the first one while the model is still writing. Any chunking of the stream gives the same
  sentences.
- `split_long_text` cuts a long text for `say` into pieces a voice handles in one call.
"""

from __future__ import annotations

import bisect
import re
from typing import Protocol

from digihuman.lang import is_cjk  # one home for script detection

# --- characters -----------------------------------------------------------------------------------

# Sentence ends that are always boundaries, and the ASCII ones that need a look at the next character.
_CJK_HARD = frozenset("。！？；…｡")
_ASCII_HARD = frozenset("!?;")
# Soft boundaries: where a long sentence (or the first, to answer fast) may be cut.
_CJK_SOFT = frozenset("，、：")
_ASCII_SOFT = frozenset(",:")
# Closing quotes and brackets that stay with the sentence they end.
CLOSERS = frozenset("\"'”’」』》〉）)]】}")
# Characters inside words and numbers: "3.14", "don't", "e-mail" are one unit each.
_JOINERS = frozenset(".'’-")
_FENCES = ("```", "~~~")
# After a ".", these mean the text goes on: a domain, a path, a number, "e.g.,".
_DOT_CONTINUES = frozenset("/@_-~#%&=+,;:，、")


def is_word_char(char: str) -> bool:
    """A letter or digit of a space-separated script (Latin, Cyrillic, ...), not a CJK character."""
    return char.isalnum() and not is_cjk(char)


def _starts_unit(text: str, i: int) -> bool:
    """Whether a speech unit starts at text[i]. Looks only backwards, so streaming cannot change it."""
    char = text[i]
    if is_cjk(char):
        return True
    if not is_word_char(char):
        return False
    previous = text[i - 1] if i > 0 else ""
    joined = previous in _JOINERS and i > 1 and is_word_char(text[i - 2])
    return not is_word_char(previous) and not joined


def count_units(text: str) -> int:
    """Speech units: one per CJK character, one per Latin word or number ("3.14" and "don't" are one)."""
    return sum(1 for i in range(len(text)) if _starts_unit(text, i))


# --- abbreviations --------------------------------------------------------------------------------


def _words(spaced: str) -> frozenset[str]:
    return frozenset(spaced.split())


# A "." after these never ends a sentence ("Mr. Smith", "e.g. this").
_TITLES = _words("mr mrs ms dr prof st mt vs cf approx gen col capt lt sgt rev hon fig figs eq e.g i.e viz")
# A "." after these ends a sentence unless lowercase text or a number follows ("... etc. and" vs "etc. Then").
_MAY_END = _words("etc a.m p.m u.s u.k u.n e.u u.s.a inc ltd co corp jr sr ph.d b.c a.d")
# A "." after these is an abbreviation when a number follows ("No. 5", "p. 12").
_BEFORE_NUMBER = _words("no nos vol p pp ch sec art")
# Single letters with dots between them are abbreviations too: "U.S.", "e.g.", "a.m.".
_DOTTED_LETTERS = re.compile(r"(?:[a-z]\.)+[a-z]")


def _is_initial(text: str, dot: int, word: str) -> bool:
    """A single capital letter before a dot is an initial ("J. K."), except the pronoun "I"."""
    return len(word) == 1 and text[dot - 1].isupper() and text[dot - 1] != "I"


def _word_before(text: str, dot: int) -> str:
    """The letters-and-dots token that ends right before text[dot], lowercased ("U.S" for "U.S.")."""
    start = dot
    while start > 0 and (text[start - 1].isalpha() or text[start - 1] == ".") and not is_cjk(text[start - 1]):
        start -= 1
    return text[start:dot].lower()


# --- the streaming splitter -----------------------------------------------------------------------

_WAIT = -1  # "cannot decide until more text arrives"


class Splitter(Protocol):
    """Cuts streamed text into sentences: what a turn needs from `SentenceSplitter`."""

    def feed(self, delta: str) -> list[str]: ...

    def flush(self) -> list[str]: ...


def reply_splitter() -> Splitter:
    """The splitter for a model's reply: a short first sentence (cut at a comma) so the voice starts early."""
    return SentenceSplitter(min_units=2, max_units=60, first_soft_units=6)


class SentenceSplitter:
    """Cuts streaming text into sentences for speech.

    Hard boundaries: 。！？；… ! ? ; "..." and newlines. A "." ends a sentence unless it sits in a number
    (3.14), after an abbreviation (Mr., e.g., U.S.) or inside a domain, URL or email (example.com); when the
    character after it has not arrived yet, the splitter waits for the next delta. Closing quotes and
    brackets after a boundary stay with their sentence. The first sentence may be cut at a soft boundary
    (，、：,:) once it has `first_soft_units` units, so the first words can be spoken early. A sentence with
    fewer than `min_units` units is merged with the next; one with more than `max_units` is cut at its last
    soft boundary (or between words). A fenced code block stays whole, as one "sentence" that
    clean_for_speech drops. Sentences are the original text, only trimmed of surrounding whitespace.
    """

    def __init__(self, min_units: int = 2, max_units: int = 60, first_soft_units: int = 6) -> None:
        if not 1 <= min_units <= max_units:
            raise ValueError(f"need 1 <= min_units <= max_units, got {min_units} and {max_units}")
        self.min_units = min_units
        self.max_units = max_units
        self.first_soft_units = first_soft_units
        self._buffer = ""
        self._emitted_any = False

    def feed(self, delta: str) -> list[str]:
        """Adds a piece of the stream; returns the sentences it completed."""
        self._buffer += delta
        return self._cut_all(final=False)

    def flush(self) -> list[str]:
        """Ends the stream: returns every sentence left, and readies the splitter for a new stream."""
        sentences = self._cut_all(final=True)
        rest = self._buffer.strip()
        if rest:
            sentences.append(rest)
        self._buffer = ""
        self._emitted_any = False
        return sentences

    def _cut_all(self, final: bool) -> list[str]:
        sentences = []
        while (cut := self._find_cut(self._buffer, final)) > 0:
            sentence, self._buffer = self._buffer[:cut].strip(), self._buffer[cut:]
            if sentence:
                sentences.append(sentence)
                self._emitted_any = True
        return sentences

    def _find_cut(self, text: str, final: bool) -> int:
        """The end of the first sentence in `text`, or _WAIT when the text so far cannot tell.

        Every decision looks only at text already seen; a decision that needs a character not yet seen
        waits instead of guessing. That is what makes the result independent of how the stream is chunked.
        """
        unit_starts: list[int] = []  # where the units seen so far start
        soft_cuts: list[int] = []  # soft boundaries seen so far, for a max_units cut
        i = 0
        while i < len(text):
            if _starts_fence(text, i):
                # A code block is kept whole, so that clean_for_speech can drop all of it.
                return _fence_end(text, i, final)
            if _starts_unit(text, i):
                unit_starts.append(i)
                if len(unit_starts) > self.max_units:
                    return self._cut_long(text, unit_starts, soft_cuts)
            units_before = len(unit_starts)  # units up to and including position i
            end = self._boundary_end(text, i, final)
            if end == _WAIT:
                # Undecidable for now; only worth waiting for when a cut here would be taken.
                if units_before >= self.min_units:
                    return _WAIT
                i += 1
                continue
            if end and units_before >= self.min_units:
                return end
            soft_end = self._soft_end(text, i, final)
            if soft_end == _WAIT:
                if self._takes_soft_cut(units_before):
                    return _WAIT
            elif soft_end:
                if self._takes_soft_cut(units_before):
                    return soft_end
                if units_before >= self.min_units:
                    soft_cuts.append(soft_end)
            i = max(i + 1, end or 0)
        return _WAIT

    def _takes_soft_cut(self, units: int) -> bool:
        return not self._emitted_any and units >= max(self.first_soft_units, self.min_units)

    def _cut_long(self, text: str, unit_starts: list[int], soft_cuts: list[int]) -> int:
        """Where to cut when the last unit is one too many: soft boundary, else a space, else before it."""
        if soft_cuts:
            return soft_cuts[-1]
        for space in range(unit_starts[-1] - 1, 0, -1):
            if text[space].isspace() and bisect.bisect_left(unit_starts, space) >= self.min_units:
                return space
        return unit_starts[-1]

    def _boundary_end(self, text: str, i: int, final: bool) -> int:
        """If a hard boundary starts at text[i], where its sentence ends; 0 if none; _WAIT if unknown yet."""
        char = text[i]
        if char == "\n":
            return i + 1
        if char in _CJK_HARD:
            return _absorb_closers(text, i + 1, final)
        if char == ".":
            return self._dot_end(text, i, final)
        if char in _ASCII_HARD:
            if i + 1 == len(text):
                return len(text) if final else _WAIT
            if is_word_char(text[i + 1]):  # "?q=1" in a URL, "Yahoo!Japan"
                return 0
            return _absorb_closers(text, i + 1, final)
        return 0

    def _dot_end(self, text: str, i: int, final: bool) -> int:
        if i > 0 and text[i - 1] == ".":
            return 0  # inside a run of dots, already judged at its first dot
        run_end = i
        while run_end < len(text) and text[run_end] == ".":
            run_end += 1
        if run_end == len(text) and not final:
            return _WAIT  # "." or ".." might grow into an ellipsis, or be followed by a digit
        if run_end - i >= 2:  # an ellipsis
            return _absorb_closers(text, run_end, final)
        if run_end < len(text):
            after = text[run_end]
            if is_word_char(after) or after in _DOT_CONTINUES:
                return 0
        word = _word_before(text, i)
        if word in _TITLES or _is_initial(text, i, word):
            return 0  # "Mr. Smith", "e.g. this", "J. K. Rowling"
        if word in _MAY_END or word in _BEFORE_NUMBER or _DOTTED_LETTERS.fullmatch(word):
            # Whether it ends the sentence depends on what follows: "No. 5", "etc. and", "etc. Then".
            following = text[run_end:].lstrip()
            if not following:
                return len(text) if final else _WAIT
            if following[0].isdigit() or (word not in _BEFORE_NUMBER and following[0].islower()):
                return 0
        return _absorb_closers(text, run_end, final)

    def _soft_end(self, text: str, i: int, final: bool) -> int:
        """If a soft boundary is at text[i], where the piece before it ends; 0 if none; _WAIT if unknown."""
        char = text[i]
        if char in _CJK_SOFT:
            return _absorb_closers(text, i + 1, final)
        if char in _ASCII_SOFT:
            if i + 1 == len(text):
                return len(text) if final else _WAIT
            after = text[i + 1]
            # "1,000", "3:45" and "http://" are not pauses.
            if after.isspace() or is_cjk(after):
                return i + 1
        return 0


def _starts_fence(text: str, i: int) -> bool:
    """A ``` or ~~~ fence at the start of a line (or of the buffer: LLMs put fences on their own lines)."""
    if not text.startswith(_FENCES, i):
        return False
    line_start = text.rfind("\n", 0, i) + 1
    return not text[line_start:i].strip(" \t")


def _fence_end(text: str, i: int, final: bool) -> int:
    """The end of the code block opened at text[i]: after its closing fence's line, or the end of text."""
    marker = text[i : i + 3]
    line_end = text.find("\n", i)
    while line_end != -1:
        line_start = line_end + 1
        line_end = text.find("\n", line_start)
        closes = text[line_start : len(text) if line_end == -1 else line_end].lstrip(" \t").startswith(marker)
        if closes and line_end != -1:
            return line_end + 1
    return len(text) if final else _WAIT


def _absorb_closers(text: str, end: int, final: bool) -> int:
    """Extends a sentence end over more end punctuation and closing quotes: 好。” / Hi!" / Really?!)."""
    while end < len(text) and (text[end] in CLOSERS or text[end] in _CJK_HARD or text[end] in "!?"):
        end += 1
    if end == len(text) and not final:
        return _WAIT  # a closing quote may still arrive
    return end


# --- long text for `say` --------------------------------------------------------------------------


def split_long_text(text: str, max_chars: int = 400) -> list[str]:
    """Cuts a long text into pieces of at most `max_chars`, at sentence boundaries where it can.

    Whole sentences are packed together; a sentence longer than `max_chars` is cut at its last soft
    boundary, else at a space, else between CJK characters, else (one huge token) at `max_chars`.
    Pieces are slices of the original text, trimmed: no word is lost or changed.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    splitter = SentenceSplitter(min_units=1, max_units=10**9, first_soft_units=10**9)
    sentences = splitter.feed(text) + splitter.flush()

    pieces: list[str] = []
    piece_start = piece_end = 0  # the current piece is text[piece_start:piece_end]
    cursor = 0
    for sentence in sentences:
        start = text.index(sentence, cursor)
        end = cursor = start + len(sentence)
        if piece_end > piece_start and end - piece_start <= max_chars:
            piece_end = end
            continue
        if piece_end > piece_start:
            pieces.append(text[piece_start:piece_end])
        if end - start <= max_chars:
            piece_start, piece_end = start, end
        else:
            pieces.extend(_split_sentence(sentence, max_chars))
            piece_start = piece_end = end
    if piece_end > piece_start:
        pieces.append(text[piece_start:piece_end])
    return [piece.strip() for piece in pieces if piece.strip()]


def _split_sentence(sentence: str, max_chars: int) -> list[str]:
    pieces = []
    rest = sentence
    while len(rest) > max_chars:
        window = rest[: max_chars + 1]
        cut = _last_cut(window, max_chars)
        piece, rest = rest[:cut].strip(), rest[cut:].lstrip()
        if piece:
            pieces.append(piece)
    if rest.strip():
        pieces.append(rest.strip())
    return pieces


def _last_cut(window: str, max_chars: int) -> int:
    """Where to cut `window` so the first part has at most max_chars characters.

    Prefers a soft boundary, then a space, then a place between two CJK characters, each only in the second
    half (tiny pieces make choppy speech); then any soft boundary or space; a single huge token is cut blind.
    """
    soft = [i + 1 for i, c in enumerate(window[:max_chars]) if c in _CJK_SOFT or c in _ASCII_SOFT]
    spaces = [i for i in range(1, max_chars + 1) if window[i].isspace()]
    between_cjk = [i for i in range(1, max_chars + 1) if is_cjk(window[i - 1]) and is_cjk(window[i])]
    half = max_chars // 2
    for candidates in (soft, spaces, between_cjk):
        if candidates and candidates[-1] > half:
            return candidates[-1]
    for candidates in (soft, spaces, between_cjk):
        if candidates:
            return candidates[-1]
    return max_chars
