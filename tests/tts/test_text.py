"""Cleaning screen text for speech, the streaming sentence splitter, and long-text splitting."""

from __future__ import annotations

import random
import re

import pytest

from digihuman.tts.clean import clean_for_speech
from digihuman.tts.text import SentenceSplitter, count_units, split_long_text


def split_whole(text: str, **options: int) -> list[str]:
    splitter = SentenceSplitter(**options)
    return splitter.feed(text) + splitter.flush()


def split_in_deltas(text: str, size: int, **options: int) -> list[str]:
    splitter = SentenceSplitter(**options)
    sentences = []
    for start in range(0, len(text), size):
        sentences += splitter.feed(text[start : start + size])
    return sentences + splitter.flush()


def without_spaces(text: str) -> str:
    return re.sub(r"\s", "", text)


# --- count_units ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "units"),
    [
        ("", 0),
        ("你好", 2),
        ("Hello world", 2),
        ("我喜欢Python编程", 6),
        ("Pi is 3.14, don't you know?", 6),
        ("e-mail me at 5pm", 4),
        ("。！？ ... 😊", 0),
    ],
)
def test_count_units(text: str, units: int) -> None:
    assert count_units(text) == units


# --- SentenceSplitter: rules ---------------------------------------------------------------------------

SPLIT_CASES = [
    ("你好！今天天气很好。我们去公园吧？", ["你好！", "今天天气很好。", "我们去公园吧？"]),
    (
        "Hello there, Mr. Smith. How are you? I'm fine!",
        ["Hello there, Mr. Smith.", "How are you?", "I'm fine!"],
    ),
    (
        "Pi is 3.14. Visit example.com for more. Mail a.b@example.com now. Thanks!",
        ["Pi is 3.14.", "Visit example.com for more.", "Mail a.b@example.com now.", "Thanks!"],
    ),
    (
        "I live in the U.S. It is big. We use e.g. apples.",
        ["I live in the U.S.", "It is big.", "We use e.g. apples."],
    ),
    ("Fruit, etc. and more. Lots, etc. Then done.", ["Fruit, etc. and more.", "Lots, etc.", "Then done."]),
    ("No. 5 is mine. I said no. Fine.", ["No. 5 is mine.", "I said no.", "Fine."]),
    ("J. K. Rowling wrote it. So do I. Yes.", ["J. K. Rowling wrote it.", "So do I.", "Yes."]),
    ("她说：“好的。”然后走了。", ["她说：“好的。”", "然后走了。"]),
    ('He yelled "Stop it!" Then silence.', ['He yelled "Stop it!"', "Then silence."]),
    ("Wait... what? I think… so. 嗯……好吧。", ["Wait... what?", "I think…", "so. 嗯……", "好吧。"]),
    ("Line one\nLine two here\n\nLine three.", ["Line one", "Line two here", "Line three."]),
    ("See https://example.com/a?b=1 now! Done here.", ["See https://example.com/a?b=1 now!", "Done here."]),
    ("价格是3.5元。版本v2.0发布了。", ["价格是3.5元。", "版本v2.0发布了。"]),
    ("Really?! Yes; it is.", ["Really?! Yes;", "it is."]),
]


@pytest.mark.parametrize(("text", "expected"), SPLIT_CASES)
def test_splits_at_sentence_boundaries(text: str, expected: list[str]) -> None:
    assert split_whole(text) == expected


def test_short_sentences_merge_with_the_next() -> None:
    assert split_whole("Hi! OK. Sure thing.") == ["Hi! OK.", "Sure thing."]
    assert split_whole("好。走吧。") == ["好。走吧。"]
    assert split_whole("Hi! OK. Sure thing.", min_units=1) == ["Hi!", "OK.", "Sure thing."]


def test_first_sentence_is_cut_at_a_soft_boundary_once_long_enough() -> None:
    text = "好的，我来帮你看看这个问题，首先我们需要确认一下你的系统版本，然后再说。下一句，不切开，对吧。"
    assert split_whole(text) == [
        "好的，我来帮你看看这个问题，",
        "首先我们需要确认一下你的系统版本，然后再说。",
        "下一句，不切开，对吧。",
    ]
    english = "Well, that is a very good question, and I will answer it. Sure, fine, okay then."
    assert split_whole(english) == [
        "Well, that is a very good question,",
        "and I will answer it.",
        "Sure, fine, okay then.",
    ]


