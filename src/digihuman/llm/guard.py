"""What stands between a model's raw token stream and the voice, shared by every LLM adapter.

- `ThinkTagStripper` removes `<think>…</think>` spans from content, even when a tag is split across deltas.
- `LoopGuard` stops a reply that repeats itself or runs past its budget, holding back just enough text that
  the repetition itself is never released.
- `ReplyGuard` combines both with the failed-round rules: reasoning is counted, never spoken, and a reply that
  ends with nothing speakable (only thinking, endless thinking) raises `FailedRound`.
"""

from __future__ import annotations

import logging
import time
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from digihuman.llm.base import FailedRound, LLMError, Usage

logger = logging.getLogger(__name__)

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

# Characters that end a sentence for the repeated-sentence check (CJK and Latin).
SENTENCE_ENDS = frozenset(".!?;。！？；…\n")


def _partial_tag_len(text: str, tag: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `tag` (a tag cut by a delta)."""
    if "<" not in text[-(len(tag) - 1) :]:
        return 0  # the common case, answered without trying every length
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0


class ThinkTagStripper:
    """Drops `<think>…</think>` spans from streamed content.

    An unclosed `<think>` swallows everything up to `</think>` (or the end of the reply). A stray `</think>`
    without an opening tag is dropped too: some chat templates put the opening tag in the prompt.
    """

    def __init__(self) -> None:
        self.inside = False
        self.hidden_chars = 0  # reasoning text removed so far
        self._pending = ""  # a tail that may be the start of a tag

    def feed(self, delta: str) -> str:
        text = self._pending + delta
        self._pending = ""
        visible: list[str] = []
        while text:
            if self.inside:
                end = text.find(THINK_CLOSE)
                if end < 0:
                    keep = _partial_tag_len(text, THINK_CLOSE)
                    self.hidden_chars += len(text) - keep
                    self._pending = text[len(text) - keep :]
                    break
                self.hidden_chars += end
                text = text[end + len(THINK_CLOSE) :]
                self.inside = False
                continue
            opening, closing = text.find(THINK_OPEN), text.find(THINK_CLOSE)
            hits = [i for i in (opening, closing) if i >= 0]
            if not hits:
                keep = max(_partial_tag_len(text, THINK_OPEN), _partial_tag_len(text, THINK_CLOSE))
                visible.append(text[: len(text) - keep])
                self._pending = text[len(text) - keep :]
                break
            first = min(hits)
            visible.append(text[:first])
            if first == opening:
                text = text[first + len(THINK_OPEN) :]
                self.inside = True
            else:
                text = text[first + len(THINK_CLOSE) :]
        return "".join(visible)

    def finish(self) -> str:
        """The end of the reply: a half tag outside a think span was ordinary text after all."""
        rest, self._pending = self._pending, ""
        if self.inside:
            self.hidden_chars += len(rest)
            return ""
        return rest


def _width(char: str) -> int:
    # A wide (CJK) character carries about as much as a short word: count it double so one threshold
    # fits Chinese and English.
    if char < "\u1100":  # nothing below the Hangul Jamo block is wide
        return 1
    return 2 if unicodedata.east_asian_width(char) in "WF" else 1


@dataclass(frozen=True, slots=True)
class Cut:
    reason: str  # "loop" or "budget"
    note: str


class LoopGuard:
    """Cuts a reply that loops or runs past its budget, keeping the text before the repetition.

    Two kinds of loop are caught, in any script:
    - a unit of up to `max_period` characters (a sentence, a phrase, a short cycle like "哈哈" or "no no")
      repeated back to back: once the repeats cover `min_loop_width` (and at least one full unit), the reply
      is cut where the first repeat starts (moved to the end of the sentence it interrupts);
    - the same sentence coming back `sentence_repeats` times anywhere in the reply: cut before that sentence.
    Text that might be the start of a repetition is held back until it either diverges (then it is released)
    or becomes a loop (then it is dropped), so a loop is never spoken even in part.
    """

    def __init__(
        self,
        *,
        max_tokens: int | None = None,
        max_chars: int | None = None,
        max_period: int = 200,
        min_loop_width: int = 24,
        sentence_repeats: int = 3,
        min_sentence_width: int = 8,
    ) -> None:
        self.max_tokens = max_tokens
        self.max_chars = max_chars
        self.cut: Cut | None = None
        self.tokens = 0
        self._max_period = max_period
        self._min_loop_width = min_loop_width
        self._sentence_repeats = sentence_repeats
        self._min_sentence_width = min_sentence_width
        self._chars: list[str] = []
        self._widths: list[int] = [0]  # prefix sums of _width over _chars
        self._runs: dict[int, int] = {}  # period p -> how many trailing chars equal the chars p before them
        self._pairs: dict[str, list[int]] = {}  # two chars -> where (the index of the second) they occurred
        self._longest_run = 0
        self._released = 0
        self._sentences: Counter[str] = Counter()
        self._repeated: set[str] = set()  # sentences one more copy of which makes a loop
        self._sentence_start = 0
        self._sentence_key = ""  # the current sentence, normalized

    def feed(self, text: str, tokens: int = 1) -> str:
        """Take a delta; return the text that is safe to speak now ("" once cut)."""
        if self.cut:
            return ""
        self.tokens += tokens
        if self.max_tokens is not None and self.tokens > self.max_tokens:
            return self._stop(
                len(self._chars), "budget", f"reply cut at its budget of {self.max_tokens} tokens"
            )
        for char in text:
            if self.max_chars is not None and len(self._chars) >= self.max_chars:
                return self._stop(
                    len(self._chars), "budget", f"reply cut at its budget of {self.max_chars} chars"
                )
            loop_start = self._push(char)
            if loop_start is not None:
                return self._stop(loop_start, "loop", f"cut a repeating loop after {loop_start} chars")
        return self._release(len(self._chars) - self._holdback())

    def finish(self) -> str:
        """The end of the stream: held-back text that never became a loop is released."""
        if self.cut:
            return ""
        if self._sentence_key and self._sentence_repeats_now():
            return self._stop(self._sentence_start, "loop", "cut a sentence the reply kept repeating")
        return self._release(len(self._chars))

    def _push(self, char: str) -> int | None:
        """Append one char; return where to cut if it completes a loop."""
        chars, widths = self._chars, self._widths
        index = len(chars)
        chars.append(char)
        widths.append(widths[-1] + _width(char))
        runs = {period: run + 1 for period, run in self._runs.items() if chars[index - period] == char}
        if index:
            # New runs start where the last two chars occurred before: indexing by pairs keeps this to a few
            # steps per char. (A one-char run is not tracked; holding back the last char covers it.)
            positions = self._pairs.setdefault(chars[index - 1] + char, [])
            for earlier in reversed(positions):
                period = index - earlier
                if period > self._max_period:
                    break
                runs.setdefault(period, 2)
            positions.append(index)
        self._runs = runs
        self._longest_run = max(runs.values(), default=0)
        loop_start: int | None = None
        loop_period = 0
        for period, run in runs.items():
            if run >= period and widths[index + 1] - widths[index + 1 - run] >= self._min_loop_width:
                start = index + 1 - run
                if loop_start is None or start < loop_start:
                    loop_start, loop_period = start, period
        if loop_start is not None:
            return self._sentence_end_after(loop_start, loop_period)
        return self._track_sentence(char, index)

    def _sentence_end_after(self, start: int, period: int) -> int:
        """Move a loop cut forward to the end of the sentence it interrupts, if one ends within the unit.

        The repeated region can begin mid-sentence ("Sure. I am here for you|. I am here for you. …" repeats
        from the full stop); the copy right after the cut contains the missing ending.
        """
        stop = min(len(self._chars), start + period)
        for index in range(start, stop):
            if self._chars[index] in SENTENCE_ENDS:
                return index + 1
        return start

    def _track_sentence(self, char: str, index: int) -> int | None:
        if char.isalnum():
            self._sentence_key += char.lower()
        if char not in SENTENCE_ENDS:
            return None
        if self._sentence_repeats_now():
            return self._sentence_start
        if sum(_width(c) for c in self._sentence_key) >= self._min_sentence_width:
            self._sentences[self._sentence_key] += 1
            if self._sentences[self._sentence_key] >= self._sentence_repeats - 1:
                self._repeated.add(self._sentence_key)
        self._sentence_start, self._sentence_key = index + 1, ""
        return None

    def _sentence_repeats_now(self) -> bool:
        return self._sentences[self._sentence_key] + 1 >= self._sentence_repeats

    def _holdback(self) -> int:
        """How many trailing chars might be the start of a repetition (not safe to release yet)."""
        held = max(self._longest_run, 1)
        if any(key.startswith(self._sentence_key) for key in self._repeated):
            held = max(held, len(self._chars) - self._sentence_start)
        return held

    def _release(self, upto: int) -> str:
        if upto <= self._released:
            return ""
        out = "".join(self._chars[self._released : upto])
        self._released = upto
        return out

    def _stop(self, at: int, reason: str, note: str) -> str:
        self.cut = Cut(reason, note)
        logger.info("%s", note)
        return self._release(at)


class ReplyGuard:
    """The rules every adapter applies between the raw stream and the spoken text.

    Feed reasoning-field deltas to `thinking()` and content deltas to `content()` (which returns the text to
    yield); call `finish()` at the end of the stream. `stopped` turns true when the loop guard cut the reply:
    the adapter then closes the stream. Fills in Usage.first_token_s, thinking_chars, done_reason and notes.
    """

    def __init__(
        self,
        usage: Usage,
        *,
        model: str,
        token_budget: int,
        started: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.usage = usage
        self._model = model
        self._budget = token_budget
        self._started = started
        self._clock = clock
        self._tags = ThinkTagStripper()
        # The server enforces the token budget itself; these catch one that ignores it (or counts
        # differently). A token averages well under 10 characters in any language.
        self._loop = LoopGuard(max_tokens=token_budget, max_chars=token_budget * 10)
        self._reasoning_chars = 0
        self._thinking_tokens = 0
        self.spoken = False

    @property
    def stopped(self) -> bool:
        return self._loop.cut is not None

    @property
    def thought(self) -> bool:
        """Whether any reasoning arrived (in a reasoning field or in think tags)."""
        return self._thinking_tokens > 0

    def thinking(self, text: str) -> None:
        if not text:
            return
        self._reasoning_chars += len(text)
        self._count_thinking()

    def content(self, text: str) -> str:
        if not text:
            return ""
        hidden_before = self._tags.hidden_chars
        visible = self._tags.feed(text)
        if self._tags.hidden_chars > hidden_before:
            self._count_thinking()
        if not visible and self._tags.inside:
            return ""
        return self._speak(self._loop.feed(visible))

    def finish(self, done_reason: str) -> str:
        """Flush held-back text; raise FailedRound if nothing speakable came out."""
        tail = self._loop.feed(self._tags.finish(), tokens=0)
        tail = self._speak(tail + self._loop.finish())
        self._sync_thinking_chars()
        cut = self._loop.cut
        self.usage.done_reason = cut.reason if cut else done_reason
        if cut:
            self.usage.notes.append(cut.note)
        elif done_reason == "length" and self.spoken:
            self.usage.notes.append(f"reply cut at the token budget ({self._budget}, llm.num_predict)")
        if not self.spoken:
            raise self._failed(self._why_nothing(done_reason))
        return tail

    def first_token_timeout(self, limit_s: float, *, waited_s: float | None = None) -> LLMError:
        """The error for a reply whose first spoken token did not come within `limit_s`.

        `waited_s` is the whole wait when it was longer (a preload that got no answer came first): the
        message states what the user actually waited.
        """
        if self.thought:
            return self._failed(
                f"{self._model} thought for {limit_s:g} s without saying anything (think-time limit "
                "llm.first_token_timeout_s); use an instruct (non-thinking) model variant"
            )
        within = f"{limit_s:g} s"
        if waited_s is not None and waited_s > limit_s + 0.5:
            within = f"{waited_s:.0f} s, the preload included"
        return LLMError(
            f"no reply from {self._model} within {within}: raise llm.first_token_timeout_s if the model "
            "is slow to load or the machine is busy"
        )

    def _speak(self, text: str) -> str:
        if not self.spoken:
            # Nothing is spoken before the first word (e.g. the blank line after </think>).
            text = text.lstrip()
            if not text:
                return ""
            self.spoken = True
            self.usage.first_token_s = self._clock() - self._started
        return text

    def _count_thinking(self) -> None:
        self._thinking_tokens += 1
        self._sync_thinking_chars()
        if not self.spoken and self._thinking_tokens > self._budget:
            raise self._failed(
                f"{self._model} was still thinking after its whole token budget ({self._budget}, "
                "llm.num_predict) and said nothing; use an instruct (non-thinking) model variant"
            )

    def _sync_thinking_chars(self) -> None:
        self.usage.thinking_chars = self._reasoning_chars + self._tags.hidden_chars

    def _why_nothing(self, done_reason: str) -> str:
        if self.thought and done_reason == "length":
            return (
                f"{self._model} spent its whole token budget ({self._budget}, llm.num_predict) thinking and "
                "said nothing; use an instruct (non-thinking) model variant or raise llm.num_predict"
            )
        if self.thought:
            return f"{self._model} replied with thinking only and no answer; use an instruct model variant"
        if self._loop.cut:
            return f"{self._model} produced only a repeating loop"
        return f"{self._model} returned an empty reply (done_reason={done_reason or 'none'})"

    def _failed(self, message: str) -> FailedRound:
        self.usage.done_reason = self.usage.done_reason or "failed"
        self.usage.notes.append(message)
        logger.warning("failed round: %s", message)
        return FailedRound(message)
