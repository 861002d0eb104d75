"""The `digihuman` command line. Each command parses its flags here and calls into the package."""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from digihuman import __version__
from digihuman.crash import log_crash, one_line
from digihuman.errors import CharacterError, UserError
from digihuman.frontend.runner import Stopped, raise_stopped

if TYPE_CHECKING:  # imported lazily at run time, to keep start-up fast
    from digihuman.config import Settings
    from digihuman.frontend.chat import TerminalOptions
    from digihuman.frontend.mic import MicOptions

log = logging.getLogger("digihuman")


def _settings(args: argparse.Namespace) -> Settings:  # Settings is imported lazily: fast start-up
    from digihuman.config import load_settings

    return load_settings(args.config)


# --- commands ---------------------------------------------------------------------------------------


def cmd_say(args: argparse.Namespace) -> int:
    from digihuman.config import set_setting
    from digihuman.frontend.say import say

    settings = _settings(args)
    if args.size is not None:
        set_setting(settings, "face", "size", args.size, flag="--size")
    if args.output is not None and not args.output.strip():
        raise UserError("-o needs a file name, e.g. -o reply.mp4")
    say(
        args.text if args.text != "-" else sys.stdin.read(),
        settings=settings,
        character_name=args.character or settings.character,
        output=Path(args.output) if args.output is not None else None,
        play=args.play,
    )
    return 0


def _apply_llm_flags(settings: Settings, args: argparse.Namespace) -> None:
    if args.llm:
        settings.llm.backend = args.llm
        if not args.llm_url and args.llm == "openai" and settings.llm.url.rstrip("/").endswith(":11434"):
            settings.llm.url = "http://127.0.0.1:8080/v1"  # the Ollama default would be wrong here
    if args.llm_url:
        from digihuman.config import set_setting

        set_setting(settings, "llm", "url", args.llm_url, flag="--llm-url")
    if args.model:
        settings.llm.model = args.model


def _terminal_options(args: argparse.Namespace, settings: Settings) -> TerminalOptions:
    from digihuman.frontend.chat import TerminalOptions

    return TerminalOptions(
        character_name=args.character or settings.character,
        window=not args.no_window,
        record=Path(args.record) if args.record else None,
        metrics=args.metrics,
    )


def cmd_chat(args: argparse.Namespace) -> int:
    from digihuman.frontend.chat import chat

    settings = _settings(args)
    _apply_llm_flags(settings, args)
    if args.once is not None and not args.once.strip():
        raise UserError("--once needs some text")
    return chat(settings, _terminal_options(args, settings), once=args.once)


def _mic_options(args: argparse.Namespace, spec: str) -> MicOptions:
    from digihuman.frontend.mic import MicOptions

    return MicOptions(spec, push_to_talk=getattr(args, "push_to_talk", False), language=args.language)


def cmd_talk(args: argparse.Namespace) -> int:
    from digihuman.frontend.chat import talk

    settings = _settings(args)
    _apply_llm_flags(settings, args)
    return talk(settings, _terminal_options(args, settings), mic=_mic_options(args, args.mic))


def cmd_run(args: argparse.Namespace) -> int:
    from digihuman.frontend.chat import run

    settings = _settings(args)
    _apply_llm_flags(settings, args)
    if args.duration is not None and args.duration <= 0:
        raise UserError("--duration must be a positive number of seconds")
    mic = _mic_options(args, args.mic) if args.mic is not None else None
    options = _terminal_options(args, settings)
    return run(settings, options, camera=args.camera, duration_s=args.duration, mic=mic)


def cmd_characters_list(args: argparse.Namespace) -> int:
    from digihuman.character import BrokenCharacter, scan_characters

    characters = scan_characters()
    if args.json:
        rows = [
            {"name": None, "id": c.id, "source": c.source, "path": str(c.path), "error": str(c.error)}
            if isinstance(c, BrokenCharacter)
            else {
                "name": c.name,
                "id": c.id,
                "language": c.language,
                "source": c.source,
                "voice": c.spec.voice.backend,
                "face": c.spec.face.backend,
                "path": str(c.path),
            }
            for c in characters
        ]
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    for c in characters:
        if isinstance(c, BrokenCharacter):  # listed, so the user sees what to fix; the others still work
            print(f"{_pad(c.id, 16)} {'(broken)':<16} {'':<4} {c.source:<8} error: {c.error}")
            continue
        print(
            f"{_pad(c.id, 16)} {_pad(c.name, 16)} {c.language:<4} {c.source:<8} "
            f"voice={c.spec.voice.backend} face={c.spec.face.backend}"
        )
    return 0