def test_long_sentences_are_cut_at_the_last_soft_boundary_or_between_words() -> None:
    text = "一二三四五，六七八九十一二三，四五六七八九十一二三四五六七八九十。"
    sentences = split_whole(text, max_units=12, first_soft_units=100)
    assert sentences == ["一二三四五，", "六七八九十一二三，", "四五六七八九十一二三四五", "六七八九十。"]
    words = " ".join(f"w{i}" for i in range(25)) + "."
    cut = split_whole(words, max_units=10, first_soft_units=100)
    assert [count_units(s) for s in cut] == [10, 10, 5]
    assert " ".join(cut) == words


def test_waits_for_the_character_after_a_dot() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("Pi is 3.") == []
    assert splitter.feed("14 exactly") == []
    assert splitter.feed(". Next") == ["Pi is 3.14 exactly."]
    assert splitter.feed(" one, Mr.") == []
    assert splitter.feed(" Smith.") == []
    assert splitter.flush() == ["Next one, Mr. Smith."]


def test_cjk_boundaries_need_no_lookahead_but_closing_quotes_are_kept() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("今天天气很好。明") == ["今天天气很好。"]
    assert splitter.feed("天呢？") == []  # a closing quote might still come
    assert splitter.feed("”") == []
    assert splitter.feed("好") == ["明天呢？”"]


def test_preserves_text_and_trims_only_surrounding_whitespace() -> None:
    text = "  第一句。\n\n Second one here!   第三句，不会加空格。 "
    sentences = split_whole(text)
    assert sentences == ["第一句。", "Second one here!", "第三句，不会加空格。"]
    assert all(s == s.strip() and s in text for s in sentences)


def test_flush_readies_the_splitter_for_a_new_stream() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("好的，我来帮你看看这个问题，然后") == ["好的，我来帮你看看这个问题，"]
    assert splitter.flush() == ["然后"]
    assert splitter.feed("好的，我来帮你看看这个问题，然后") == ["好的，我来帮你看看这个问题，"]


def test_code_blocks_stay_whole_so_cleaning_can_drop_them() -> None:
    text = "Here is the code:\n```python\nx = 1. y = 2!\nprint(x)\n```\nRun it. 然后看结果。"
    sentences = split_in_deltas(text, 3)
    assert sentences == split_whole(text)
    assert sentences == [
        "Here is the code:",
        "```python\nx = 1. y = 2!\nprint(x)\n```",
        "Run it.",
        "然后看结果。",
    ]
    assert [clean_for_speech(s) for s in sentences] == ["Here is the code:", "", "Run it.", "然后看结果。"]
    assert split_whole("Look here:\n~~~\nnever closed. Still code!") == [
        "Look here:",
        "~~~\nnever closed. Still code!",
    ]


def test_rejects_impossible_limits() -> None:
    with pytest.raises(ValueError, match="min_units"):
        SentenceSplitter(min_units=5, max_units=3)


# --- SentenceSplitter: chunking never changes the result ---------------------------------------------

MIXED_TEXTS = [case[0] for case in SPLIT_CASES] + [
    "好的，我来帮你看看这个问题，首先我们需要确认一下你的系统版本。然后再说。",
    "The answer is 42. Or maybe 3.14159... Who knows? Dr. Who does, e.g. on TV.",
    "访问 https://docs.python.org/3.11/library/re.html 查看文档。Then email me@host.org. 谢谢！",
    "“你说什么？”他问。'Nothing!' she said. (Really?) 【好】",
    "这是一个非常长的句子没有任何标点符号它会一直持续下去直到超过最大长度限制为止然后被切开因为我们不能让它太长否则"
    "语音合成会很慢而且延迟很高真的很长很长很长",
    "Mr. and Mrs. Smith arrived at 5 p.m. They left at 9 p.m. and went home. U.S.A. is far.",
    "列表：\n1. 苹果\n2. 香蕉\n\n- item one\n- item two...\n结束",
    "Numbers: 1,000 and 2.5% and $3.50, also 3:45 pm; fine. 温度是-3.5度！",
    "Hmm.. ok. Eh?! No!!! 真的吗？？是的。。。",
    "代码如下：\n```js\nlet a = 1; a++;\n```\n好了。\n~~~\nunclosed. fence",
]


@pytest.mark.parametrize("text", MIXED_TEXTS)
@pytest.mark.parametrize("size", [1, 2, 7])
def test_deltas_of_any_size_give_the_same_sentences(text: str, size: int) -> None:
    whole = split_whole(text)
    assert split_in_deltas(text, size) == whole
    assert without_spaces("".join(whole)) == without_spaces(text)


