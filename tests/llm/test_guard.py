from __future__ import annotations

import logging

import pytest

from digihuman.llm.base import FailedRound, LLMError, Usage
from digihuman.llm.guard import LoopGuard, ReplyGuard, ThinkTagStripper

ENGLISH = (
    "Good morning! I looked out of the window and the sky is clear today. If you want, we could take a "
    "walk by the river after lunch, and then have tea at the little shop near the bridge. The the cat "
    "sat on the mat. What do you think? I think it would be lovely; the weather will not stay this nice."
)
CHINESE = (
    "早上好！今天天气很好，阳光明媚。如果你愿意的话，我们可以在午饭后去河边散步，然后在桥边的小店喝茶。"
    "你觉得怎么样？我觉得这会很不错，因为天气不会一直这么好。哈哈，我们出发吧！"
)


def pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def run_loop_guard(text: str, size: int = 3, **options: int) -> tuple[str, LoopGuard]:
    """Stream `text` through a LoopGuard in deltas of `size` chars; return what it released."""
    guard = LoopGuard(**options)
    released = []
    for delta in pieces(text, size):
        released.append(guard.feed(delta))
        if guard.cut:
            break
    released.append(guard.finish())
    return "".join(released), guard


# --- think tags ---


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 100])
def test_think_tags_are_stripped_whatever_the_delta_boundaries(size: int) -> None:
    text = "<think>The user says hi.\nI should greet back.</think>\n\nHello! <b>Nice</b> to see you, 3 < 4."
    stripper = ThinkTagStripper()
    visible = "".join(stripper.feed(d) for d in pieces(text, size)) + stripper.finish()
    assert visible == "\n\nHello! <b>Nice</b> to see you, 3 < 4."
    assert stripper.hidden_chars == len("The user says hi.\nI should greet back.")


def test_an_unclosed_think_at_the_start_swallows_until_the_closing_tag() -> None:
    stripper = ThinkTagStripper()
    assert stripper.feed("<think>still thinking") == ""
    assert stripper.feed(" and thinking") == ""
    assert stripper.inside
    assert stripper.feed("</think>Answer.") == "Answer."
    assert stripper.finish() == ""


def test_an_unclosed_think_swallows_the_rest_of_the_reply() -> None:
    stripper = ThinkTagStripper()
    assert stripper.feed("<think>never ends</thi") == ""
    assert stripper.finish() == ""
    assert stripper.hidden_chars == len("never ends</thi")


def test_a_stray_closing_tag_is_dropped_and_a_half_tag_at_the_end_is_text() -> None:
    stripper = ThinkTagStripper()
    assert stripper.feed("reasoning</think>Hi <th") == "reasoningHi "
    assert stripper.finish() == "<th"


# --- loops and budgets ---


@pytest.mark.parametrize("size", [1, 3, 8, 50])
def test_ordinary_text_passes_unchanged(size: int) -> None:
    for text in (ENGLISH, CHINESE):
        released, guard = run_loop_guard(text, size)
        assert released == text
        assert guard.cut is None


@pytest.mark.parametrize("size", [1, 4, 13])
def test_a_repeated_english_sentence_is_cut_after_its_first_copy(size: int) -> None:
    released, guard = run_loop_guard("Sure. " + "I am always here for you. " * 12, size)
    assert released == "Sure. I am always here for you."
    assert guard.cut is not None and guard.cut.reason == "loop"


@pytest.mark.parametrize("size", [1, 2, 5])
def test_a_repeated_chinese_sentence_is_cut_after_its_first_copy(size: int) -> None:
    released, guard = run_loop_guard("好的。" + "我一直在这里陪着你。" * 10, size)
    assert released == "好的。我一直在这里陪着你。"
    assert guard.cut is not None and guard.cut.reason == "loop"


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("Well " + "ha" * 40, "Well ha"),
        ("嗯" + "哈" * 40, "嗯哈"),
        ("Okay, " + "no no " * 20, "Okay, no"),
        ("我觉得" + "对对对" * 20, "我觉得对"),
    ],
)
def test_short_cycles_are_cut_in_both_scripts(text: str, kept: str) -> None:
    released, guard = run_loop_guard(text, 2)
    assert released == kept
    assert guard.cut is not None and guard.cut.reason == "loop"


