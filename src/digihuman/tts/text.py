"""Text on its way to a voice: cleaning screen text for speech, and cutting it into sentences.

Three jobs that share one notion of "speech units" (one per CJK character, one per Latin word or number):

- `clean_for_speech` removes what the model writes for the screen but nobody should read aloud.
- `SentenceSplitter` cuts a streaming LLM reply (mixed Chinese and English) into sentences, so the voice
  can start on the first one while the model is still writing. Any chunking of the stream gives the same
  sentences.
- `split_long_text` cuts a long text for `say` into pieces a voice handles in one call.
"""

from __future__ import annotations

import bisect
import re
import unicodedata

from digihuman.lang import is_cjk  # one home for script detection

# --- characters -----------------------------------------------------------------------------------

# Sentence ends that are always boundaries, and the ASCII ones that need a look at the next character.
_CJK_HARD = frozenset("。！？；…｡")
_ASCII_HARD = frozenset("!?;")
# Soft boundaries: where a long sentence (or the first, to answer fast) may be cut.
_CJK_SOFT = frozenset("，、：")
_ASCII_SOFT = frozenset(",:")
# Closing quotes and brackets that stay with the sentence they end.
_CLOSERS = frozenset("\"'”’」』》〉）)]】}")
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
    while end < len(text) and (text[end] in _CLOSERS or text[end] in _CJK_HARD or text[end] in "!?"):
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


# --- cleaning -------------------------------------------------------------------------------------

# A bracketed aside is a stage direction when it is at most this long.
STAGE_DIRECTION_MAX_WORDS = 6
STAGE_DIRECTION_MAX_CJK = 12

# A fence opener's info string has no backticks, so "```x```" on one line is inline code, not a fence.
_CODE_FENCE = re.compile(r"^[ \t]*(```|~~~)[^`\n]*(?:\n|\Z).*?(?:^[ \t]*\1[ \t]*$|\Z)", re.S | re.M)
_AUTOLINK = re.compile(r"<(?:https?|ftp|mailto):[^<>\s]*>", re.I)
_HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>")
_IMAGE = re.compile(r"!\[[^\]\n]*\]\([^)\n]*\)")
_LINK = re.compile(r"\[([^\]\n]+)\]\([^)\n]*\)")
_URL = re.compile(r"(?:https?://|ftp://|www\.)[^\s<>\"'()\[\]（）【】「」，。！？；、]+", re.I)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_HEADER = re.compile(r"^[ \t]*#{1,6}[ \t]+")
_RULE = re.compile(r"^[ \t]*(?:[-*_][ \t]*){3,}$")
_QUOTE_MARK = re.compile(r"^[ \t]*(?:>[ \t]?)+")
_BULLET = re.compile(r"^[ \t]*(?:[-*+•●▪◦]|\d{1,3}[.)、]|[a-z]\))[ \t]+")
_TABLE_RULE = re.compile(r"^[ \t]*\|?[ \t]*:?-{2,}:?[ \t]*(?:\|[ \t]*:?-{2,}:?[ \t]*)*\|?[ \t]*$")
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_STAR = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
_SQUARE = re.compile(r"\[([^\[\]\n]*)\]")
_LENTICULAR = re.compile(r"【([^【】\n]*)】")
_ROUND = re.compile(r"[(（]([^()（）\n]*)[)）]")
_UNDERSCORE_ITALIC = re.compile(r"(?<!\w)_(?=\S)([^_\n]+?)(?<=\S)_(?!\w)")
_STRIKE = re.compile(r"~~(.+?)~~")
_INLINE_CODE = re.compile(r"`+([^`\n]*)`+")
_KEYCAP = re.compile(r"[0-9#*]\ufe0f?\u20e3")
_EMOJI = re.compile(
    "["
    "\U0001f000-\U0001faff"  # pictographs, emoticons, transport, flags, supplemental symbols
    "\u2600-\u27bf"  # miscellaneous symbols and dingbats
    "\u231a\u231b\u2328\u23cf\u23e9-\u23f3\u23f8-\u23fa"
    "\u2b05-\u2b07\u2b1b\u2b1c\u2b50\u2b55\u3030\u303d\u3297\u3299"
    "\u200d\ufe0e\ufe0f\u20e3"  # joiners, variation selectors, keycap
    "\U000e0020-\U000e007f"  # tag characters (subdivision flags)
    "]|[\u00a9\u00ae\u203c\u2049\u2122\u2139\u2194-\u21aa]\ufe0f"
)
_ESCAPED = re.compile(r"\\([\\`*_#\[\]()~>|.!-])")
_SENTENCE_END = ".!?。！？…;；:：,，、"
_SPACES = re.compile(r"[ \t\u00a0\u3000]+")


