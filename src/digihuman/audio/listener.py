"""The listening half of a conversation: microphone frames in, speech events out.

source -> (echo canceller) -> Silero VAD -> end of turn (VAD silence + Smart Turn) -> ASR, with partial
transcripts while the user speaks. One `Listener` per stream (session); the models behind it are shared.

Events, in order for one user turn: `SpeechStarted`, `Partial`*, `SpeechStopped`, `Utterance`. While the
character speaks (`set_speaking(True)`) a user turn is a possible barge-in: once it has lasted
`barge_in_min_s` and its words are more than a backchannel ("mm-hm", "对"), `Interruption` is emitted (the
session stops the reply); a turn that ends without such words gives `FalseInterruption` instead of an
`Utterance` (a cough, noise, "uh-huh": the character goes on).

Times: `*_s` on the stream's timeline (seconds of audio since the source started). Latencies
(`end_of_turn_s`, `asr_final_s`) are from the end of the user's speech: the audio time that passed until the
decision, plus the compute time after the deciding frame arrived, so they mean the same for a live
microphone and for a file read as fast as possible.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from digihuman.asr.base import ASR, Transcript, normalize_language
from digihuman.asr.streaming import StreamingTranscriber, StreamParams
from digihuman.audio.echo import EchoCanceller
from digihuman.audio.endpoint import WINDOW_S, SmartTurn, TurnDetector, TurnParams, sounds_unfinished
from digihuman.audio.source import FRAME_S, SAMPLE_RATE, AudioFrame, AudioSource
from digihuman.audio.vad import SileroVAD, VADParams, VADSegmenter, VADStep
from digihuman.media import Timing

if TYPE_CHECKING:
    from digihuman.config import Settings

# Whole-utterance replies that only acknowledge: they do not take the turn from the character.
BACKCHANNELS = frozenset(
    {"mm", "mmm", "mhm", "mm-hmm", "mm-hm", "mmhmm", "uh-huh", "uhhuh", "uh", "huh", "hmm", "hm", "yeah"}
    | {"yep", "yes", "ok", "okay", "right", "sure", "oh", "ah", "um", "wow", "cool", "nice", "alright"}
)
_BACKCHANNEL_PHRASES = ("i see", "got it", "all right", "i know")
# Hums however Whisper spells them ("Mmmm", "mm-mm", "Mm-hm", "Uh-huh", "Hmm", "Ahh"): only these letters.
_HUM_PART = r"(h*m+|u+h*m*|a+h+|o+h+|h+u+h+|m+h+m+)"
# No English word begins with "mm" or "hm": Whisper's "MMI", "MMO" for a hum are hums too.
_HUM = re.compile(rf"{_HUM_PART}(-{_HUM_PART})*|(mm|hm)[\w-]*")
_BACKCHANNEL_ZH = frozenset("嗯对是好哦啊噢喔行呀的哈")
_FINAL_PAD_S = 0.15  # audio kept after the last voiced frame for the final decode (soft word endings)
# After an interruption the character falls silent within 0.1 s and its echo within the canceller's tail;
# a character still heard after this long is not fading (it was not stopped), and holds the turn no longer.
_ECHO_FADE_S = 1.0


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    t_s: float
    kind: str = "speech_started"


@dataclass(frozen=True, slots=True)
class Partial:
    text: str
    t_s: float
    kind: str = "partial"


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    t_s: float  # when the end of turn was decided
    speech_end_s: float
    reason: str  # "smart_turn" | "silence" | "end_of_stream"
    kind: str = "speech_stopped"


@dataclass(frozen=True, slots=True)
class Utterance:
    text: str
    language: str
    audio: np.ndarray = field(repr=False)  # 16 kHz; the turn's last `max_audio_s` (pre-roll included)
    start_s: float
    user_speech_end_s: float
    end_of_turn_s: float  # from the end of speech to the end-of-turn decision
    asr_final_s: float  # from the end of speech to the final transcript
    words: tuple[Timing, ...] = ()
    interrupted: bool = False  # spoken over the character (a confirmed barge-in)
    kind: str = "utterance"


@dataclass(frozen=True, slots=True)
class Interruption:
    t_s: float
    speech_s: float
    text: str
    kind: str = "interruption"


@dataclass(frozen=True, slots=True)
class FalseInterruption:
    t_s: float
    text: str
    kind: str = "false_interruption"


ListenEvent = SpeechStarted | Partial | SpeechStopped | Utterance | Interruption | FalseInterruption


@dataclass(frozen=True, slots=True)
class ListenParams:
    vad: VADParams = field(default_factory=VADParams)
    turn: TurnParams = field(default_factory=TurnParams)
    stream: StreamParams = field(default_factory=StreamParams)
    language: str | None = None
    barge_in_min_s: float = 0.3  # voiced time before an utterance over the character can interrupt it
    max_audio_s: float = 30.0  # utterance audio kept for the event (ASR commits longer speech in windows)


def is_backchannel(text: str) -> bool:
    """True for an acknowledgement alone ("Mm-hmm.", "Yeah, okay.", "对对", "嗯") or no words at all."""
    words = re.sub(r"[^\w\s'-]", " ", text.lower()).split()
    if not words:
        return True
    if all(re.fullmatch(r"[\u4e00-\u9fff]+", w) for w in words):
        return all(ch in _BACKCHANNEL_ZH for w in words for ch in w)
    rest = f" {' '.join(words)} "
    for phrase in _BACKCHANNEL_PHRASES:
        rest = rest.replace(f" {phrase} ", " ")
    return all(w.strip("-'") in BACKCHANNELS or _HUM.fullmatch(w.strip("-'")) for w in rest.split())


class Listener:
    """Turns one stream's frames into speech events. Blocking model work runs in worker threads."""

    def __init__(
        self,
        asr: ASR,
        vad_model: str,
        turn_model: str | None = None,
        params: ListenParams | None = None,
        echo: EchoCanceller | None = None,
        partials: bool = True,
    ) -> None:
        self.params = p = params or ListenParams()
        self.segmenter = VADSegmenter(SileroVAD(vad_model), p.vad)
        self.smart_turn = SmartTurn(turn_model) if turn_model else None
        self.detector = TurnDetector(p.turn, smart_turn=self.smart_turn is not None)
        stream = p.stream if partials else StreamParams(0.0, p.stream.window_s, p.stream.prompt_chars)
        self.transcriber = StreamingTranscriber(asr, p.language, stream)
        self.echo = echo
        self.speaking = False
        self._audio: deque[np.ndarray] = deque(maxlen=int(p.max_audio_s / FRAME_S) + 1)
        self._reset_turn()

    def set_speaking(self, speaking: bool) -> None:
        """The character is (or stopped) speaking: user speech now may be a barge-in."""
        self.speaking = speaking

    def _reset_turn(self) -> None:
        self._start_s = 0.0
        self._audio_start_s = 0.0
        self._barge_in = False  # this turn began while the character spoke
        self._confirmed = False  # ... and its words were more than a backchannel
        self._confirmed_at_s = 0.0
        self._prepared = False
        self._forced = False
        self._audio.clear()
        self.detector.reset()
        self.segmenter.reset()

    async def events(self, source: AudioSource) -> AsyncIterator[ListenEvent]:
        """Listen to `source` until it ends; a turn still open then is finished."""
        last: AudioFrame | None = None
        async for frame in source.frames():
            last = frame
            async for event in self.feed(frame):
                yield event
        if last is not None and self.segmenter.in_speech:
            async for event in self._end_turn("end_of_stream", self.segmenter.speech_end_s, last):
                yield event

    async def run(self, source: AudioSource, on_event: Callable[[ListenEvent], object]) -> None:
        """Like `events`, calling `on_event` (a function or a coroutine function) for each."""
        async for event in self.events(source):
            result = on_event(event)
            if asyncio.iscoroutine(result):
                await result

    def _frame_work(self, samples: np.ndarray, t_s: float) -> tuple[VADStep, np.ndarray]:
        allow = True
        if self.echo is not None:
            samples, allow = self.echo.process(samples)
        return self.segmenter.step(samples, t_s, allow), samples

    async def feed(self, frame: AudioFrame) -> AsyncIterator[ListenEvent]:
        """One frame in; the events it causes out (as they happen: `SpeechStopped` before the final text)."""
        step, samples = await asyncio.to_thread(self._frame_work, frame.samples, frame.t_s)
        if step.started:
            assert step.audio is not None
            self._start_s = step.start_s
            self._audio_start_s = frame.end_s - len(step.audio) / SAMPLE_RATE
            self._barge_in = self.speaking
            self.transcriber.reset()
            self.transcriber.add(step.audio)
            self._audio.extend(np.split(step.audio, len(step.audio) // len(samples)))
            yield SpeechStarted(step.start_s)
            return
        if not step.in_speech:
            return
        self.transcriber.add(samples)
        self._audio.append(samples)
        if step.silence_s <= 0.0:
            self._prepared = False  # speech (re)started: any speculative final is stale
        # Over the character, decode as soon as the speech is long enough to interrupt: the words decide.
        # Its length is the span since speech began, not the voiced frames: the echo gate mutes some of them.
        span = self.segmenter.heard_end_s - self._start_s
        urgent = self._barge_in and not self._confirmed and not self._forced
        if urgent and span >= self.params.barge_in_min_s:
            self._forced = True
        if (partial := await self.transcriber.maybe_partial(force=urgent and self._forced)) is not None:
            yield Partial(partial, frame.end_s)
            for event in self._check_barge_in(partial, frame, span):
                yield event
        if step.silence_s >= _FINAL_PAD_S and not self._prepared:
            # Decode what was said so far as soon as the pause has its padding (before Smart Turn is asked,
            # or the silence limit hit): if the turn ends here, the text is ready or nearly.
            await self.transcriber.prepare_final(self._offset(step.speech_end_s + _FINAL_PAD_S))
            self._prepared = True
        prob = None
        if self.detector.should_check(step.silence_s):
            assert self.smart_turn is not None
            prob = await asyncio.to_thread(self.smart_turn, self._recent_audio(WINDOW_S))
        reason = self.detector.ended(step.silence_s, prob)
        if reason and self._barge_in and not self._confirmed:
            # Over the character, the words decide: "wait" interrupts it, "mm-hm" or a cough does not. The
            # words decoded so far may already say so: then say it before the final decode.
            await self.transcriber.settle()
            if not (interruption := self._check_barge_in(self.transcriber.partial, frame, span)):
                so_far = await self.transcriber.final(self._offset(step.speech_end_s + _FINAL_PAD_S))
                interruption = self._check_barge_in(so_far.text, frame, span)
            for event in interruption:
                yield event
                # People seldom stop right after "wait, ...": the character stops now, and the turn ends at
                # a pause heard without its voice over it, as one utterance rather than two.
                self.detector.hold(step.silence_s)
                reason = None
        fading = frame.end_s - self._confirmed_at_s < _ECHO_FADE_S
        if reason and self._confirmed and fading and self.echo is not None and self.echo.reference_active:
            # The character's voice (or its echo in the room) is still fading: the gate may have muted the
            # user's words, so this "pause" may be none. Judge it once the room is quiet.
            self.detector.hold(step.silence_s)
            reason = None
        if reason == "smart_turn":
            # The final text is needed before anyone can answer anyway: let it overrule a prosody that
            # sounded finished when the words plainly are not ("...could you remind me to").
            so_far = await self.transcriber.final(self._offset(step.speech_end_s + _FINAL_PAD_S))
            if sounds_unfinished(so_far.text):
                self.detector.veto()
                reason = None
        if reason:
            async for event in self._end_turn(reason, step.speech_end_s, frame):
                yield event

    def _check_barge_in(self, text: str, frame: AudioFrame, span_s: float) -> list[ListenEvent]:
        if not self._barge_in or self._confirmed or span_s < self.params.barge_in_min_s:
            return []
        if is_backchannel(text):
            return []
        self._confirmed, self._confirmed_at_s = True, frame.end_s
        return [Interruption(frame.end_s, span_s, text)]

    def _offset(self, t_s: float) -> float:
        """A stream time as seconds into the transcriber's buffer (which starts with the pre-roll)."""
        return max(0.0, t_s - self._audio_start_s)

    def _recent_audio(self, seconds: float) -> np.ndarray:
        frames = list(self._audio)[-int(seconds / FRAME_S) :]
        return np.concatenate(frames) if frames else np.zeros(0, np.float32)

    async def _end_turn(
        self, reason: str, speech_end_s: float, frame: AudioFrame
    ) -> AsyncIterator[ListenEvent]:
        decided = self._latency(frame, speech_end_s)
        heard_end_s = self.segmenter.heard_end_s
        yield SpeechStopped(frame.end_s, speech_end_s, reason)
        upto = self._offset(speech_end_s + _FINAL_PAD_S)
        transcript: Transcript = await self.transcriber.final(upto)
        asr_final = self._latency(frame, speech_end_s)
        if self._barge_in and not self._confirmed:
            span = heard_end_s - self._start_s
            if not is_backchannel(transcript.text) and span >= self.params.barge_in_min_s:
                self._confirmed = True
                yield Interruption(frame.end_s, span, transcript.text)
            else:
                yield FalseInterruption(frame.end_s, transcript.text)
        utterance = Utterance(
            text=transcript.text,
            language=transcript.language,
            audio=self._recent_audio(self.params.max_audio_s),
            start_s=self._start_s,
            user_speech_end_s=speech_end_s,
            end_of_turn_s=decided,
            asr_final_s=asr_final,
            words=transcript.words,
            interrupted=self._barge_in,
        )
        keep = not self._barge_in or self._confirmed
        self._reset_turn()
        self.transcriber.reset()
        if keep:
            yield utterance

    @staticmethod
    def _latency(frame: AudioFrame, speech_end_s: float) -> float:
        """Audio time from the speech end to `frame`'s end, plus compute time since the frame arrived."""
        computing = asyncio.get_running_loop().time() - frame.at if frame.at else 0.0
        return max(0.0, frame.end_s - speech_end_s) + max(0.0, computing)

    async def aclose(self) -> None:
        await self.transcriber.cancel()


def listen_params(settings: Settings, language: str | None = None) -> ListenParams:
    """The `[listen]` and `[asr]` config as listener parameters."""
    listen, asr = settings.listen, settings.asr
    return ListenParams(
        vad=VADParams(listen.vad_threshold, listen.min_speech_s, listen.min_silence_s, listen.pre_roll_s),
        turn=TurnParams(
            check_after_s=listen.turn_check_after_s,
            threshold=listen.turn_threshold,
            max_silence_s=listen.max_silence_s,
            fallback_silence_s=listen.fallback_silence_s,
        ),
        stream=StreamParams(partial_every_s=asr.partial_every_s, window_s=asr.window_s),
        language=normalize_language(language or asr.language),
        barge_in_min_s=listen.barge_in_min_s,
    )


def create_listener(
    settings: Settings,
    asr: ASR,
    *,
    language: str | None = None,
    partials: bool = True,
    echo: EchoCanceller | None = None,
) -> Listener:
    """A listener for one stream, configured from settings. Blocking (loads the VAD and Smart Turn)."""
    return Listener(
        asr,
        settings.listen.vad_model,
        settings.listen.turn_model or None,
        listen_params(settings, language),
        echo=echo,
        partials=partials,
    )


async def transcribe_file(
    path: str | Path, settings: Settings, language: str | None = None
) -> AsyncIterator[Utterance]:
    """`digihuman listen`: the utterances of an audio file, read as fast as the models go."""
    from digihuman.asr.factory import create_asr
    from digihuman.audio.source import FileSource

    source = FileSource(path, realtime=False)
    asr = create_asr(settings.asr, language)
    listener = await asyncio.to_thread(create_listener, settings, asr, language=language, partials=False)
    try:
        async for event in listener.events(source):
            if isinstance(event, Utterance) and not Transcript(event.text).empty:
                yield event
    finally:
        await listener.aclose()
        await asr.aclose()