def _pad(text: str, width: int) -> str:
    """Left-align in `width` terminal columns: CJK characters take two, so str.ljust misaligns them."""
    import unicodedata

    columns = sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)
    return text + " " * max(0, width - columns)


def cmd_characters_new(args: argparse.Namespace) -> int:
    from digihuman.character import create_character
    from digihuman.tts.factory import download_hint, voice_spec

    settings = _settings(args)
    voice = voice_spec(args.voice_backend, args.voice_name, args.language)
    character = create_character(
        args.name,
        Path(args.portrait),
        language=args.language,
        voice_sample=Path(args.voice) if args.voice else None,
        persona=args.persona or "",
        voice=voice,
        face_size=settings.face.size,
    )
    print(f"created character '{character.id}' in {character.path}")
    if voice is not None and (hint := download_hint(voice)):
        print(hint)
    return 0


def cmd_characters_show(args: argparse.Namespace) -> int:
    from digihuman.character import BrokenCharacter, find_entry

    character = find_entry(args.name)
    file = character.path / "character.toml"
    try:
        text = file.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise CharacterError(f"cannot read {file}: {exc.strerror or exc}") from None
    print(f"# {character.path}")
    print(text, end="")
    if isinstance(character, BrokenCharacter):  # the file, to fix it; then what is wrong with it
        raise character.error
    return 0


def cmd_config_show(args: argparse.Namespace) -> int:
    from digihuman.config import config_path, to_toml

    settings = _settings(args)
    print(f"# effective config (file: {config_path(args.config)}; env DIGIHUMAN_<SECTION>__<KEY> overrides)")
    print(to_toml(settings), end="")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from digihuman.doctor import as_json, render, run_checks

    checks = run_checks(_settings(args))
    print(json.dumps(as_json(checks), ensure_ascii=False) if args.json else render(checks))
    return 0


def cmd_listen(args: argparse.Namespace) -> int:
    import asyncio

    from digihuman.audio.listener import transcribe_file

    settings = _settings(args)

    async def listen() -> int:
        count = 0
        async for u in transcribe_file(Path(args.file), settings, args.language):
            count += 1
            if args.json:
                row = {"text": u.text, "language": u.language, "start_s": round(u.start_s, 3)}
                row |= {"end_s": round(u.user_speech_end_s, 3), "asr_final_s": round(u.asr_final_s, 3)}
                print(json.dumps(row, ensure_ascii=False), flush=True)
            else:
                print(u.text, flush=True)
        return 0 if count else 1

    return asyncio.run(listen())


def cmd_serve(args: argparse.Namespace) -> int:
    from digihuman.config import set_setting
    from digihuman.server.app import serve

    settings = _settings(args)
    _apply_llm_flags(settings, args)
    if args.character:
        settings.character = args.character
    if args.max_sessions is not None:
        set_setting(settings, "server", "max_sessions", args.max_sessions, flag="--max-sessions")
    server = settings.server
    tls = (args.tls_cert, args.tls_key) if args.tls_cert or args.tls_key else None
    serve(settings, args.host or server.host, args.port or server.port, args.token or server.token, tls=tls)
    return 0


def cmd_bench_animator(args: argparse.Namespace) -> int:
    from digihuman.face.bench import run_animator_benchmark

    print(json.dumps(run_animator_benchmark(size=args.size, threads=args.threads, frames=args.frames)))
    return 0


# --- parser -----------------------------------------------------------------------------------------


def _command(
    sub: argparse._SubParsersAction, name: str, func: Callable[[argparse.Namespace], int], help_text: str
) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(func=func)
    return parser


def _session_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--character", help="character id or name (default: config `character`)")
    parser.add_argument(
        "--llm",
        choices=["ollama", "openai", "llamacpp"],
        help="LLM backend; llamacpp runs a GGUF model in-process (default: config llm.backend)",
    )
    parser.add_argument("--llm-url", metavar="URL", help="LLM server URL (OpenAI-compatible ones end in /v1)")
    parser.add_argument(
        "--model", help="model name, or a .gguf path with --llm llamacpp (default: config llm.model)"
    )
    parser.add_argument("--record", metavar="DIR", help="write each turn to DIR/NNN.mp4 and DIR/turns.jsonl")
    parser.add_argument("--no-window", action="store_true", help="do not open the window")
    parser.add_argument("--metrics", action="store_true", help="print each turn's JSON metrics line")


