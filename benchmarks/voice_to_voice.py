"""Voice to voice: from the end of the user's speech to the first audio played, on local models only.

Spoken questions (2-4 s each, made with a Piper voice when one is given, else espeak) go through the real
listening chain at real-time pace (Silero VAD, Smart Turn, faster-whisper) into a conversation session whose
brain is the built-in llama.cpp one, and whose voice plays at real-time pace. Prints one JSON object: each
turn's stages (end of turn, final transcript, first token, first sentence, first audio, first played) and
their medians, counted from the end of the user's speech.

    .venv/bin/python benchmarks/voice_to_voice.py --model MODEL.gguf --asr-model WHISPER_DIR \\
        --vad-model silero_vad.onnx --turn-model smart-turn-v3.2-cpu.onnx [--speech-voice VOICE.onnx]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from digihuman.asr.factory import create_asr
from digihuman.audio.listener import create_listener
from digihuman.audio.source import SAMPLE_RATE, FileSource, Framer
from digihuman.character import find_character
from digihuman.config import Settings
from digihuman.ears import hear
from digihuman.llm import make_llm
from digihuman.output.speaker import SpeakerSink
from digihuman.session import Conversation
from digihuman.tts.base import TTS

QUESTIONS = [
    "What is the capital of France?",
    "How many legs does a spider have?",
    "Can you tell me a fun fact about the moon?",
    "What should I cook for dinner tonight?",
    "What is your favourite colour?",
    "How far away is the sun from the earth?",
    "Which animal is the largest on the planet?",
    "What time of year do leaves fall from trees?",
    "Why is the sky blue during the day?",
    "What is a good name for a small black cat?",
    "How do bees make honey in their hives?",
    "What is the tallest mountain in the world?",
]
# From the end of speech: end of turn decided + final transcript, then the reply's first token, sentence,
# voice audio, and audio played (= voice to voice).
STAGES = ("asr_final_s", "llm_first_token_s", "first_sentence_s", "tts_first_audio_s", "first_audio_played_s")


async def speak(tts: TTS, text: str) -> np.ndarray:
    chunks = [chunk async for chunk in tts.synthesize(text, "en")]
    framer = Framer(chunks[0].sample_rate)
    frames = [*framer.feed(np.concatenate([c.pcm for c in chunks])), *framer.flush()]
    return np.concatenate([f.samples for f in frames])


async def make_questions(folder: Path, voice: str | None, count: int) -> list[Path]:
    import soundfile

    if voice:
        from digihuman.tts.piper import PiperTTS

        tts: TTS = PiperTTS(voice)
    else:
        from digihuman.tts.espeak import EspeakTTS

        tts = EspeakTTS()
    paths = []
    try:
        for index, text in enumerate(QUESTIONS[:count]):
            pcm = await speak(tts, text)
            silence = np.zeros(int(0.3 * SAMPLE_RATE), np.float32)
            tail = np.zeros(int(2.5 * SAMPLE_RATE), np.float32)  # room for the answer to start
            path = folder / f"q{index:02d}.wav"
            soundfile.write(str(path), np.concatenate([silence, 0.8 * pcm, tail]), SAMPLE_RATE)
            paths.append(path)
    finally:
        await tts.aclose()
    return paths


async def measure(args: argparse.Namespace) -> dict[str, object]:
    settings = Settings()
    settings.llm.backend = "llamacpp"
    settings.llm.model = args.model
    settings.llm.num_predict = 48
    settings.asr.model = args.asr_model
    settings.listen.vad_model = args.vad_model
    settings.listen.turn_model = args.turn_model
    settings.face.size = 256
    with tempfile.TemporaryDirectory() as tmp:
        questions = await make_questions(Path(tmp), args.speech_voice, args.questions)
        session = Conversation(find_character("ada"), settings, llm=make_llm(settings.llm))
        speaker = SpeakerSink()
        await speaker.start()
        await session.start([speaker])
        asr = create_asr(settings.asr, "en")
        await asr.warm_up()  # type: ignore[attr-defined]
        listener = await asyncio.to_thread(create_listener, settings, asr, language="en")
        rows = []
        try:
            for path in questions:
                started = time.monotonic()
                await hear(session, listener, FileSource(path, realtime=True))
                await asyncio.sleep(0.1)
                await session.wait_idle()
                turn = session.turns[-1]
                metrics = turn.metrics.as_dict()
                rows.append(
                    {
                        "question": turn.user_text,
                        "reply": turn.text_shown,
                        "voice_to_voice_s": metrics["voice_to_voice_s"],
                        **{stage: metrics.get(stage) for stage in STAGES},
                        "wall_s": round(time.monotonic() - started, 2),
                    }
                )
        finally:
            await session.aclose()
            await listener.aclose()
            await asr.aclose()

    def median(key: str) -> float | None:
        values = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
        return round(statistics.median(values), 3) if values else None

    return {
        "benchmark": "voice_to_voice",
        "questions": len(rows),
        "median_voice_to_voice_s": median("voice_to_voice_s"),
        "median_stage_s": {stage: median(stage) for stage in STAGES},
        "target_s": 1.2,
        "turns": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="the GGUF for the built-in brain")
    parser.add_argument("--asr-model", default="base", help="faster-whisper model name or folder")
    parser.add_argument("--vad-model", default=Settings().listen.vad_model)
    parser.add_argument("--turn-model", default=Settings().listen.turn_model)
    parser.add_argument("--speech-voice", help="a Piper .onnx voice for the questions (default: espeak)")
    parser.add_argument("--questions", type=int, default=10)
    print(json.dumps(asyncio.run(measure(parser.parse_args()))))


if __name__ == "__main__":
    main()
