"""A labelled end-of-turn set, made at test time: finished turns, and turns with a mid-sentence pause.

Finished: a whole sentence, then silence. Unfinished: the first part of a sentence (synthesized on its own,
so it ends on a dangling "because", "to", "的话"), a pause of 0.6-1.2 s, then the rest. A detector errs
*prematurely* when it ends the turn inside that pause, and *late* when a finished turn is only ended by the
silence timeout. English comes from Piper (joe) and espeak, Chinese from espeak.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from digihuman.testing import speech

COMPLETE_EN = (
    "Could you tell me what the weather will be like tomorrow?",
    "I would like to book a table for two people tonight.",
    "That sounds great, thank you very much.",
    "What time does the museum open on Sundays?",
    "My favourite colour is blue.",
    "Please turn off the lights in the kitchen.",
    "Do you know any good Italian restaurants nearby?",
    "I finished reading the book you recommended.",
)
INCOMPLETE_EN = (
    ("I was thinking that maybe we could", "go to the beach this weekend."),
    ("The thing I really wanted to ask you about is", "the schedule for next week."),
    ("I went to the store and then", "I came back home."),
    ("Can you remind me to", "call my mother tomorrow?"),
    ("My favourite kind of music is", "probably jazz."),
    ("I don't know if I should", "take the job or not."),
    ("Yesterday I met a friend who", "just moved here from Canada."),
    ("So what I need is a", "new pair of running shoes."),
)
COMPLETE_ZH = (
    "今天天气很好，我们去公园散步吧。",
    "你能告诉我明天几点开会吗？",
    "谢谢你的帮助，我明白了。",
    "我想预订两个人的桌子。",
)
INCOMPLETE_ZH = (
    ("我觉得我们应该", "早点出发。"),
    ("如果明天下雨的话", "我们就在家看电影。"),
    ("我刚才想说的是", "这个问题很重要。"),
    ("因为我今天有点累所以", "想早点休息。"),
)
PAUSES_S = (0.6, 0.9, 1.2)
LEAD_S = 0.5
TAIL_S = 2.5


@dataclass(frozen=True)
class TurnCase:
    name: str
    audio: np.ndarray
    complete_at_s: float  # where the turn's speech really ends
    pause: tuple[float, float] | None  # (start, end) of the mid-sentence pause, if any
    voice: str


def _voices(zh: bool) -> list[tuple[str, Callable[[str], np.ndarray]]]:
    if zh:
        return [("espeak-zh", lambda t: speech.espeak(t, "zh"))]
    return [("piper", speech.piper), ("espeak-en", lambda t: speech.espeak(t, "en"))]


def build(
    voices: tuple[str, ...] = ("piper", "espeak-en", "espeak-zh"), per_kind: int | None = None
) -> list[TurnCase]:
    """The labelled cases; `per_kind` takes only the first N sentences of each list (fast tests)."""
    cases: list[TurnCase] = []
    noise_seed = 0
    for zh, complete, incomplete in ((False, COMPLETE_EN, INCOMPLETE_EN), (True, COMPLETE_ZH, INCOMPLETE_ZH)):
        for voice, say in _voices(zh):
            if voice not in voices:
                continue
            for i, text in enumerate(complete[:per_kind]):
                spoken = say(text)
                audio = speech.join(speech.silence(LEAD_S), spoken, speech.silence(TAIL_S))
                noise_seed += 1
                audio = audio + speech.noise(len(audio) / speech.SAMPLE_RATE, -60, noise_seed)
                cases.append(
                    TurnCase(f"{voice}/complete/{i}", audio, LEAD_S + len(spoken) / 16000, None, voice)
                )
            for i, (head, rest) in enumerate(incomplete[:per_kind]):
                first, second = say(head), say(rest)
                pause = PAUSES_S[i % len(PAUSES_S)]
                audio = speech.join(
                    speech.silence(LEAD_S), first, speech.silence(pause), second, speech.silence(TAIL_S)
                )
                noise_seed += 1
                audio = audio + speech.noise(len(audio) / speech.SAMPLE_RATE, -60, noise_seed)
                start = LEAD_S + len(first) / 16000
                end_s = start + pause + len(second) / 16000
                cases.append(TurnCase(f"{voice}/incomplete/{i}", audio, end_s, (start, start + pause), voice))
                if voice.startswith("espeak"):
                    cases.append(
                        _spliced(f"{voice}/spliced/{i}", head, rest, "zh" if zh else "en", pause, voice)
                    )
    return cases


def _spliced(name: str, head: str, rest: str, language: str, pause: float, voice: str) -> TurnCase:
    """The whole sentence spoken at once, cut after `head`'s last word: the pause keeps the
    mid-sentence intonation (a fragment spoken alone ends on a falling, finished-sounding tone)."""
    joiner = "" if language == "zh" else " "
    pcm, words = speech.espeak_timed(head + joiner + rest, language)
    head_words = len(head.split()) if language == "en" else None
    if head_words is not None:
        cut_s = words[head_words - 1][2]
    else:  # Chinese: the word whose span ends where the head's characters end
        spans = [w for w in words if head.endswith(w[0]) or w[0] in head]
        cut_s = max(w[2] for w in spans if head.find(w[0]) + len(w[0]) == len(head)) if spans else words[0][2]
    cut = int(cut_s * speech.SAMPLE_RATE)
    first, second = speech.trim(pcm[:cut]), speech.trim(pcm[cut:])
    audio = speech.join(speech.silence(LEAD_S), first, speech.silence(pause), second, speech.silence(TAIL_S))
    audio = audio + speech.noise(len(audio) / speech.SAMPLE_RATE, -60, len(name))
    start = LEAD_S + len(first) / 16000
    return TurnCase(name, audio, start + pause + len(second) / 16000, (start, start + pause), voice)