def clean_for_speech(text: str) -> str:
    """What a voice should say for text written for the screen.

    Drops code blocks, images, bare URLs and emails, emoji (with ZWJ sequences, skin tones, flags, keycaps
    and variation selectors), HTML tags and stage directions; keeps the words of links, bold/italic text,
    headers, list items, table cells and inline code, and the punctuation that shapes prosody.

    Stage directions are short asides: at most STAGE_DIRECTION_MAX_WORDS Latin words and at most
    STAGE_DIRECTION_MAX_CJK CJK characters, no digits in round brackets. `*waves*`, `[smiles]` and `【动作】`
    are dropped wherever they stand (single asterisks mark actions in chat; longer *text* is read as italics).
    Round brackets `(laughs)` / `（笑）` are dropped only at the start or end of a line or sentence, because
    mid-sentence brackets are usually spoken asides: "the price (about five dollars) is fine" keeps them.

    A line break ends a spoken phrase: a line (a header, a list item) without closing punctuation gets a
    period ("。" after CJK) when more text follows.
    """
    text = _strip_invisible(text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _CODE_FENCE.sub("\n", text)
    text = _AUTOLINK.sub(" ", text)
    text = _HTML_TAG.sub(" ", text)
    text = _IMAGE.sub(" ", text)
    text = _LINK.sub(r"\1", text)
    text = _URL.sub(_drop_url, text)
    text = _EMAIL.sub(" ", text)
    lines = [_clean_line(line) for line in text.split("\n")]
    spoken = _join_lines([line for line in lines if line])
    # Only punctuation or symbols left ("...", "—", "**"): a voice would render silence or read symbol
    # names, so it counts as nothing to say, like emoji-only text.
    return spoken if any(c.isalnum() for c in spoken) else ""


# Terminal escape sequences (colours, cursor moves, titles) pasted from a terminal or sent by a tool.
_ANSI = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])|\x9b[0-?]*[ -/]*[@-~]"
)


def _strip_invisible(text: str) -> str:
    """Drop what is never spoken and can break a voice: escapes, control, format and unpaired surrogate chars.

    A NUL ends the string for a C voice library (espeak), silently truncating the speech; surrogates (from
    undecodable command-line bytes) cannot be encoded at all, and U+FFFD (undecodable input) has no sound.
    Control characters become spaces so words stay apart; format characters (zero-width spaces and
    joiners, soft hyphens, bidi marks) just vanish.
    """
    text = _ANSI.sub(" ", text).replace("\ufffd", "")
    if text.isprintable():
        return text  # the common case, answered without looking at every character
    kept: list[str] = []
    for char in text:
        if char in "\n\t" or char.isprintable():
            kept.append(char)
            continue
        category = unicodedata.category(char)
        if category in ("Cc", "Zs"):  # controls, and spaces such as U+00A0 that are not "printable"
            kept.append(" ")
        elif category in ("Zl", "Zp"):
            kept.append("\n")
        # Cf, Cs, Co, Cn (format, surrogate, private-use, unassigned) are dropped
    return "".join(kept)


def _drop_url(match: re.Match[str]) -> str:
    # Sentence punctuation right after a URL belongs to the sentence, not the URL.
    url = match.group(0)
    trailing = url[len(url.rstrip(".,;:!?")) :]
    return " " + trailing


def _clean_line(line: str) -> str:
    if _RULE.match(line) or _TABLE_RULE.match(line):
        return ""
    line = _HEADER.sub("", line)
    line = _QUOTE_MARK.sub("", line)
    line = _BULLET.sub("", line)
    if line.count("|") >= 2:  # a table row: cells become a list
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        line = ", ".join(cell for cell in cells if cell)
    line = _BOLD.sub(r"\2", line)
    line = _STAR.sub(lambda m: _unless_stage_direction(m, anywhere=True), line)
    line = _SQUARE.sub(lambda m: _unless_stage_direction(m, anywhere=True), line)
    line = _LENTICULAR.sub(lambda m: _unless_stage_direction(m, anywhere=True), line)
    line = _ROUND.sub(lambda m: _unless_stage_direction(m, anywhere=False), line)
    line = _UNDERSCORE_ITALIC.sub(r"\1", line)
    line = _STRIKE.sub(r"\1", line)
    line = _INLINE_CODE.sub(r"\1", line)
    line = _KEYCAP.sub(" ", line)
    line = _EMOJI.sub(" ", line)
    line = line.replace("**", "").replace("`", "")
    line = _ESCAPED.sub(r"\1", line)
    return _tidy(line)


