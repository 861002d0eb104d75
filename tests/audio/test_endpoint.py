from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from digihuman.audio.endpoint import (
    N_SAMPLES,
    SmartTurn,
    TurnDetector,
    TurnParams,
    log_mel,
    mel_filters,
    sounds_unfinished,
)
from digihuman.testing import speech


def test_features_have_the_models_shape_and_front_padding() -> None:
    assert mel_filters().shape == (201, 80)
    short = speech.noise(1.0, -20)
    features = log_mel(short)
    assert features.shape == (80, 800) and features.dtype == np.float32
    # 1 s of sound sits at the end of the 8 s window: the first frames are the zero padding's floor
    assert features[:, :600].std(axis=1).max() < 1e-3 < features[:, -90:].std(axis=1).max()
    # audio longer than 8 s keeps its last 8 s
    long = np.concatenate([speech.noise(2.0, -20, seed=1), np.zeros(N_SAMPLES, np.float32)])
    assert np.allclose(log_mel(long), log_mel(np.zeros(N_SAMPLES, np.float32)))


def test_smart_turn_hears_a_finished_question_and_a_sentence_cut_off(smart_turn_onnx: Path) -> None:
    model = SmartTurn(smart_turn_onnx)
    finished = speech.join(
        speech.silence(0.3), speech.piper("What time does the museum open?"), speech.silence(0.3)
    )
    cut = speech.join(speech.silence(0.3), speech.piper("I went to the store and then"), speech.silence(0.3))
    assert model(finished) > 0.5 > model(cut)


def test_policy_asks_after_a_short_silence_and_again_as_it_grows() -> None:
    detector = TurnDetector(
        TurnParams(check_after_s=0.3, recheck_every_s=0.3, threshold=0.5, max_silence_s=1.6)
    )
    asked = [s for s in np.arange(0.032, 2.0, 0.032) if detector.should_check(round(s, 3))]
    assert asked[0] == pytest.approx(0.32, abs=0.02) and asked[1] - asked[0] == pytest.approx(0.3, abs=0.04)
    assert detector.ended(0.4, prob=0.2) is None
    assert detector.ended(0.8, prob=0.9) == "smart_turn"


def test_speech_resuming_forgets_the_answer_and_silence_caps_the_wait() -> None:
    detector = TurnDetector(TurnParams(max_silence_s=1.6))
    assert detector.ended(0.3, prob=0.9) == "smart_turn"
    assert not detector.should_check(0.0) and detector.ended(0.0) is None  # the user spoke again
    assert detector.ended(0.5) is None
    assert detector.ended(1.6, prob=0.01) == "silence"


def test_a_veto_leaves_only_the_silence_limit_for_this_pause() -> None:
    detector = TurnDetector(TurnParams(max_silence_s=1.6))
    assert detector.should_check(0.3)
    detector.veto()
    assert not detector.should_check(0.9)
    assert detector.ended(1.0) is None and detector.ended(1.6) == "silence"
    detector.should_check(0.0)  # speech again: Smart Turn is back
    assert detector.should_check(0.3)


def test_a_hold_makes_the_pause_be_judged_afresh_later() -> None:
    for detector in (TurnDetector(TurnParams(recheck_every_s=0.3)), TurnDetector(smart_turn=False)):
        detector.ended(0.9, prob=0.9)
        detector.hold(0.9)  # the user just interrupted the character: this pause is not yet evidence
        assert detector.ended(1.0) is None and detector.ended(1.1) is None
        assert detector.ended(1.2, prob=0.9 if detector.smart_turn else None) is not None
    detector = TurnDetector()
    detector.hold(0.5)
    detector.should_check(0.0)  # speech again: the hold is over
    assert detector.ended(0.4, prob=0.9) == "smart_turn"


def test_without_smart_turn_silence_alone_ends_the_turn() -> None:
    detector = TurnDetector(TurnParams(fallback_silence_s=0.8), smart_turn=False)
    assert not detector.should_check(0.5)
    assert detector.ended(0.7) is None and detector.ended(0.8) == "silence"


@pytest.mark.parametrize(
    ("text", "unfinished"),
    [
        ("I was thinking that maybe we could...", True),
        ("Can you remind me to?", True),
        ("My favorite kind of music is", True),
        ("So what I need is a", True),
        ("如果明天下雨的话", True),
        ("What time does the museum open on Sundays?", False),
        ("Where are you from?", False),
        ("My favorite color is blue", False),
        ("I think so.", False),
        ("我们明天见。", False),
        ("", False),
    ],
)
def test_transcripts_that_stop_mid_sentence(text: str, unfinished: bool) -> None:
    assert sounds_unfinished(text) is unfinished
