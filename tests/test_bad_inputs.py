"""Nothing lost, nothing broken: the real CLI over bad flags, config and env values, texts, files and paths.

Every case runs `digihuman` in a subprocess with its own home, working folder and temp folder, and checks
the same promises: the exit code is the expected one of 0 (done), 2 (bad input) or 3 (backend failed);
stderr has no traceback; a failed run changes nothing on disk (an existing `good.mp4` included) and a
successful one creates only what it was asked to. Most cases fail in well under a second, before any
rendering; the few that render say one short sentence.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.e2e.support import DIGIHUMAN, cli_env, describe, free_port

pytestmark = pytest.mark.slow

GOOD = b"a good file from before: a failed run must leave it alone"
ADA = Path(__file__).resolve().parents[1] / "src" / "digihuman" / "characters" / "ada"

Check = Callable[[subprocess.CompletedProcess[str]], None]


@dataclass
class Places:
    work: Path  # the working folder: `good.mp4` is here
    home: Path  # DIGIHUMAN_HOME
    tmp: Path  # TMPDIR
    env: dict[str, str] = field(default_factory=dict)  # extra environment for the run
    checks: list[Check] = field(default_factory=list)  # extra assertions after the run
    skip: str = ""  # why this case cannot run here


Setup = Callable[[Places], None]


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]
    code: int
    setup: Setup | None = None
    stdin: str | bytes | None = None
    creates: tuple[str, ...] = ()  # what a run may create or change ("work/out.mp4"), besides stderr


def _user_character(places: Places, slug: str, toml: str) -> None:
    folder = places.home / "characters" / slug
    folder.mkdir(parents=True)
    (folder / "character.toml").write_text(toml, encoding="utf-8")
    for name in ("portrait.png", "rig.npz"):
        (folder / name).write_bytes((ADA / name).read_bytes())


def broken_character(places: Places) -> None:
    _user_character(places, "broken", 'name = "Broken"\ncolour = "red"\n')


def bad_voice(places: Places) -> None:
    _user_character(
        places, "badvoice", 'name = "Bad"\n[voice]\nbackend = "espeak"\n[voice.params]\nvoice = "xx-nope"\n'
    )


def env(**values: str) -> Setup:
    def setup(places: Places) -> None:
        places.env.update(values)

    return setup


def config_file(text: str | bytes, name: str = "config.toml") -> Setup:
    def setup(places: Places) -> None:
        path = places.home / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())

    return setup


def config_folder(places: Places) -> None:
    (places.home / "config.toml").mkdir()


def home_is_a_file(places: Places) -> None:
    places.home.rmdir()
    places.home.write_text("not a folder")


def a_folder(places: Places) -> None:
    (places.work / "folder").mkdir()


def a_file(places: Places) -> None:
    (places.work / "afile").write_text("x")


def symlink_loop(places: Places) -> None:
    (places.work / "loop.mp4").symlink_to("loop.mp4")


def link_to_good(places: Places) -> None:
    (places.work / "link.mp4").symlink_to("good.mp4")

    def check(result: subprocess.CompletedProcess[str]) -> None:
        link = places.work / "link.mp4"
        assert link.is_symlink() and (places.work / "good.mp4").read_bytes()[4:8] == b"ftyp"

    places.checks.append(check)


def unix_socket(places: Places) -> None:
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(places.work / "sock"))
    places.checks.append(lambda result: server.close())


def char_device(places: Places) -> None:
    if os.geteuid() != 0:
        places.skip = "making a device node needs root"
        return
    node = places.work / "null"
    os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # our own null device, never /dev/null
    places.checks.append(lambda result: _assert(stat.S_ISCHR(node.lstat().st_mode)))


def fifo_with_reader(places: Places) -> None:
    fifo = places.work / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()

    def check(result: subprocess.CompletedProcess[str]) -> None:
        reader.join(10)
        assert stat.S_ISFIFO(fifo.lstat().st_mode) and received and received[0][4:8] == b"ftyp"

    places.checks.append(check)


def huge_png(places: Places) -> None:
    from tests.face.test_portrait import fake_png

    fake_png(places.work / "huge.png", 13000, 13000)


def portrait_copy(places: Places) -> None:
    (places.work / "me.png").write_bytes((ADA / "portrait.png").read_bytes())


def speech_longer_than(seconds: float) -> Setup:
    def setup(places: Places) -> None:
        def check(result: subprocess.CompletedProcess[str]) -> None:
            spoken = float(result.stderr.split("(")[-1].split(" s)")[0])
            assert spoken >= seconds, result.stderr

        places.checks.append(check)

    return setup


def stdout_lacks(secret: str) -> Setup:
    def setup(places: Places) -> None:
        places.env["DIGIHUMAN_LLM__API_KEY"] = secret
        places.checks.append(lambda result: _assert(secret not in result.stdout and "***" in result.stdout))

    return setup


def json_lists_broken(places: Places) -> None:
    broken_character(places)

    def check(result: subprocess.CompletedProcess[str]) -> None:
        rows = {row["id"]: row for row in json.loads(result.stdout)}
        assert "colour" in rows["broken"]["error"] and rows["ada"]["name"] == "Ada"

    places.checks.append(check)


def shows_broken_file(places: Places) -> None:
    broken_character(places)
    # The file, to fix it; then, as the one-line error, what is wrong with it.
    places.checks.append(
        lambda result: _assert('colour = "red"' in result.stdout and "colour" in result.stderr)
    )


def unused_port_url(places: Places) -> None:
    places.env["DIGIHUMAN_LLM__URL"] = f"http://127.0.0.1:{free_port()}"


def one_line(places: Places) -> None:
    places.checks.append(lambda result: _assert(len(result.stderr.strip().splitlines()) == 1))


def _assert(condition: bool) -> None:
    assert condition


def both(*setups: Setup) -> Setup:
    def setup(places: Places) -> None:
        for one in setups:
            one(places)

    return setup


LONG = "x" * 300
WORKERS = max(2, min(4, os.cpu_count() or 2))  # processes at once: mostly start-up, so a little overlap
SAY = ("say", "Hello.")

CASES = [
    # texts
    Case("empty-text", ("say", "", "-o", "good.mp4"), 2),
    Case("blank-text", ("say", "  \n\t ", "-o", "good.mp4"), 2),
    Case("only-punctuation", ("say", "...!?", "-o", "good.mp4"), 2),
    Case("only-symbols", ("say", "—*** ~~ ##", "-o", "good.mp4"), 2),
    Case("only-markdown", ("say", "-o", "good.mp4", "--", "---\n```\n```\n> **"), 2),
    Case("only-zero-width", ("say", "\u200b\u200d\ufeff", "-o", "good.mp4"), 2),
    Case("only-emoji", ("say", "😀👍🏽", "-o", "good.mp4"), 2),
    Case("only-ansi", ("say", "\x1b[31m\x1b[0m", "-o", "good.mp4"), 2),
    Case("invalid-utf8-only", ("say", "\udcff\udcfe", "-o", "good.mp4"), 2),
    Case("stdin-empty", ("say", "-", "-o", "good.mp4"), 2, stdin=""),
    Case(
        "stdin-not-utf8-strict-locale",
        ("say", "-", "-o", "out.mp4"),
        0,
        setup=env(PYTHONIOENCODING="utf-8:strict"),
        stdin=b"Hi \xff there.",
        creates=("work/out.mp4",),
    ),
    Case("stdin-only-bad-bytes", ("say", "-", "-o", "good.mp4"), 2, stdin=b"\xff\xfe\x00"),
    Case(
        "nul-bytes-are-not-the-end",
        ("say", "-", "-o", "out.mp4"),
        0,
        setup=speech_longer_than(1.2),
        stdin="Hello\0 world, nul\0 bytes here.",
        creates=("work/out.mp4",),
    ),
    Case("invalid-utf8-inside", ("say", "Hi \udcff there.", "-o", "out.mp4"), 0, creates=("work/out.mp4",)),
    # flags
    Case("size-odd", (*SAY, "--size", "65", "-o", "good.mp4"), 2),
    Case("size-zero", (*SAY, "--size", "0", "-o", "good.mp4"), 2),
    Case("size-negative", (*SAY, "--size", "-2", "-o", "good.mp4"), 2),
    Case("size-huge", (*SAY, "--size", "99999", "-o", "good.mp4"), 2),
    Case("size-not-a-number", (*SAY, "--size", "big", "-o", "good.mp4"), 2),
    Case("unknown-character", (*SAY, "-c", "nobody", "-o", "good.mp4"), 2),
    Case("character-name-too-long", (*SAY, "-c", LONG, "-o", "good.mp4"), 2),
    Case("character-name-multiline", (*SAY, "-c", "a\nb", "-o", "good.mp4"), 2, setup=one_line),
    Case("broken-character-chosen", (*SAY, "-c", "broken", "-o", "good.mp4"), 2, setup=broken_character),
    Case("unknown-voice", (*SAY, "-c", "badvoice", "-o", "good.mp4"), 3, setup=bad_voice),
    Case(
        "llm-url-bad-port", ("chat", "--once", "hi", "--no-window", "--llm-url", "http://127.0.0.1:99999"), 2
    ),
    Case("llm-url-not-a-url", ("chat", "--once", "hi", "--no-window", "--llm-url", "localhost"), 2),
    Case("run-duration-zero", ("run", "--duration", "0", "--no-window"), 2),
    Case("bench-zero-frames", ("bench", "animator", "--frames", "0"), 2),
    Case("bench-zero-size", ("bench", "animator", "--size", "0"), 2),
    Case("bench-odd-size", ("bench", "animator", "--size", "65"), 2),
    Case("bench-zero-threads", ("bench", "animator", "--threads", "0"), 2),
    # output paths and file kinds
    Case("output-is-a-folder", (*SAY, "-o", "folder"), 2, setup=a_folder),
    Case("output-empty", (*SAY, "-o", ""), 2),
    Case("output-name-too-long", (*SAY, "-o", LONG + ".mp4"), 2),
    Case("output-folder-name-too-long", (*SAY, "-o", f"{LONG}/a.mp4"), 2),
    Case("output-parent-is-a-file", (*SAY, "-o", "afile/out.mp4"), 2, setup=a_file),
    Case("output-symlink-loop", (*SAY, "-o", "loop.mp4"), 2, setup=symlink_loop),
    Case("output-socket", (*SAY, "-o", "sock"), 2, setup=unix_socket),
    Case("output-new-folders-then-failure", (*SAY, "-c", "nobody", "-o", "new/deeper/out.mp4"), 2),
    Case("output-read-only-place", (*SAY, "-o", "/proc/out.mp4"), 2),
    Case(
        "output-symlink-followed", (*SAY, "-o", "link.mp4"), 0, setup=link_to_good, creates=("work/good.mp4",)
    ),
    Case("output-char-device", (*SAY, "-o", "null"), 0, setup=char_device),
    Case("output-fifo", (*SAY, "-o", "pipe"), 0, setup=fifo_with_reader),
    Case("record-is-a-file", ("chat", "--once", "hi", "--no-window", "--record", "good.mp4"), 2),
    Case(
        "record-nothing-reachable",
        ("chat", "--once", "hi", "--no-window", "--record", "rec"),
        3,
        setup=unused_port_url,
        creates=("work/rec", "work/rec/turns.jsonl"),
    ),
    # config file and environment
    Case("env-section-not-json", ("config", "show"), 2, setup=env(DIGIHUMAN_FACE="notjson")),
    Case("env-size-odd", ("config", "show"), 2, setup=env(DIGIHUMAN_FACE__SIZE="511")),
    Case("env-nan", ("config", "show"), 2, setup=env(DIGIHUMAN_LLM__TEMPERATURE="nan")),
    Case("env-inf", ("config", "show"), 2, setup=env(DIGIHUMAN_DIRECTOR__MIN_GAP_S="inf")),
    Case("env-url-bad-port", ("config", "show"), 2, setup=env(DIGIHUMAN_LLM__URL="http://h:70000")),
    Case("env-unknown-key", ("config", "show"), 2, setup=env(DIGIHUMAN_FACE__SIZES="1")),
    Case("env-size-via-say", SAY, 2, setup=env(DIGIHUMAN_FACE__SIZE="65")),
    Case("config-is-a-folder", ("config", "show"), 2, setup=config_folder),
    Case("config-not-toml", ("config", "show"), 2, setup=config_file("[face\n")),
    Case("config-not-utf8", ("config", "show"), 2, setup=config_file(b"character = '\xff'\n")),
    Case("config-nan", ("config", "show"), 2, setup=config_file("[camera]\ncrop = nan\n")),
    Case("config-odd-size", ("doctor",), 2, setup=config_file("[face]\nsize = 511\n")),
    Case("config-explicit-missing", ("--config", "nope.toml", "config", "show"), 2),
    Case("config-explicit-too-long", ("--config", LONG, "config", "show"), 2),
    Case("config-show-masks-key", ("config", "show"), 0, setup=stdout_lacks("sk-secret-123")),
    # characters
    Case("list-with-broken", ("characters", "list"), 0, setup=broken_character),
    Case("show-broken", ("characters", "show", "broken"), 2, setup=shows_broken_file),
    Case("list-json-with-broken", ("characters", "list", "--json"), 0, setup=json_lists_broken),
    Case("say-next-to-broken", (*SAY, "-c", "ada", "--size", "65"), 2, setup=broken_character),
    Case("show-unknown", ("characters", "show", "nobody"), 2),
    Case("new-portrait-missing", ("characters", "new", "Zoe", "--portrait", "none.png"), 2),
    Case("new-portrait-not-image", ("characters", "new", "Zoe", "--portrait", "good.mp4"), 2),
    Case("new-portrait-folder", ("characters", "new", "Zoe", "--portrait", "folder"), 2, setup=a_folder),
    Case("new-portrait-huge", ("characters", "new", "Zoe", "--portrait", "huge.png"), 2, setup=huge_png),
    Case(
        "new-bad-language",
        ("characters", "new", "Zoe", "--portrait", "me.png", "--language", "Chinese!"),
        2,
        setup=portrait_copy,
    ),
    Case("new-name-unusable", ("characters", "new", "!!!", "--portrait", "me.png"), 2, setup=portrait_copy),
    Case("new-name-too-long", ("characters", "new", LONG, "--portrait", "me.png"), 2, setup=portrait_copy),
    Case("new-name-taken", ("characters", "new", "Ada", "--portrait", "me.png"), 2, setup=portrait_copy),
    Case(
        "new-name-taken-by-broken",
        ("characters", "new", "broken", "--portrait", "me.png"),
        2,
        setup=both(portrait_copy, broken_character),
    ),
    Case(
        "new-voice-missing",
        ("characters", "new", "Zoe", "--portrait", "me.png", "--voice", "none.wav"),
        2,
        setup=portrait_copy,
    ),
    Case(
        "new-home-is-a-file",
        ("characters", "new", "Zoe", "--portrait", "me.png"),
        2,
        setup=both(portrait_copy, home_is_a_file),
    ),
]


def run(
    args: tuple[str, ...], *, cwd: Path, env: dict[str, str], stdin: str | bytes | None
) -> subprocess.CompletedProcess[str]:
    """`digihuman ARGS`, with stdin given as text or as raw bytes (which need not be UTF-8)."""
    data = stdin.encode() if isinstance(stdin, str) else (stdin or b"")
    done = subprocess.run([*DIGIHUMAN, *args], input=data, capture_output=True, cwd=cwd, env=env, timeout=120)
    out, err = (stream.decode("utf-8", "replace") for stream in (done.stdout, done.stderr))
    return subprocess.CompletedProcess(done.args, done.returncode, out, err)


def snapshot(roots: dict[str, Path]) -> dict[str, tuple[str, str]]:
    """Every path under the roots with its kind and content (hash, link target); never opens a FIFO."""
    seen: dict[str, tuple[str, str]] = {}
    for label, root in roots.items():
        if not root.is_dir():
            seen[label] = (
                ("file", hashlib.sha256(root.read_bytes()).hexdigest()) if root.exists() else ("none", "")
            )
            continue
        for folder, dirs, files in os.walk(root):
            for name in [*dirs, *files]:
                path = Path(folder) / name
                key = f"{label}/{path.relative_to(root)}"
                mode = path.lstat().st_mode
                if stat.S_ISLNK(mode):
                    seen[key] = ("link", os.readlink(path))
                elif stat.S_ISREG(mode):
                    seen[key] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
                else:
                    seen[key] = ("dir" if stat.S_ISDIR(mode) else "node", str(stat.S_IFMT(mode)))
    return seen


@dataclass
class Outcome:
    places: Places
    before: dict[str, tuple[str, str]]
    result: subprocess.CompletedProcess[str] | None = None


def _prepare(case: Case, root: Path) -> Outcome:
    places = Places(root / "work", root / "home", root / "tmp")
    for folder in (places.work, places.home, places.tmp):
        folder.mkdir()
    (places.work / "good.mp4").write_bytes(GOOD)
    if case.setup is not None:
        case.setup(places)
    return Outcome(places, snapshot(_roots(places)))


def _roots(places: Places) -> dict[str, Path]:
    return {"work": places.work, "home": places.home, "tmp": places.tmp}


@pytest.fixture(scope="module")
def outcomes(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Every selected case, run a few at a time: each is one short process, mostly start-up."""
    selected = {
        item.callspec.params["case"].id
        for item in request.session.items
        if hasattr(item, "callspec") and isinstance(item.callspec.params.get("case"), Case)
    }
    cases = [case for case in CASES if case.id in selected]
    prepared = {case.id: _prepare(case, tmp_path_factory.mktemp(case.id)) for case in cases}

    def execute(case: Case) -> None:
        outcome = prepared[case.id]
        if outcome.places.skip:
            return
        places = outcome.places
        environment = cli_env(places.home, TMPDIR=str(places.tmp), **places.env)
        outcome.result = run(case.args, cwd=places.work, env=environment, stdin=case.stdin)

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        list(pool.map(execute, cases))
    return prepared


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case: Case, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[case.id]
    if outcome.places.skip:
        pytest.skip(outcome.places.skip)
    places, result = outcome.places, outcome.result
    assert result is not None
    assert result.returncode == case.code, describe(result)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, describe(result)
    if case.code != 0:
        # Ours ("digihuman: error: ...") or argparse's ("digihuman say: error: ...").
        assert ": error: " in result.stderr.strip().splitlines()[-1], describe(result)
    before, after = outcome.before, snapshot(_roots(places))
    changed = sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))
    assert set(changed) <= set(case.creates), f"unexpected changes on disk: {changed}\n{describe(result)}"
    assert (places.work / "good.mp4").read_bytes() == GOOD or "work/good.mp4" in case.creates
    for check in places.checks:
        check(result)