def _mic_flags(parser: argparse.ArgumentParser, default: str | None) -> None:
    parser.add_argument(
        "--mic",
        default=default,
        metavar="DEVICE|FILE",
        help="microphone index or name, or a sound file (WAV, FLAC, MP3, OGG) played at its own pace"
        + (" (default: the default microphone)" if default else "; without it the companion only sees"),
    )
    parser.add_argument("--language", help="the language you speak, e.g. en or zh (default: detected)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="digihuman",
        description="A local digital human: it sees, listens, thinks, speaks and shows a talking face.",
    )
    parser.add_argument("--version", action="version", version=f"digihuman {__version__}")
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="config TOML (default: $DIGIHUMAN_CONFIG or $DIGIHUMAN_HOME/config.toml)",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    say = _command(sub, "say", cmd_say, "Speak a text with a character's voice and talking face.")
    say.add_argument("text", help="what to say ('-' reads standard input)")
    say.add_argument("-c", "--character", help="character id or name (default: config `character`)")
    say.add_argument("-o", "--output", metavar="FILE.mp4", help="write an MP4 (H.264 + AAC)")
    say.add_argument("--play", action="store_true", help="show the window and play the audio")
    say.add_argument("--size", type=int, help="frame size in pixels (default: config face.size)")

    chat = _command(
        sub, "chat", cmd_chat, "Talk with a character: type a line, it answers in voice and face, streaming."
    )
    _session_flags(chat)
    chat.add_argument(
        "--once", metavar="TEXT", help="run one turn with TEXT and exit (0 when something was spoken)"
    )

    talk = _command(
        sub,
        "talk",
        cmd_talk,
        "Speak with a character: it answers when you finish; talk over it to interrupt. Lines typed on "
        "stdin are user messages too.",
    )
    _session_flags(talk)
    _mic_flags(talk, default="default")
    talk.add_argument(
        "--push-to-talk",
        action="store_true",
        help="talk only while Space is held in the window, or between two presses of Enter in the terminal",
    )

    run = _command(
        sub,
        "run",
        cmd_run,
        "The proactive companion: watch the camera and speak when something happens; lines typed "
        "on stdin are user messages.",
    )
    _session_flags(run)
    run.add_argument(
        "--camera",
        default="0",
        metavar="SOURCE",
        help="camera index, a video file (played at its own rate) or a folder of images (default: 0)",
    )
    run.add_argument("--duration", type=float, metavar="S", help="stop cleanly after S seconds")
    _mic_flags(run, default=None)

    characters = sub.add_parser(
        "characters",
        help="List, show and create characters.",
        description="List, show and create characters.",
    )
    csub = characters.add_subparsers(dest="characters_command", metavar="COMMAND", required=True)
    clist = _command(csub, "list", cmd_characters_list, "List shipped and user characters.")
    clist.add_argument("--json", action="store_true", help="print a JSON list")
    cshow = _command(csub, "show", cmd_characters_show, "Print a character's character.toml.")
    cshow.add_argument("name")
    cnew = _command(
        csub,
        "new",
        cmd_characters_new,
        "Make a character from a portrait photo (detects the face and caches the rig).",
    )
    cnew.add_argument("name", help="the character's name")
    cnew.add_argument("--portrait", required=True, metavar="IMAGE", help="JPEG, PNG or WebP with one face")
    cnew.add_argument("--voice", metavar="SAMPLE.wav", help="a voice sample (3-10 s) for cloning voices")
    cnew.add_argument("--language", default="en", help="language code, e.g. en or zh (default: en)")
    cnew.add_argument("--persona", help="persona prompt (default: a short friendly one)")
    cnew.add_argument(
        "--voice-backend",
        choices=["espeak", "piper", "gpt-sovits", "chattts", "edge"],
        help="voice backend (default: espeak)",
    )
    cnew.add_argument(
        "--voice-name",
        metavar="VOICE",
        help="espeak voice (en-us, cmn), Piper voice (en_US-joe-medium, or a path to an .onnx) or edge voice",
    )

    config = sub.add_parser(
        "config", help="Show the effective configuration.", description="Show the effective configuration."
    )
    cfsub = config.add_subparsers(dest="config_command", metavar="COMMAND", required=True)
    _command(cfsub, "show", cmd_config_show, "Print the effective config as TOML.")

    from digihuman.cli_models import register as register_models

    register_models(sub)

    doctor = _command(
        sub, "doctor", cmd_doctor, "Show what is installed and reachable, and what each backend would need."
    )
    doctor.add_argument("--json", action="store_true", help="print JSON")

    serve = _command(
        sub, "serve", cmd_serve, "Serve the web page and the HTTP/WebSocket API (several people at once)."
    )
    serve.add_argument("--host", help="address to bind (default: config server.host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: config server.port, 8000)")
    serve.add_argument("--token", help="require this bearer token (needed for a non-loopback --host)")
    serve.add_argument("--tls-cert", metavar="PEM", help="certificate: serve HTTPS (the mic and camera")
    serve.add_argument("--tls-key", metavar="PEM", help="key: need HTTPS in a browser off localhost)")
    serve.add_argument("--max-sessions", type=int, metavar="N", help="open sessions at once (default: 4)")
    serve.add_argument("-c", "--character", help="the page's first character (default: config `character`)")
    serve.add_argument("--llm", choices=["ollama", "openai", "llamacpp"], help="LLM backend")
    serve.add_argument("--llm-url", metavar="URL", help="LLM server URL (OpenAI-compatible ones end in /v1)")
    serve.add_argument("--model", help="model name (default: config llm.model)")

    listen = _command(sub, "listen", cmd_listen, "Transcribe an audio file: one line per utterance.")
    listen.add_argument("file", help="WAV, FLAC, MP3 or OGG")
    listen.add_argument("--json", action="store_true", help="one JSON object per utterance, with timings")
    listen.add_argument("--language", help="language code such as en or zh (default: config asr.language)")

    bench = sub.add_parser("bench", help="Run a benchmark.", description="Run a benchmark.")
    bsub = bench.add_subparsers(dest="bench_command", metavar="COMMAND", required=True)
    banim = _command(
        bsub,
        "animator",
        cmd_bench_animator,
        "Render frames with the built-in animator and print one JSON line.",
    )
    banim.add_argument("--size", type=int, default=512)
    banim.add_argument("--threads", type=int, default=1)
    banim.add_argument("--frames", type=int, default=500)
    return parser