def _unless_stage_direction(match: re.Match[str], anywhere: bool) -> str:
    """Drops a short bracketed aside; keeps the words of a long one (or of a spoken mid-sentence aside)."""
    inner = match.group(1).strip()
    is_round = match.group(0)[0] in "(（"
    if _is_short_aside(inner, no_digits=is_round) and (anywhere or _at_edge(match)):
        return " "
    return match.group(0) if is_round else inner


def _is_short_aside(inner: str, no_digits: bool) -> bool:
    if not inner or (no_digits and any(c.isdigit() for c in inner)):
        return False
    cjk = sum(1 for c in inner if is_cjk(c))
    words = len(re.findall(r"[^\W\d_]+", "".join(" " if is_cjk(c) else c for c in inner)))
    return cjk <= STAGE_DIRECTION_MAX_CJK and words <= STAGE_DIRECTION_MAX_WORDS


def _at_edge(match: re.Match[str]) -> bool:
    """True when a bracketed aside starts or ends its line or sentence."""
    before = match.string[: match.start()].rstrip()
    after = match.string[match.end() :].lstrip()
    starts_sentence = not before or before[-1] in ".!?。！？…;；" or before[-1] in _CLOSERS
    ends_sentence = not after.lstrip(_SENTENCE_END + " ") or after[0] in ".!?。！？…;；"
    return starts_sentence or ends_sentence


_CJK_PUNCTUATION = "\u3000-\u303f\uff00-\uffef"
_CJK_TEXT = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af"


def _tidy(line: str) -> str:
    line = _SPACES.sub(" ", line).strip()
    # Removals leave "funny (laughs)." as "funny .", "Hi. (waves). Bye" as "Hi. . Bye", ", okay" and ":.".
    line = re.sub(r"\s+(?=[,.!?;:…]+(?:\s|$))", "", line)
    line = re.sub(r"(?<=[.,;:!?…])\s+(?=[.,;:!?…]+(?:\s|$))", "", line)
    # Spaces next to CJK text and punctuation are layout, not pauses.
    line = re.sub(rf"(?<=[{_CJK_PUNCTUATION}])\s+|\s+(?=[{_CJK_PUNCTUATION}])", "", line)
    line = re.sub(rf"(?<=[{_CJK_TEXT}])\s+(?=[{_CJK_TEXT}])", "", line)
    line = _PUNCTUATION_RUN.sub(_one_mark, line)
    line = re.sub(r"^(?:[\s,，。;；:：、!?！？]|\.(?!\w))+", "", line)
    return line.strip()


_PUNCTUATION_RUN = re.compile(r"[,.;:!?，。；：、！？]{2,}")


def _one_mark(match: re.Match[str]) -> str:
    """One mark for a run that removals left behind; keeps real runs such as "...", "?!" and "！！"."""
    run = match.group(0)
    if set(run) == {"."}:
        return run if len(run) >= 3 else "."
    if set(run) <= set("!?！？"):
        return run
    terminals = [c for c in run if c in ".!?。！？"]
    return terminals[0] if terminals else run[0]


def _join_lines(lines: list[str]) -> str:
    spoken = ""
    for line in lines:
        if spoken:
            last = spoken.rstrip("".join(_CLOSERS))[-1:] or spoken[-1]
            if last not in _SENTENCE_END and any(c.isalnum() for c in spoken):
                spoken += "。" if is_cjk(last) else "."
            cjk_seam = _is_cjk_like(spoken[-1]) and _is_cjk_like(line[0])
            spoken += "" if cjk_seam else " "
        spoken += line
    return spoken


def _is_cjk_like(char: str) -> bool:
    return is_cjk(char) or "\u3000" <= char <= "\u303f" or "\uff00" <= char <= "\uffef"
