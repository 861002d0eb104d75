"""Idle life on one continuous clock: blinks, breathing and slow small head motion.

Everything is a deterministic function of time (given the seed), so any frame at any time can be rendered
in any order or on any thread, and the motion is smooth by construction: no jitter, no state to drift.
"""

from __future__ import annotations

import bisect
import math
import threading

import numpy as np

# Blink timing (s): lids close fast, stay shut a moment, open more slowly. The hold is at least one
# frame period at 25 fps, so every blink shows one fully closed frame.
BLINK_CLOSE_S = 0.06
BLINK_HOLD_S = 0.045
BLINK_OPEN_S = 0.09
BLINK_DURATION_S = BLINK_CLOSE_S + BLINK_HOLD_S + BLINK_OPEN_S
DOUBLE_BLINK_CHANCE = 0.15
DOUBLE_BLINK_GAP_S = 0.3
BREATH_HZ = 0.25
# Head motion as fractions of the rig's full range (3 degrees of roll, etc.): about a degree.
ROLL_AMOUNT = 0.35
NOD_AMOUNT = 0.3
TURN_AMOUNT = 0.35
BREATH_AMOUNT = 0.35


class IdleLife:
    def __init__(self, seed: int | None = None) -> None:
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self._blinks: list[float] = []
        self._next_blink = float(self._rng.uniform(0.8, 2.5))
        # Three sines per axis at unrelated slow frequencies: smooth, never periodic to the eye.
        self._waves = [
            (self._rng.uniform(0.05, 0.23, 3), self._rng.uniform(0, 2 * math.pi, 3)) for _ in range(3)
        ]
        self._breath_phase = float(self._rng.uniform(0, 2 * math.pi))

    def blink(self, t_s: float) -> float:
        """Eyelid closure 0..1 at time `t_s`."""
        with self._lock:
            self._plan_until(t_s + 1.0)
            index = bisect.bisect_right(self._blinks, t_s) - 1
            if index < 0:
                return 0.0
            return blink_profile(t_s - self._blinks[index])

    def head(self, t_s: float) -> tuple[float, float, float, float]:
        """(roll, nod, turn, breath) weights at `t_s`."""
        roll, nod, turn = (
            amount * float(np.mean(np.sin(2 * math.pi * freqs * t_s + phases)))
            for amount, (freqs, phases) in zip(
                (ROLL_AMOUNT, NOD_AMOUNT, TURN_AMOUNT), self._waves, strict=True
            )
        )
        breath = BREATH_AMOUNT * math.sin(2 * math.pi * BREATH_HZ * t_s + self._breath_phase)
        # Mean of three unit sines stays within +-1; scale so typical motion reaches the full amount.
        return (1.6 * roll, 1.6 * nod, 1.6 * turn, breath)

    def _plan_until(self, t_s: float) -> None:
        while self._next_blink <= t_s:
            start = self._next_blink
            self._blinks.append(start)
            if self._rng.random() < DOUBLE_BLINK_CHANCE:
                self._blinks.append(start + DOUBLE_BLINK_GAP_S)
                start += DOUBLE_BLINK_GAP_S
            # Intervals of 2 to 6 s, most often around 3 to 4.
            self._next_blink = start + 2.0 + 4.0 * float(self._rng.beta(2.0, 2.5))


def blink_profile(since_s: float) -> float:
    if since_s < 0 or since_s >= BLINK_DURATION_S:
        return 0.0
    if since_s < BLINK_CLOSE_S:
        return _ease(since_s / BLINK_CLOSE_S)
    if since_s < BLINK_CLOSE_S + BLINK_HOLD_S:
        return 1.0
    return 1.0 - _ease((since_s - BLINK_CLOSE_S - BLINK_HOLD_S) / BLINK_OPEN_S)


def _ease(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)