def test_a_sentence_coming_back_again_and_again_is_cut_before_its_third_copy() -> None:
    text = (
        "Let me think. I am here for you. The rain has stopped now. I am here for you. "
        "Shall we go outside? I am here for you. The end."
    )
    released, guard = run_loop_guard(text, 3)
    assert (
        released == "Let me think. I am here for you. The rain has stopped now. I am here for you. "
        "Shall we go outside?"
    )
    assert guard.cut is not None and guard.cut.reason == "loop"


def test_no_part_of_a_repetition_is_released_before_the_cut() -> None:
    guard = LoopGuard()
    released = ""
    for delta in pieces("Hello there. " + "You are my best friend. " * 5, 1):
        released += guard.feed(delta)
        # While the loop builds up, at most the first copy of the sentence has been let through.
        assert released.count("You are my best friend") <= 1
    assert guard.cut is not None


def test_the_token_budget_stops_a_runaway_reply() -> None:
    guard = LoopGuard(max_tokens=5)
    released = "".join(guard.feed(f"word{n} ") for n in range(10))
    assert released == "word0 word1 word2 word3 word4 "
    assert guard.cut is not None and guard.cut.reason == "budget"
    assert guard.feed("more") == ""


def test_the_char_budget_stops_a_runaway_reply() -> None:
    released, guard = run_loop_guard(ENGLISH, 10, max_chars=40)
    assert released == ENGLISH[:40]
    assert guard.cut is not None and guard.cut.reason == "budget"


# --- the reply guard (rules shared by the adapters) ---


def make_guard(budget: int = 64) -> tuple[ReplyGuard, Usage]:
    usage = Usage()
    clock = iter(range(100)).__next__
    return ReplyGuard(usage, model="m", token_budget=budget, started=0.0, clock=lambda: float(clock())), usage


def test_reasoning_is_counted_never_spoken_and_leading_blank_lines_are_dropped() -> None:
    guard, usage = make_guard()
    guard.thinking("Let me see.")
    spoken = guard.content("<think>more</think>\n\n") + guard.content("Hi") + guard.content(" there.")
    spoken += guard.finish("stop")
    assert spoken == "Hi there."
    assert usage.thinking_chars == len("Let me see.") + len("more")
    assert usage.first_token_s == 0.0  # the first clock reading after the start
    assert usage.done_reason == "stop"


def test_a_reply_with_only_thinking_is_a_failed_round_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    guard, usage = make_guard()
    guard.thinking("I wonder what to say.")
    with caplog.at_level(logging.WARNING), pytest.raises(FailedRound, match="thinking only"):
        guard.finish("stop")
    assert "failed round" in caplog.text
    assert usage.notes and "thinking only" in usage.notes[-1]


def test_thinking_until_the_budget_is_a_failed_round_naming_num_predict() -> None:
    guard, usage = make_guard()
    guard.content("<think>")
    guard.content("pondering")
    with pytest.raises(FailedRound, match=r"num_predict"):
        guard.finish("length")
    assert usage.done_reason == "length"


def test_thinking_past_the_token_budget_fails_while_streaming() -> None:
    guard, _ = make_guard(budget=16)
    with pytest.raises(FailedRound, match="still thinking"):
        for _ in range(17):
            guard.thinking("hmm ")


def test_an_empty_reply_is_a_failed_round() -> None:
    guard, _ = make_guard()
    guard.content("   ")
    with pytest.raises(FailedRound, match="empty reply"):
        guard.finish("stop")


def test_a_loop_is_noted_in_usage() -> None:
    guard, usage = make_guard(budget=1000)
    spoken = "".join(guard.content(d) for d in pieces("Yes. " + "I love you so much. " * 10, 4))
    assert guard.stopped
    spoken += guard.finish("stop")
    assert spoken == "Yes. I love you so much."
    assert usage.done_reason == "loop"
    assert usage.notes and "loop" in usage.notes[0]


def test_a_first_token_timeout_is_a_failed_round_only_when_the_model_was_thinking() -> None:
    guard, _ = make_guard()
    error = guard.first_token_timeout(5.0)
    assert type(error) is LLMError
    assert "llm.first_token_timeout_s" in str(error)
    guard.thinking("hmm")
    assert isinstance(guard.first_token_timeout(5.0), FailedRound)
