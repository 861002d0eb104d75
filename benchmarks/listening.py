"""Listening: what it costs to listen, how fast the words come, when the turn ends, and barge-in.

(a) idle CPU: the listener's per-frame work (Silero VAD, with and without the echo canceller) on a silent and
    on a noisy stream, as % of one core (target <= 15 %).
(b) ASR real-time factor: faster-whisper base, int8, 2 threads, beam 1, on Piper sentences.
(c) end of turn on the labelled set (testing/turn_set.py: finished turns, and turns with a 0.6-1.2 s pause
    mid-sentence; Piper and espeak English, espeak Chinese), through the real Listener: premature rate (a turn
    ended inside a pause), late rate (a finished turn ended only by the silence limit), the delay from the
    end of speech (audio time, and with compute), and the VAD's onset lag (what the pre-roll must cover).
(d) barge-in in a simulated room (testing/room.py): the character speaks through a loudspeaker (30-200 ms,
    6-20 dB, reflections, noise), the user interrupts with real sentences, in real time (decoding races the
    speech); catch rate, latency from the user's onset and self-interruptions, plus 5 minutes of the
    character alone (target: >= 95 % caught, 0 self-interruptions).

Needs the real-model fixtures (scripts/fetch_test_models.py). Prints one JSON object.
Run: .venv/bin/python benchmarks/listening.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import AsyncIterator

import numpy as np

from digihuman.asr.faster_whisper import FasterWhisperASR
from digihuman.audio.echo import EchoCanceller
from digihuman.audio.listener import Interruption, Listener, ListenParams, SpeechStarted, SpeechStopped
from digihuman.audio.source import FRAME_S, SAMPLE_RATE, AudioFrame, Framer, MemorySource
from digihuman.audio.vad import SileroVAD, VADSegmenter
from digihuman.config import Settings
from digihuman.testing import room, speech, turn_set


def models(args: argparse.Namespace) -> dict[str, str]:
    """The model files: given, or fetched (once) by name through digihuman.models."""
    from digihuman.models import resolve

    speech.find_piper_voice = lambda: resolve(args.piper_voice, kind="voice")
    return {
        "whisper-base": str(resolve(args.asr_model, kind="asr")),
        "silero-vad": str(resolve(args.vad_model, kind="vad")),
        "smart-turn": str(resolve(args.turn_model, kind="turn")),
    }


def idle_cpu(paths: dict[str, str], seconds: float) -> dict[str, float]:
    out = {}
    streams = {"silent": speech.silence(seconds), "noisy": speech.noise(seconds, -40)}
    for name, audio in streams.items():
        for with_echo in (False, True):
            segmenter = VADSegmenter(SileroVAD(paths["silero-vad"]))
            echo = EchoCanceller() if with_echo else None
            framer = Framer()
            frames = framer.feed(audio)
            started = time.process_time()
            for frame in frames:
                samples, allow = frame.samples, True
                if echo is not None:
                    samples, allow = echo.process(samples)
                segmenter.step(samples, frame.t_s, allow)
            cpu = time.process_time() - started
            key = f"{name}{'_with_echo_canceller' if with_echo else ''}_cpu_pct_of_core"
            out[key] = round(100 * cpu / (len(frames) * FRAME_S), 2)
    return out


def asr_rtf(paths: dict[str, str]) -> dict[str, float]:
    asr = FasterWhisperASR(paths["whisper-base"], language="en")
    started = time.perf_counter()
    asr.load()
    load_s = time.perf_counter() - started
    texts = [*turn_set.COMPLETE_EN[:4], " ".join(room.CHARACTER_LINES)]
    rows = []
    for text in texts:
        audio = speech.join(speech.silence(0.3), speech.piper(text), speech.silence(0.3))
        started = time.perf_counter()
        result = asr.transcribe_blocking(audio)
        elapsed = time.perf_counter() - started
        rows.append((len(audio) / SAMPLE_RATE, elapsed, speech.wer(text, result.text)))
    return {
        "asr_load_s": round(load_s, 2),
        "asr_rtf_short": round(statistics.mean(e / d for d, e, _ in rows[:-1]), 3),
        "asr_rtf_long": round(rows[-1][1] / rows[-1][0], 3),
        "asr_long_audio_s": round(rows[-1][0], 1),
        "asr_wer_mean": round(statistics.mean(w for _, _, w in rows), 3),
    }


def listener(paths: dict[str, str], echo: EchoCanceller | None = None) -> Listener:
    asr = FasterWhisperASR(paths["whisper-base"])
    return Listener(asr, paths["silero-vad"], paths["smart-turn"], ListenParams(), echo=echo, partials=False)


async def end_of_turn(paths: dict[str, str], per_kind: int | None) -> dict[str, object]:
    cases = turn_set.build(per_kind=per_kind)
    premature = late = 0
    audio_delays: list[float] = []
    full_delays: list[float] = []
    onset_lags: list[float] = []
    by_voice: dict[str, list[int]] = {}
    for case in cases:
        listen = listener(paths)
        stops: list[SpeechStopped] = []
        end_of_turn_s = None
        first_start = None
        async for event in listen.events(MemorySource(case.audio, realtime=False)):
            if isinstance(event, SpeechStarted) and first_start is None:
                first_start = event.t_s
            if isinstance(event, SpeechStopped):
                stops.append(event)
            if (
                getattr(event, "kind", "") == "utterance"
                and event.user_speech_end_s >= case.complete_at_s - 0.3
            ):  # type: ignore[union-attr]
                end_of_turn_s = event.end_of_turn_s if end_of_turn_s is None else end_of_turn_s  # type: ignore[union-attr]
        early = any(s.speech_end_s < case.complete_at_s - 0.3 for s in stops)
        final = next((s for s in stops if s.speech_end_s >= case.complete_at_s - 0.3), None)
        premature += early
        is_late = final is None or final.reason != "smart_turn"
        late += is_late
        stats = by_voice.setdefault(case.voice, [0, 0, 0])
        stats[0] += 1
        stats[1] += early
        stats[2] += is_late
        if final is not None:
            audio_delays.append(final.t_s - case.complete_at_s)
        if end_of_turn_s is not None:
            full_delays.append(end_of_turn_s)
        if first_start is not None:
            onset_lags.append(first_start - turn_set.LEAD_S)
    unfinished = sum(1 for c in cases if c.pause)
    return {
        "eot_cases": len(cases),
        "eot_premature_rate": round(premature / max(1, unfinished), 3),
        "eot_late_rate": round(late / len(cases), 3),
        "eot_mean_delay_audio_s": round(statistics.mean(audio_delays), 3),
        "eot_p90_delay_audio_s": round(float(np.percentile(audio_delays, 90)), 3),
        "eot_mean_delay_with_compute_s": round(statistics.mean(full_delays), 3),
        "eot_by_voice": {v: {"n": n, "premature": p, "late": la} for v, (n, p, la) in by_voice.items()},
        "vad_onset_lag_max_s": round(max(onset_lags), 3),
        "vad_onset_lag_mean_s": round(statistics.mean(onset_lags), 3),
    }


class RoomSource:
    """The microphone of a simulated room: before each frame, the player hands the echo canceller the
    reference it is playing (as a real player does while it renders)."""

    def __init__(self, played: np.ndarray, mic: np.ndarray, echo: EchoCanceller, realtime: bool) -> None:
        self.played, self.mic, self.echo, self.realtime = played, mic, echo, realtime

    started = 0.0  # loop time of the stream's first sample

    async def frames(self) -> AsyncIterator[AudioFrame]:
        loop = asyncio.get_running_loop()
        self.started = started = loop.time()
        for i, (ref, near) in enumerate(zip(room.frames(self.played), room.frames(self.mic), strict=False)):
            self.echo.play(ref, SAMPLE_RATE)
            # Real time when decoding races the speech (barge-in latency); as fast as possible otherwise.
            wait = started + (i + 1) * FRAME_S - loop.time() if self.realtime else 0.0
            await asyncio.sleep(max(0.0, wait))
            yield AudioFrame(near.copy(), i * FRAME_S, loop.time())

    async def close(self) -> None:
        pass


async def barge_in(paths: dict[str, str], quick: bool) -> dict[str, object]:
    rooms = [
        room.Room(30, 6, seed=1),
        room.Room(80, 10, seed=2),
        room.Room(120, 14, seed=3),
        room.Room(200, 20, seed=4),
    ]
    caught = real = self_interruptions = 0
    latencies: list[float] = []
    per_room: dict[str, str] = {}
    played = room.character_speech(40.0)
    for setting in rooms[:2] if quick else rooms:
        mic = setting.echo(played)
        spans = []
        for k, line in enumerate(room.USER_LINES):
            onset = 3.0 + 9.0 * k + setting.delay_ms / 1000
            said = speech.piper(line)
            if len(said) / SAMPLE_RATE < 0.5:
                continue
            at = int(onset * SAMPLE_RATE)
            mic[at : at + len(said)] += said
            spans.append((onset, onset + len(said) / SAMPLE_RATE))
        echo = EchoCanceller()
        listen = listener(paths, echo)
        listen.set_speaking(True)
        hits = set()
        source = RoomSource(played, mic, echo, realtime=True)
        async for event in listen.events(source):
            if isinstance(event, Interruption):
                owner = next((i for i, (a, b) in enumerate(spans) if a - 0.5 <= event.t_s <= b + 2.0), None)
                if owner is None:
                    self_interruptions += 1
                elif owner not in hits:
                    hits.add(owner)
                    # wall time from the user's first sound to the event (the listener may lag the audio)
                    latencies.append(asyncio.get_running_loop().time() - source.started - spans[owner][0])
        real += len(spans)
        caught += len(hits)
        per_room[f"{setting.delay_ms:.0f}ms_{setting.attenuation_db:.0f}dB"] = f"{len(hits)}/{len(spans)}"
    # the character alone for 5 simulated minutes: its own voice must never interrupt it
    alone_s = 60.0 if quick else 300.0
    alone = room.character_speech(alone_s / len(rooms))
    alone_interruptions = 0
    for setting in rooms:
        echo = EchoCanceller()
        listen = listener(paths, echo)
        listen.set_speaking(True)
        async for event in listen.events(RoomSource(alone, setting.echo(alone), echo, realtime=False)):
            alone_interruptions += isinstance(event, Interruption)
    return {
        "barge_in_real_interruptions": real,
        "barge_in_catch_rate": round(caught / max(1, real), 3),
        "barge_in_caught_by_room": per_room,
        "barge_in_mean_latency_s": round(statistics.mean(latencies), 3) if latencies else None,
        "barge_in_self_interruptions_during_double_talk": self_interruptions,
        "echo_alone_simulated_s": alone_s,
        "echo_alone_self_interruptions": alone_interruptions,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a subset of each measurement (a minute or two)")
    parser.add_argument("--asr-model", default="whisper:base", help="faster-whisper model name or folder")
    parser.add_argument("--vad-model", default=Settings().listen.vad_model, help="Silero VAD ONNX")
    parser.add_argument("--turn-model", default=Settings().listen.turn_model, help="Smart Turn ONNX")
    parser.add_argument("--piper-voice", default="piper:en_US-joe-medium", help="voice for the test speech")
    args = parser.parse_args()
    paths = models(args)
    result: dict[str, object] = {}
    result |= idle_cpu(paths, 20.0 if args.quick else 60.0)
    result |= asr_rtf(paths)
    result |= await end_of_turn(paths, 2 if args.quick else None)
    result |= await barge_in(paths, args.quick)
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
