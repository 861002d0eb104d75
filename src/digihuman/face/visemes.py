"""Mouth shapes over time, from espeak phoneme timings or from the audio alone.

Two sources feed one track, frame by frame at the video rate:

- Phonemes: each espeak phoneme name (English or Mandarin, e.g. "a", "@", "O:", "p", "u:", "ts.h", "_:")
  maps to a target shape (jaw, wide, pucker, closed); diphthongs glide from their first vowel to their
  last. The audio's loudness gates the result, so pauses and silence close the mouth even where the
  timings are loose.
- Audio only (any voice without timings): loudness opens the jaw, the spectral centroid spreads the lips
  (bright sounds: i, e, s) or rounds them (dark sounds: o, u), and noisy frames (fricatives) open less.

Targets are sampled a little ahead of each frame (the audio is known before it is heard) and smoothed by
one-pole filters with a fast attack and a slower release: no jitter, and onsets are not late.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from digihuman.media import Timing


@dataclass(frozen=True, slots=True)
class MouthShape:
    jaw: float = 0.0
    wide: float = 0.0
    pucker: float = 0.0
    closed: float = 0.0

    def scaled(self, factor: float) -> MouthShape:
        return MouthShape(self.jaw * factor, self.wide * factor, self.pucker * factor, self.closed * factor)


REST = MouthShape()

# Shapes by phoneme class. Jaw is the opening (1 = a wide "ah"); closed presses the lips together.
_OPEN = MouthShape(jaw=0.95, wide=0.15)
_MID = MouthShape(jaw=0.5, wide=0.05)
_OPEN_MID = MouthShape(jaw=0.65, wide=0.1)
_FRONT_MID = MouthShape(jaw=0.55, wide=0.45)
_FRONT_CLOSE = MouthShape(jaw=0.25, wide=0.8)
_BACK_OPEN = MouthShape(jaw=0.75, pucker=0.5)
_BACK_MID = MouthShape(jaw=0.5, pucker=0.75)
_BACK_CLOSE = MouthShape(jaw=0.22, pucker=0.95)
_FRONT_ROUND = MouthShape(jaw=0.2, pucker=0.85)
_BILABIAL = MouthShape(closed=1.0)
_LABIODENTAL = MouthShape(jaw=0.08, wide=0.15, closed=0.45)
_DENTAL = MouthShape(jaw=0.2, wide=0.15)
_ALVEOLAR = MouthShape(jaw=0.22, wide=0.15)
_LATERAL = MouthShape(jaw=0.3, wide=0.1)
_SIBILANT = MouthShape(jaw=0.1, wide=0.35)
_POSTALVEOLAR = MouthShape(jaw=0.15, pucker=0.55)
_RHOTIC = MouthShape(jaw=0.2, pucker=0.4)
_GLIDE_W = MouthShape(jaw=0.12, pucker=0.85)
_GLIDE_J = MouthShape(jaw=0.18, wide=0.45)
_VELAR = MouthShape(jaw=0.3, wide=0.05)
_GLOTTAL = MouthShape(jaw=0.35)

# espeak-ng phoneme mnemonics (English and Mandarin), plus the IPA letters some front ends emit.
PHONEME_SHAPES: dict[str, MouthShape] = {
    # open vowels
    "a": _OPEN, "a#": _OPEN, "A": _OPEN, "A:": _OPEN, "A@": _OPEN, "aa": _OPEN, "a:": _OPEN, "&": _OPEN,
    "ɑ": _OPEN, "æ": _OPEN, "ä": _OPEN,
    # central vowels
    "@": _MID, "@-": _MID, "@2": _MID, "@5": _MID, "@L": _MID, "3": _MID, "3:": _MID, "@r": _MID,
    "ə": _MID, "ɜ": _MID, "ɚ": _MID, "ɝ": _MID, "ɤ": _MID,
    "V": _OPEN_MID, "ʌ": _OPEN_MID, "E": _OPEN_MID, "ɛ": _OPEN_MID,
    # front vowels
    "e": _FRONT_MID, "e:": _FRONT_MID, "E2": _FRONT_MID, "E:": _FRONT_MID, "e@": _FRONT_MID,
    "i": _FRONT_CLOSE, "i:": _FRONT_CLOSE, "I": _FRONT_CLOSE, "I2": _FRONT_CLOSE, "I#": _FRONT_CLOSE,
    "i.": _FRONT_CLOSE, "i[": _FRONT_CLOSE, "ɪ": _FRONT_CLOSE, "ɨ": _FRONT_CLOSE,
    # back vowels
    "0": _BACK_OPEN, "O": _BACK_OPEN, "O:": _BACK_OPEN, "O@": _BACK_OPEN, "Q": _BACK_OPEN, "ɔ": _BACK_OPEN,
    "ɒ": _BACK_OPEN, "o": _BACK_MID, "o:": _BACK_MID, "o@": _BACK_MID, "O2": _BACK_MID,
    "u": _BACK_CLOSE, "u:": _BACK_CLOSE, "U": _BACK_CLOSE, "U@": _BACK_CLOSE, "u@": _BACK_CLOSE,
    "ʊ": _BACK_CLOSE, "y": _FRONT_ROUND, "y:": _FRONT_ROUND, "Y": _FRONT_ROUND, "ʏ": _FRONT_ROUND,
    # consonants
    "p": _BILABIAL, "b": _BILABIAL, "m": _BILABIAL, "ph": _BILABIAL, "p#": _BILABIAL, "m-": _BILABIAL,
    "f": _LABIODENTAL, "v": _LABIODENTAL,
    "T": _DENTAL, "D": _DENTAL, "θ": _DENTAL, "ð": _DENTAL,
    "t": _ALVEOLAR, "d": _ALVEOLAR, "n": _ALVEOLAR, "th": _ALVEOLAR, "t#": _ALVEOLAR, "d#": _ALVEOLAR,
    "n-": _ALVEOLAR, "ɾ": _ALVEOLAR, "t2": _ALVEOLAR, "d2": _ALVEOLAR,
    "l": _LATERAL, "l-": _LATERAL, "L": _LATERAL,
    "s": _SIBILANT, "z": _SIBILANT, "ts": _SIBILANT, "dz": _SIBILANT, "ts.h": _SIBILANT, "tsh": _SIBILANT,
    "S": _POSTALVEOLAR, "Z": _POSTALVEOLAR, "tS": _POSTALVEOLAR, "dZ": _POSTALVEOLAR, "ʃ": _POSTALVEOLAR,
    "ʒ": _POSTALVEOLAR, "s.": _POSTALVEOLAR, "z.": _POSTALVEOLAR, "ts.": _POSTALVEOLAR, "tS.h": _POSTALVEOLAR,
    "ɕ": _SIBILANT, "tɕ": _SIBILANT, "ʂ": _POSTALVEOLAR, "ʐ": _POSTALVEOLAR,
    "r": _RHOTIC, "r-": _RHOTIC, "ɹ": _RHOTIC, "R": _RHOTIC,
    "w": _GLIDE_W, "W": _GLIDE_W, "j": _GLIDE_J, "J": _GLIDE_J, "ɥ": _GLIDE_W,
    "k": _VELAR, "g": _VELAR, "N": _VELAR, "x": _VELAR, "kh": _VELAR, "ŋ": _VELAR, "ɡ": _VELAR, "ç": _VELAR,
    "h": _GLOTTAL, "?": _GLOTTAL, "ʔ": _GLOTTAL, "ɦ": _GLOTTAL,
}  # fmt: skip

# Diphthongs (and Mandarin finals) glide from the first shape to the second across their duration.
GLIDES: dict[str, tuple[str, str]] = {
    "aI": ("a", "i"), "aU": ("a", "u"), "eI": ("e", "i"), "oU": ("o", "u"), "OI": ("O", "i"),
    "@U": ("@", "u"), "aI@": ("a", "@"), "aU@": ("a", "@"), "i@": ("i", "@"), "e@": ("e", "@"),
    "ai": ("a", "i"), "ei": ("e", "i"), "au": ("a", "u"), "ou": ("o", "u"), "ia": ("i", "a"),
    "ie": ("i", "e"), "ua": ("u", "a"), "uo": ("u", "o"), "ye": ("y", "e"), "iou": ("i", "u"),
    "uai": ("u", "i"), "uei": ("u", "i"), "iau": ("i", "u"),
}  # fmt: skip

_MARKS = "'ˈˌ,%=!^#-|;"
_VOWEL_STARTS: dict[str, MouthShape] = {
    "a": _OPEN, "A": _OPEN, "@": _MID, "3": _MID, "V": _OPEN_MID, "E": _OPEN_MID, "e": _FRONT_MID,
    "i": _FRONT_CLOSE, "I": _FRONT_CLOSE, "0": _BACK_OPEN, "O": _BACK_OPEN, "o": _BACK_MID,
    "u": _BACK_CLOSE, "U": _BACK_CLOSE, "y": _FRONT_ROUND, "Y": _FRONT_ROUND,
}  # fmt: skip


def phoneme_shapes(label: str) -> tuple[MouthShape, MouthShape] | None:
    """The (start, end) mouth shape of one espeak phoneme; None when it carries no articulation.

    Pauses ("_", "_:", "_!", "||") give the rest shape. Tones and stress marks alone give None, so the
    neighbouring phonemes hold the mouth.
    """
    label = label.strip()
    if not label or label.startswith("_") or label in ("||", "|", " "):
        return (REST, REST)
    if known := _named_shapes(label):
        return known
    bare = "".join(ch for ch in label if ch not in _MARKS and not ch.isdigit() and ch not in "ːˑ˥˦˧˨˩")
    if not bare:
        return None
    for candidate in (bare, bare.rstrip(":"), bare.rstrip(":.")):
        if known := _named_shapes(candidate):
            return known
    # Unknown names: judge by their letters (espeak names start with their main sound).
    vowels = [ch for ch in bare if ch in _VOWEL_STARTS]
    if vowels:
        return (_VOWEL_STARTS[vowels[0]], _VOWEL_STARTS[vowels[-1]])
    head = bare[0]
    shape = PHONEME_SHAPES.get(head) or PHONEME_SHAPES.get(head.lower()) or _ALVEOLAR
    return (shape, shape)


def _named_shapes(name: str) -> tuple[MouthShape, MouthShape] | None:
    """The (start, end) shape of a phoneme or glide listed by exactly this name."""
    if name in GLIDES:
        first, last = GLIDES[name]
        return (PHONEME_SHAPES[first], PHONEME_SHAPES[last])
    shape = PHONEME_SHAPES.get(name)
    return (shape, shape) if shape is not None else None


# --- audio features ---------------------------------------------------------------------------------

WINDOW_S = 0.05
# Features for the frame shown at t come from the audio around t + LOOKAHEAD_S: the attack filter's lag
# then lands the opening on the sound, not after it.
LOOKAHEAD_S = 0.03
SILENCE_DB = -60.0
# With timings, the jaw is this much the phoneme's target and the rest the voice's loudness.
PHONEME_JAW_SHARE = 0.7
# Phoneme targets are averaged over this span around each frame: neighbouring sounds blend
# (coarticulation), so the jaw does not snap shut on every consonant between two vowels.
COARTICULATION_S = 0.08


class LoudnessScale:
    """Maps RMS dB to 0..1 relative to the voice's own level, learnt as it speaks.

    The reference follows the loudest recent frames up at once and drifts down slowly, so quiet and
    loud voices both use the whole range, and the scale carries over from one sentence to the next.
    """

    def __init__(self, reference_db: float = -24.0) -> None:
        self.reference_db = reference_db

    def observe(self, level_db: float, dt_s: float) -> None:
        if level_db > self.reference_db:
            self.reference_db = level_db
        else:
            self.reference_db = max(self.reference_db - 1.5 * dt_s, -45.0)

    def loudness(self, level_db: float) -> float:
        """0 at 32 dB under the reference (or true silence), 1 at the reference less 4 dB."""
        if level_db <= SILENCE_DB:
            return 0.0
        return float(np.clip((level_db - (self.reference_db - 32.0)) / 28.0, 0.0, 1.0))

    def gate(self, level_db: float) -> float:
        """How much sound there is: 0 in pauses, 1 in speech (a soft threshold 30 dB down)."""
        if level_db <= SILENCE_DB:
            return 0.0
        x = float(np.clip((level_db - (self.reference_db - 36.0)) / 10.0, 0.0, 1.0))
        return x * x * (3.0 - 2.0 * x)


@dataclass(frozen=True, slots=True)
class AudioFeatures:
    level_db: float
    centroid_hz: float
    noisiness: float  # spectral flatness in 0..1: high for fricatives and breath


def audio_features(window: np.ndarray, sample_rate: int) -> AudioFeatures:
    """Level, spectral centroid and flatness of one short window of mono float PCM."""
    if len(window) == 0:
        return AudioFeatures(-120.0, 0.0, 0.0)
    samples = window.astype(np.float32, copy=False)
    rms = float(np.sqrt(np.mean(samples * samples)))
    level_db = 20.0 * math.log10(rms + 1e-9)
    if level_db <= SILENCE_DB:
        return AudioFeatures(level_db, 0.0, 0.0)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples)).astype(np.float32)))
    freqs = np.fft.rfftfreq(len(samples), 1.0 / sample_rate)
    band = (freqs >= 80.0) & (freqs <= 7000.0)
    power = spectrum[band] ** 2 + 1e-12
    centroid = float(np.sum(freqs[band] * power) / np.sum(power))
    flatness = float(np.exp(np.mean(np.log(power))) / np.mean(power))
    return AudioFeatures(level_db, centroid, flatness)


def shape_from_audio(features: AudioFeatures, scale: LoudnessScale) -> MouthShape:
    """A mouth shape for a voice with no timings: loudness opens, brightness spreads, darkness rounds."""
    loud = scale.loudness(features.level_db)
    if loud <= 0.0:
        return REST
    noise = float(np.clip((features.noisiness - 0.15) / 0.35, 0.0, 1.0))
    bright = float(np.clip((features.centroid_hz - 1800.0) / 1800.0, 0.0, 1.0))
    dark = float(np.clip((1300.0 - features.centroid_hz) / 700.0, 0.0, 1.0))
    return MouthShape(
        jaw=loud**0.9 * (1.0 - 0.6 * noise) * (1.0 - 0.3 * dark),
        wide=0.7 * loud * bright,
        pucker=0.6 * loud * dark,
    )


# --- smoothing ----------------------------------------------------------------------------------------


class Smoother:
    """One-pole filters per channel with separate attack and release times."""

    def __init__(
        self,
        fps: int,
        attack_s: float = 0.035,
        release_s: float = 0.04,
        closed_attack_s: float = 0.02,
        closed_release_s: float = 0.03,
    ) -> None:
        self._attack = 1.0 - math.exp(-1.0 / (fps * attack_s))
        self._release = 1.0 - math.exp(-1.0 / (fps * release_s))
        self._closed_attack = 1.0 - math.exp(-1.0 / (fps * closed_attack_s))
        self._closed_release = 1.0 - math.exp(-1.0 / (fps * closed_release_s))
        self._state = [0.0, 0.0, 0.0, 0.0]

    def step(self, target: MouthShape) -> MouthShape:
        goals = (target.jaw, target.wide, target.pucker, target.closed)
        for index, goal in enumerate(goals):
            current = self._state[index]
            # The lips meet and part fast (a closure lasts a frame or two); everything else eases.
            if index == 3:
                rate = self._closed_attack if goal > current else self._closed_release
            else:
                rate = self._attack if goal > current else self._release
            self._state[index] = current + rate * (goal - current)
        return MouthShape(*self._state)


# --- the per-utterance track --------------------------------------------------------------------------


class MouthTrack:
    """Mouth shapes for one utterance, frame by frame, as its audio (and timings) stream in.

    Frame i (shown from i / fps) is ready once the audio reaches i / fps + LOOKAHEAD_S + WINDOW_S / 2, or
    when the utterance is finished. Not thread-safe: feed and read it from one task at a time.
    """

    def __init__(self, fps: int, scale: LoudnessScale | None = None) -> None:
        self.fps = fps
        self.scale = scale or LoudnessScale()
        self.sample_rate = 0
        self._audio = np.zeros(0, np.float32)
        self._audio_len = 0
        self._phonemes: dict[tuple[str, float], Timing] = {}
        self._sorted: list[Timing] = []
        self._finished = False
        self._smoother = Smoother(fps)
        self._emphasis = 0.0
        self.next_frame = 0

    @property
    def duration_s(self) -> float:
        return self._audio_len / self.sample_rate if self.sample_rate else 0.0

    @property
    def has_timings(self) -> bool:
        return bool(self._phonemes)

    def frame_count(self) -> int:
        """Frames that cover all the audio received so far."""
        return math.ceil(self.duration_s * self.fps - 1e-6) if self.sample_rate else 0

    def add_audio(self, pcm: np.ndarray, sample_rate: int, start_s: float) -> None:
        if self.sample_rate and sample_rate != self.sample_rate:
            raise ValueError(f"sample rate changed within an utterance ({self.sample_rate} -> {sample_rate})")
        self.sample_rate = sample_rate
        samples = np.asarray(pcm, dtype=np.float32).reshape(-1)
        start = max(round(start_s * sample_rate), 0)
        end = start + len(samples)
        if end > len(self._audio):
            grown = np.zeros(max(end, 2 * len(self._audio)), np.float32)
            grown[: self._audio_len] = self._audio[: self._audio_len]
            self._audio = grown
        self._audio[start:end] = samples
        self._audio_len = max(self._audio_len, end)

    def add_phonemes(self, phonemes: tuple[Timing, ...] | list[Timing]) -> None:
        if not phonemes:
            return
        for timing in phonemes:
            self._phonemes[(timing.label, timing.start_s)] = timing
        self._sorted = sorted(self._phonemes.values(), key=lambda t: t.start_s)

    def finish(self) -> None:
        self._finished = True

    def ready_frames(self) -> int:
        """How many frames (from the start) can be computed now."""
        total = self.frame_count()
        if self._finished or not self.sample_rate:
            return total
        heard_s = self.duration_s - LOOKAHEAD_S - WINDOW_S / 2
        return max(0, min(total, math.floor(heard_s * self.fps) + 1))

    def next_shapes(self, count: int) -> list[tuple[MouthShape, float]]:
        """The next `count` frames' (mouth shape, speech emphasis 0..1), in order."""
        out = []
        for _ in range(count):
            out.append(self._frame(self.next_frame))
            self.next_frame += 1
        return out

    def _frame(self, index: int) -> tuple[MouthShape, float]:
        frame_s = index / self.fps
        at_s = frame_s + LOOKAHEAD_S
        features = audio_features(self._window(at_s), self.sample_rate or 16000)
        self.scale.observe(features.level_db, 1.0 / self.fps)
        gate = self.scale.gate(features.level_db)
        loud = self.scale.loudness(features.level_db)
        if self.has_timings:
            shape = self._phoneme_target(frame_s)
            # The timing gives the shape; the voice gives the effort: louder syllables open wider, and
            # the jaw keeps moving with the syllables between the phoneme targets.
            jaw = (PHONEME_JAW_SHARE * shape.jaw + (1.0 - PHONEME_JAW_SHARE) * loud) * (1.0 - shape.closed)
            target = MouthShape(jaw, shape.wide, shape.pucker, shape.closed).scaled(gate)
        else:
            target = shape_from_audio(features, self.scale)
        shape = self._smoother.step(target)
        self._emphasis += (1.0 - math.exp(-1.0 / (self.fps * 0.3))) * (loud - self._emphasis)
        return shape, self._emphasis

    def _window(self, centre_s: float) -> np.ndarray:
        if not self.sample_rate:
            return np.zeros(0, np.float32)
        half = round(WINDOW_S * self.sample_rate / 2)
        centre = round(centre_s * self.sample_rate)
        lo, hi = max(centre - half, 0), min(centre + half, self._audio_len)
        return self._audio[lo:hi] if hi > lo else np.zeros(0, np.float32)

    def _phoneme_target(self, frame_s: float) -> MouthShape:
        """The target for the frame shown from `frame_s`.

        Jaw and lip shape: the overlap-weighted mean over COARTICULATION_S around the frame (looking a
        little ahead). Lip closure: how much of the frame's own display period a closure covers, so the
        lips meet while the "m" is heard, not a frame or two before.
        """
        centre = frame_s + LOOKAHEAD_S
        lo, hi = centre - COARTICULATION_S / 2, centre + COARTICULATION_S / 2
        shown_lo, shown_hi = frame_s, frame_s + 1.0 / self.fps
        total = jaw = wide = pucker = closed = 0.0
        for timing in self._sorted:
            if timing.end_s <= min(lo, shown_lo):
                continue
            if timing.start_s >= max(hi, shown_hi):
                break
            shapes = phoneme_shapes(timing.label)
            if shapes is None:
                continue
            overlap = min(hi, timing.end_s) - max(lo, timing.start_s)
            if overlap > 0:
                length = max(timing.end_s - timing.start_s, 1e-3)
                middle = (max(lo, timing.start_s) + min(hi, timing.end_s)) / 2
                progress = float(np.clip((middle - timing.start_s) / length, 0.0, 1.0))
                shape = _lerp(shapes[0], shapes[1], progress)
                total += overlap
                jaw += overlap * shape.jaw
                wide += overlap * shape.wide
                pucker += overlap * shape.pucker
            shown = min(shown_hi, timing.end_s) - max(shown_lo, timing.start_s)
            if shown > 0 and shapes[0].closed > 0:
                closed = max(closed, shapes[0].closed * min(1.0, 2.0 * shown * self.fps))
        if total <= 0:
            return MouthShape(closed=closed)
        return MouthShape(jaw / total, wide / total, pucker / total, closed)


def _lerp(a: MouthShape, b: MouthShape, x: float) -> MouthShape:
    return MouthShape(
        a.jaw + x * (b.jaw - a.jaw), a.wide + x * (b.wide - a.wide),
        a.pucker + x * (b.pucker - a.pucker), a.closed + x * (b.closed - a.closed),
    )  # fmt: skip
