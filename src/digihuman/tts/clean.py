"""Screen text made speakable: `clean_for_speech` removes what a model writes for the screen (markdown,
code, links, emoji, stage directions, control and invisible characters) but nobody should read aloud."""

from __future__ import annotations

import re
import unicodedata

from digihuman.lang import CJK_PUNCTUATION_CLASS, UNSPACED_CLASS, is_cjk, is_unspaced
from digihuman.tts.text import CLOSERS

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
    starts_sentence = not before or before[-1] in ".!?。！？…;；" or before[-1] in CLOSERS
    ends_sentence = not after.lstrip(_SENTENCE_END + " ") or after[0] in ".!?。！？…;；"
    return starts_sentence or ends_sentence


_CJK_PUNCTUATION = CJK_PUNCTUATION_CLASS
_CJK_TEXT = UNSPACED_CLASS  # Korean is not here: it puts spaces between words


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
            last = spoken.rstrip("".join(CLOSERS))[-1:] or spoken[-1]
            if last not in _SENTENCE_END and any(c.isalnum() for c in spoken):
                spoken += "。" if is_unspaced(last) else "."
            cjk_seam = is_unspaced(spoken[-1]) and is_unspaced(line[0])
            spoken += "" if cjk_seam else " "
        spoken += line
    return spoken