def test_random_chunking_of_random_mixed_text_is_invariant() -> None:
    pieces = [
        "你好", "。", "！", "？", "，", "、", "：", "；", "…", "Hello", " ", "world", ".", "...", "!", "?",
        ",", ":", ";", "\n", "3", "14", "Mr", "e.g", "etc", "U.S", "example.com", "x@y.org", '"', "”", "“",
        "'", "(", ")", "）", "No", "5", "I", "A", "a", "天气", "😊", "```", "\n```py\n", "~~~",
    ]  # fmt: skip
    rng = random.Random(20261121)
    for _ in range(400):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 40)))
        options = {
            "min_units": rng.randint(1, 3),
            "max_units": rng.randint(3, 12),
            "first_soft_units": rng.randint(1, 6),
        }
        whole = split_whole(text, **options)
        splitter = SentenceSplitter(**options)
        chunked: list[str] = []
        position = 0
        while position < len(text):
            step = rng.randint(1, 5)
            chunked += splitter.feed(text[position : position + step])
            position += step
        chunked += splitter.flush()
        assert chunked == whole, (text, options)
        assert without_spaces("".join(whole)) == without_spaces(text)
        for sentence in whole[:-1]:
            if "```" in sentence or "~~~" in sentence:
                continue  # code blocks stay whole, whatever their length
            assert options["min_units"] <= count_units(sentence) <= options["max_units"], (sentence, text)


def test_hypothesis_chunking_invariance() -> None:
    hypothesis = pytest.importorskip("hypothesis")
    strategies = pytest.importorskip("hypothesis.strategies")
    alphabet = strategies.sampled_from(
        [*"你好天气。！？，、：；…ab Z3.,!?:;\n\"”“'()（）@/", "e.g", "Mr", "http://x.io"]
    )
    texts = strategies.lists(alphabet, max_size=40).map("".join)

    @hypothesis.settings(max_examples=100, deadline=None, database=None)
    @hypothesis.given(text=texts, cuts=strategies.lists(strategies.integers(1, 6), min_size=1, max_size=50))
    def check(text: str, cuts: list[int]) -> None:
        splitter = SentenceSplitter()
        chunked: list[str] = []
        position, index = 0, 0
        while position < len(text):
            step = cuts[index % len(cuts)]
            chunked += splitter.feed(text[position : position + step])
            position, index = position + step, index + 1
        assert chunked + splitter.flush() == split_whole(text)

    check()


# --- split_long_text ---------------------------------------------------------------------------------


def test_split_long_text_packs_sentences_without_losing_words() -> None:
    english = " ".join(f"This is sentence number {n}, which is fairly ordinary." for n in range(70))
    chinese = "这是中文句子，没有空格，但是很长很长。" * 100
    text = f"{english}\n\n{chinese}"
    assert len(text) > 5000
    pieces = split_long_text(text, max_chars=400)
    assert all(0 < len(piece) <= 400 for piece in pieces)
    assert without_spaces("".join(pieces)) == without_spaces(text)
    assert all(piece.endswith((".", "。")) for piece in pieces)  # every cut is at a sentence end
    assert all(piece in text for piece in pieces)


def test_split_long_text_cuts_an_overlong_sentence_at_soft_boundaries_then_spaces() -> None:
    clauses = "，".join(["这是一个比较长的分句"] * 60) + "。"
    pieces = split_long_text(clauses, max_chars=100)
    assert all(len(piece) <= 100 for piece in pieces)
    assert all(piece.endswith(("，", "。")) for piece in pieces)
    assert "".join(pieces) == clauses

    words = " ".join(["word"] * 300)
    pieces = split_long_text(words, max_chars=50)
    assert all(len(piece) <= 50 for piece in pieces) and " ".join(pieces) == words

    blob = "x" * 250
    assert split_long_text(f"Start. {blob} end.", max_chars=100) == [
        "Start.",
        "x" * 100,
        "x" * 100,
        "x" * 50 + " end.",
    ]


def test_split_long_text_keeps_short_text_whole() -> None:
    assert split_long_text("  Hello there. 你好。  ") == ["Hello there. 你好。"]
    assert split_long_text("   ") == []


# --- clean_for_speech --------------------------------------------------------------------------------