def configure_logging(verbosity: int) -> None:
    from digihuman.logs import session_handler

    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, handlers=[session_handler(logging.StreamHandler(sys.stderr))])


TEXT_ARGS = ("text", "once", "persona")  # argv bytes that are not UTF-8 become U+FFFD in these


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    _tolerate_bad_text(args)
    signal.signal(signal.SIGTERM, raise_stopped)  # outside the event loop; runner.run handles it inside
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        # One line, even when a message quotes what the user typed (`-c $'a\nb'`).
        print(f"digihuman: error: {' '.join(str(exc).splitlines())}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("digihuman: interrupted", file=sys.stderr)
        return 130
    except Stopped as exc:  # SIGINT or SIGTERM while a command ran: it cleaned up, then came here
        print(f"digihuman: stopped by {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        # `digihuman doctor --json | head`: the reader left early; no traceback, and point stdout at
        # /dev/null so the flush at exit cannot fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:
        # A bug, not a user mistake: one line for the user, the traceback in a file for the report.
        print(f"digihuman: internal error: {one_line(exc)} (details in {log_crash(exc)})", file=sys.stderr)
        return 1


def _tolerate_bad_text(args: argparse.Namespace) -> None:
    """Text that is not UTF-8 must not crash a read, a print or a request, whatever the locale."""
    for name in TEXT_ARGS:  # words for a voice or a model; paths keep their bytes (surrogates) as they are
        if isinstance(value := getattr(args, name, None), str):
            setattr(args, name, value.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
    if isinstance(sys.stdin, io.TextIOWrapper):
        sys.stdin.reconfigure(errors="replace")  # U+FFFD, which the speech cleaner drops
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
            stream.reconfigure(errors="backslashreplace")  # an undecodable argv byte prints as \udcff


if __name__ == "__main__":
    sys.exit(main())