def test_a_bug_is_one_line_with_the_traceback_in_a_log(
    digihuman_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Any exception that is not a user or backend error: exit 1, one line naming the log file."""
    from digihuman import cli

    def crash(args: object) -> int:
        raise RuntimeError("something\nunexpected")

    monkeypatch.setattr(cli, "cmd_config_show", crash)
    assert cli.main(["config", "show"]) == 1
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and line.startswith(
        "digihuman: internal error: something unexpected (details in "
    )
    log = Path(line.split("(details in ")[1].rstrip(")"))
    assert log.parent == digihuman_home / "logs"
    assert "Traceback" in log.read_text(encoding="utf-8") and "RuntimeError" in log.read_text(
        encoding="utf-8"
    )


def test_a_bug_with_an_unusable_home_logs_to_the_temp_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from digihuman import cli

    home = tmp_path / "home-is-a-file"
    home.write_text("x")
    monkeypatch.setenv("DIGIHUMAN_HOME", str(home))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)  # re-read TMPDIR
    monkeypatch.setattr(cli, "cmd_config_show", lambda args: 1 // 0)
    assert cli.main(["config", "show"]) == 1
    line = capsys.readouterr().err.strip()
    log = Path(line.split("(details in ")[1].rstrip(")"))
    assert log.parent == tmp_path and "ZeroDivisionError" in log.read_text(encoding="utf-8")


def test_chat_reads_typed_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    """A terminal in another encoding types bytes that are not UTF-8: the reply still comes, no crash."""
    from tests.llm.ollama_server import OllamaTestServer

    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    environment = cli_env(home, PYTHONIOENCODING="utf-8:strict")
    with OllamaTestServer() as server:
        args = ("chat", "--no-window", "--metrics", "--llm-url", server.url)
        typed = run(args, cwd=work, env=environment, stdin=b"Hello caf\xe9 there\n")
        # The same byte on the command line arrives as a surrogate: it must not break the request.
        once = run((*args, "--once", "Hello caf\udce9 there"), cwd=work, env=environment, stdin=None)
    for result in (typed, once):
        assert result.returncode == 0, describe(result)
        assert "Traceback" not in result.stderr and "internal error" not in result.stderr, describe(result)
        [turn] = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
        assert turn["status"] == "ok" and "hello" in turn["text_spoken"].lower()
    assert list(work.iterdir()) == []  # nothing recorded unless asked


class _HalfVoice:
    """A GPT-SoVITS-like voice server that speaks every sentence but the one containing "Fail"."""

    def __init__(self) -> None:
        import io
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        import numpy as np
        import soundfile as sf

        buffer = io.BytesIO()
        tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(16000) / 32000)
        sf.write(buffer, tone, 32000, format="WAV", subtype="PCM_16")
        wav = buffer.getvalue()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                failing = "Fail" in body["text"]
                data = b'{"message": "tts failed", "Exception": "boom"}' if failing else wav
                self.send_response(400 if failing else 200)
                self.send_header("Content-Type", "application/json" if failing else "audio/wav")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_voice_failing_mid_text_leaves_the_old_file(tmp_path: Path) -> None:
    """The first sentence is spoken, the second fails: `say` exits 3 and out.mp4 is what it was."""
    voice = _HalfVoice()
    places = Places(tmp_path / "work", tmp_path / "home", tmp_path / "tmp")
    for folder in (places.work, places.home, places.tmp):
        folder.mkdir()
    toml = f'name = "Half"\n[voice]\nbackend = "gpt-sovits"\n[voice.params]\nurl = "{voice.url}"\n'
    _user_character(places, "half", toml + 'ref_audio = "/nowhere/ref.wav"\nstreaming = false\n')
    (places.work / "good.mp4").write_bytes(GOOD)
    text = "This first sentence is spoken well. Fail comes in this second one."
    try:
        result = run(
            ("say", text, "-c", "half", "-o", "good.mp4"),
            cwd=places.work,
            env=cli_env(places.home, TMPDIR=str(places.tmp)),
            stdin=None,
        )
    finally:
        voice.close()
    assert result.returncode == 3 and "boom" in result.stderr, describe(result)
    assert (places.work / "good.mp4").read_bytes() == GOOD
    assert sorted(p.name for p in places.work.iterdir()) == ["good.mp4"]