CLEAN_CASES = [
    ("# Title\n\nHere is **bold** and __strong__ and `code`.", "Title. Here is bold and strong and code."),
    ("*waves* Hello there! (laughs) How are you? [smiles]", "Hello there! How are you?"),
    ("你好（笑）！今天【挥手】天气不错😊。", "你好！今天天气不错。"),
    ("（叹气）好吧。", "好吧。"),
    (
        "Ok *leans back in the chair and smiles warmly at you* sure.",
        "Ok leans back in the chair and smiles warmly at you sure.",
    ),
    ("The price (about five dollars) is fine.", "The price (about five dollars) is fine."),
    ("他（我哥哥）来了。", "他（我哥哥）来了。"),
    ("It costs a lot (3 dollars).", "It costs a lot (3 dollars)."),
    ("See [the docs](https://example.com/docs) now.", "See the docs now."),
    ("Go to https://example.com/x?a=1. Or www.example.org!", "Go to. Or!"),
    ("Write to me@example.com or <https://x.io>, thanks.", "Write to or, thanks."),
    ("联系我test@example.com。", "联系我。"),
    ("![diagram](a.png) Look at this!", "Look at this!"),
    ("Before.\n```python\nprint('hi')\n```\nAfter.", "Before. After."),
    ("Unclosed:\n```\ncode forever", "Unclosed:"),
    ("Use ```inline``` here.", "Use inline here."),
    ("- Apples\n- Pears\n* Plums\n1. First item\n2) Second", "Apples. Pears. Plums. First item. Second"),
    ("| Name | Age |\n|---|:--:|\n| Bob | 5 |", "Name, Age. Bob, 5"),
    ("> quoted text\n---\nAfter rule", "quoted text. After rule"),
    ("标题\n正文内容。", "标题。正文内容。"),
    ("Family 👨‍👩‍👧‍👦 flag 🇨🇳 keycap 1️⃣ heart ❤️ thumbs 👍🏽 ok.", "Family flag keycap heart thumbs ok."),
    (
        "Use snake_case_names and _emphasis_ and ~~old~~ here.",
        "Use snake_case_names and emphasis and old here.",
    ),
    ("Hi. (waves). Bye", "Hi. Bye"),
    ("(laughs), okay then", "okay then"),
    ("2 * 3 = 6, and 1,000 items at 3:45.", "2 * 3 = 6, and 1,000 items at 3:45."),
    ("I use .NET and C# daily... really?!", "I use .NET and C# daily... really?!"),
    ("**注意**：这是 重点。", "注意：这是重点。"),
    ("Line<br>break and <b>bold</b>.", "Line break and bold."),
    ("Cited fact [1]. More [2][3].", "Cited fact. More."),
    ("", ""),
    ("🎉🎉 ✨", ""),
    ("  lots   of\tspace  ", "lots of space"),
]


@pytest.mark.parametrize(("text", "expected"), CLEAN_CASES)
def test_clean_for_speech(text: str, expected: str) -> None:
    assert clean_for_speech(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello\0 world, nul\0 bytes here.", "Hello world, nul bytes here."),  # a NUL ended espeak's text
        ("\x1b[1;31mWarning:\x1b[0m disk full", "Warning: disk full"),
        ("\x1b]0;title\x07Hi there", "Hi there"),
        ("tab\there\vand\fform", "tab here and form"),
        ("zero\u200bwidth\u200d joins\ufeff", "zerowidth joins"),
        ("soft\u00adhyphen", "softhyphen"),
        ("\u202eright to left\u202c", "right to left"),
        ("a\u00a0b\u2028c", "a b. c"),
        ("Hi \udcff there", "Hi there"),  # an undecodable command-line byte
        ("Hi caf\ufffd there", "Hi caf there"),  # an undecodable byte read from stdin
    ],
)
def test_clean_for_speech_drops_invisible_characters(text: str, expected: str) -> None:
    assert clean_for_speech(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "...",
        "!!! ???",
        "—",
        "**",
        "---",
        "# ---",
        "``` ```",
        "\u200b\u200b",
        "\x00",
        "\x1b[0m",
        "😀👍",
        "()",
        "\udcff",
        "\ufffd\ufffd",
    ],
)
def test_text_without_letters_or_digits_is_nothing_to_say(text: str) -> None:
    """Punctuation, symbols, markdown and zero-width text are refused like emoji-only text."""
    assert clean_for_speech(text) == ""


def test_invisible_characters_never_reach_the_voice() -> None:
    hypothesis = pytest.importorskip("hypothesis")
    strategies = pytest.importorskip("hypothesis.strategies")

    @hypothesis.given(strategies.text(max_size=40))
    def check(text: str) -> None:
        spoken = clean_for_speech(text)
        assert "\0" not in spoken and "\x1b" not in spoken
        assert all(not 0xD800 <= ord(c) <= 0xDFFF for c in spoken)
        assert spoken == "" or any(c.isalnum() for c in spoken)
        spoken.encode("utf-8")  # what a C voice library receives

    check()


def test_korean_keeps_the_spaces_between_its_words() -> None:
    assert clean_for_speech("안녕 하세요") == "안녕 하세요"
    assert clean_for_speech("你好 世界") == "你好世界"  # Chinese has no spaces between words
