"""The `digihuman` command as a user runs it: real subprocesses, a temporary DIGIHUMAN_HOME, no display.

The README's CLI table is the contract. Slow outputs (MP4s, a created character) are made once per module
and shared by the tests that inspect them.
"""

from __future__ import annotations

import json
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from digihuman.character import create_character, find_character
from tests.e2e.support import (
    assert_ok,
    assert_one_line_error,
    assert_valid_mp4,
    astronaut,
    cli_env,
    describe,
    jpeg_bytes,
    leftovers,
    run_cli,
    save_image,
)

pytestmark = pytest.mark.slow

ENGLISH = "Hello, I'm your digital human."
CHINESE = "你好，很高兴认识你。"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DIGIHUMAN_HOME shared by the read-only commands of this module."""
    return tmp_path_factory.mktemp("cli-home")


# --- say ----------------------------------------------------------------------------------------------


@dataclass
class SayRun:
    result: subprocess.CompletedProcess[str]
    folder: Path  # the working folder (and where -o points)
    output: Path


@pytest.fixture(scope="module")
def said(home: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, SayRun]:
    """The README's two `say` examples, plus `say -` (stdin) with --play and no -o, each run once."""
    runs: dict[str, SayRun] = {}

    def say(key: str, args: list[str], output: str, stdin: str | None = None) -> None:
        folder = tmp_path_factory.mktemp(f"say-{key}")
        result = run_cli(["say", *args], home=home, cwd=folder, stdin=stdin)
        runs[key] = SayRun(result, folder, folder / output)

    say("english", [ENGLISH, "-o", "hello.mp4"], "hello.mp4")
    say("chinese", [CHINESE, "-c", "xiaomei", "-o", "x.mp4", "--size", "256", "--play"], "x.mp4")
    say("stdin", ["-", "--play", "--size", "128"], "digihuman-ada.mp4", stdin="Read from standard input.\n")
    return runs


def test_say_english_writes_an_h264_aac_mp4_at_512_px(said: dict[str, SayRun]) -> None:
    run = said["english"]
    assert_ok(run.result)
    info = assert_valid_mp4(run.output, size=512, min_audio_s=1.0)
    assert info.audio_rms > 0.01  # speech, not silence
    assert f"wrote {run.output.name}" in run.result.stderr
    assert leftovers(run.folder) == ["hello.mp4"]  # no temporary files left next to it


def test_say_chinese_with_xiaomei_at_256_px_plays_headless_by_writing_the_mp4(
    said: dict[str, SayRun],
) -> None:
    run = said["chinese"]
    assert_ok(run.result)
    info = assert_valid_mp4(run.output, size=256, min_audio_s=1.0)  # nine syllables of Mandarin
    assert info.audio_rms > 0.01
    assert "no display" in run.result.stderr  # --play without a display warns and still writes -o
    assert leftovers(run.folder) == ["x.mp4"]


def test_say_reads_stdin_and_play_without_display_or_output_writes_a_default_file(
    said: dict[str, SayRun],
) -> None:
    run = said["stdin"]
    assert_ok(run.result)
    assert "no display" in run.result.stderr
    assert_valid_mp4(run.output, size=128, min_audio_s=0.8)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        pytest.param(["", "-o", "OUT/hello.mp4"], "nothing to say", id="empty"),
        pytest.param(["   ", "-o", "OUT/hello.mp4"], "nothing to say", id="blank"),
        pytest.param(["😀🎉👍 🙂", "-o", "OUT/hello.mp4"], "nothing to say", id="only-emoji"),
        pytest.param(
            ["Hello there.", "-c", "nobody", "-o", "OUT/hello.mp4"], "nobody", id="unknown-character"
        ),
        pytest.param(["Hello there.", "-o", "/proc/x.mp4"], "/proc/x.mp4", id="unwritable-path"),
        pytest.param(["Hello there.", "-o", "OUT"], "folder", id="path-is-a-folder"),
    ],
)
def test_say_bad_input_is_one_line_and_leaves_no_file(
    args: list[str], fragment: str, home: Path, tmp_path: Path
) -> None:
    out = tmp_path / "OUT"
    out.mkdir()
    args = [a.replace("OUT", str(out)) if a.startswith("OUT") else a for a in args]
    result = run_cli(["say", *args], home=home, cwd=tmp_path)
    assert_one_line_error(result, fragment)
    assert result.returncode == 2  # bad input (README: 2 = bad input, 3 = backend)
    assert leftovers(out) == []  # no MP4, no hidden .part or probe file
    assert leftovers(tmp_path) == ["OUT"]  # nor a default-named file in the working folder


# --- characters ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def portraits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Portrait files, good and bad, written once."""
    import cv2

    folder = tmp_path_factory.mktemp("portraits")
    face = astronaut()
    gradient = np.repeat(np.tile(np.linspace(0, 255, 400, dtype=np.uint8), (400, 1))[:, :, None], 3, axis=2)
    files = {
        "astronaut": save_image(face, folder / "astronaut.png"),
        "two-faces": save_image(np.concatenate([face, face], axis=1), folder / "two.png"),
        "no-face": save_image(gradient, folder / "gradient.png"),
        # The whole photo at 300 px: the face is about 60 px tall, too small to animate.
        "tiny-face": save_image(
            cv2.resize(face, (300, 300), interpolation=cv2.INTER_AREA), folder / "tiny.png"
        ),
    }
    (folder / "notes.png").write_text("this is not an image\n")
    (folder / "cut.jpg").write_bytes(jpeg_bytes(face)[:3000])  # a JPEG cut off mid-scan
    files["not-an-image"] = folder / "notes.png"
    files["truncated"] = folder / "cut.jpg"
    files["missing"] = folder / "missing.jpg"
    return files


@pytest.mark.parametrize(
    ("portrait", "fragment"),
    [
        ("missing", "does not exist"),
        ("truncated", "corrupt or truncated"),
        ("not-an-image", "not an image"),
        ("no-face", "no face"),
        ("two-faces", "more than one face"),
        ("tiny-face", "px tall"),
    ],
)
def test_characters_new_refuses_bad_portraits_and_leaves_no_folder(
    portrait: str, fragment: str, portraits: dict[str, Path], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    result = run_cli(["characters", "new", "Bad", "--portrait", str(portraits[portrait])], home=home)
    assert_one_line_error(result, fragment)
    assert leftovers(home / "characters") == []  # not even a hidden staging folder


@dataclass
class CreatedCharacter:
    home: Path
    created: subprocess.CompletedProcess[str]
    listed: subprocess.CompletedProcess[str]
    shown: subprocess.CompletedProcess[str]
    spoken: subprocess.CompletedProcess[str]
    output: Path


@pytest.fixture(scope="module")
def me(portraits: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> CreatedCharacter:
    """`characters new Me --portrait astronaut.png --language zh`, then list, show and say with it."""
    home = tmp_path_factory.mktemp("me-home")
    created = run_cli(
        ["characters", "new", "Me", "--portrait", str(portraits["astronaut"]), "--language", "zh"], home=home
    )
    listed = run_cli(["characters", "list", "--json"], home=home)
    shown = run_cli(["characters", "show", "Me"], home=home)
    output = home / "out" / "me.mp4"
    spoken = run_cli(["say", CHINESE, "-c", "Me", "-o", str(output), "--size", "128"], home=home)
    return CreatedCharacter(home, created, listed, shown, spoken, output)


def test_characters_new_creates_a_pack_in_home(me: CreatedCharacter) -> None:
    assert_ok(me.created)
    folder = me.home / "characters" / "me"
    assert f"created character 'me' in {folder}" in me.created.stdout
    assert {"character.toml", "portrait.png", "rig.npz"} <= set(leftovers(folder))
    assert [p for p in leftovers(me.home / "characters") if p != "me"] == []  # no staging leftovers


def test_characters_list_json_has_shipped_and_new_characters(me: CreatedCharacter) -> None:
    assert_ok(me.listed)
    rows = json.loads(me.listed.stdout)
    assert isinstance(rows, list) and all({"name", "language"} <= set(row) for row in rows)
    languages = {row["name"]: row["language"] for row in rows}
    assert languages["Ada"] == "en"
    assert languages["Me"] == "zh"
    assert {row["id"]: row["language"] for row in rows}["xiaomei"] == "zh"
    assert {row["id"]: row["source"] for row in rows}["me"] == "user"


def test_characters_show_prints_the_character_toml(me: CreatedCharacter) -> None:
    assert_ok(me.shown)
    toml_text = me.shown.stdout.split("\n", 1)[1]  # after the "# <path>" line
    spec = tomllib.loads(toml_text)
    assert spec["name"] == "Me" and spec["language"] == "zh"
    assert spec["voice"]["params"]["voice"] == "cmn"  # a Chinese character gets the Mandarin voice


def test_say_with_the_new_character(me: CreatedCharacter) -> None:
    assert_ok(me.spoken)
    info = assert_valid_mp4(me.output, size=128, min_audio_s=1.0)
    assert info.audio_rms > 0.01


def test_characters_new_refuses_a_name_in_use(me: CreatedCharacter, portraits: dict[str, Path]) -> None:
    before = sorted(p.name for p in (me.home / "characters" / "me").iterdir())
    result = run_cli(["characters", "new", "me", "--portrait", str(portraits["astronaut"])], home=me.home)
    assert_one_line_error(result, "already exists")
    assert sorted(p.name for p in (me.home / "characters" / "me").iterdir()) == before
    shipped = run_cli(["characters", "new", "Ada", "--portrait", str(portraits["astronaut"])], home=me.home)
    assert_one_line_error(shipped, "already exists")  # a user character may not shadow a shipped one


def test_characters_show_unknown_is_one_line(home: Path) -> None:
    assert_one_line_error(run_cli(["characters", "show", "nobody"], home=home), "unknown character 'nobody'")


# Portrait formats `characters new` accepts; done in-process (the same function the CLI calls) to save
# a process start per variant.


def _rgba(face: np.ndarray) -> np.ndarray:
    alpha = np.full(face.shape[:2], 255, np.uint8)
    alpha[:60, :60] = 0  # a transparent corner
    return np.dstack([face, alpha])


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("photo.jpg", lambda face, path: save_image(face, path, quality=92)),
        ("photo.webp", lambda face, path: save_image(face, path, quality=90)),
        ("rgba.png", lambda face, path: save_image(_rgba(face), path)),
        (
            "gray.png",
            lambda face, path: save_image(np.dot(face, [0.299, 0.587, 0.114]).astype(np.uint8), path),
        ),
    ],
)
def test_portrait_formats_are_accepted(name: str, make, tmp_path: Path) -> None:
    make(astronaut(), tmp_path / name)
    character = create_character("Format Test", tmp_path / name, face_size=128)
    assert character.id == "format-test" and character.source == "user"
    assert find_character("Format Test").path == character.path
    from PIL import Image

    with Image.open(character.portrait_path) as stored:
        assert stored.mode == "RGB" and stored.size == (512, 512)
        if name == "gray.png":
            pixels = np.asarray(stored, dtype=np.int16)
            assert np.abs(pixels[..., 0] - pixels[..., 2]).max() <= 1
    assert character.rig_path.is_file()


def test_an_exif_rotated_photo_is_stored_upright(tmp_path: Path) -> None:
    from PIL import Image

    upright = astronaut()[:400]  # 512 wide, 400 tall: its orientation shows in its shape
    sideways = np.ascontiguousarray(np.rot90(upright, k=1))  # how a phone stores a rotated shot
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    path = tmp_path / "phone.jpg"
    Image.fromarray(sideways).save(path, quality=95, exif=exif)

    character = create_character("Phone", path, face_size=128)
    with Image.open(character.portrait_path) as stored:
        assert stored.size == (512, 400)
        difference = np.abs(np.asarray(stored, dtype=np.int16) - upright.astype(np.int16)).mean()
    assert difference < 8  # the same picture, up to JPEG loss


# --- config, doctor, bench, help ------------------------------------------------------------------------


def test_config_show_prints_the_effective_toml(home: Path) -> None:
    result = run_cli(["config", "show"], home=home)
    assert_ok(result)
    assert "[face]" in result.stdout and "size = 512" in result.stdout
    settings = tomllib.loads(result.stdout)
    assert settings["face"]["size"] == 512 and settings["character"] == "ada"


def test_config_show_applies_environment_overrides(home: Path) -> None:
    result = run_cli(["config", "show"], home=home, env=cli_env(home, DIGIHUMAN_FACE__SIZE="256"))
    assert_ok(result)
    assert tomllib.loads(result.stdout)["face"]["size"] == 256


def test_a_config_file_with_an_unknown_key_is_one_line_naming_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text("[face]\nsize = 256\nsmile = true\n")
    assert_one_line_error(run_cli(["config", "show"], home=home), "face.smile", "config.toml")
    explicit = tmp_path / "other.toml"
    explicit.write_text('charcter = "ada"\n')
    assert_one_line_error(run_cli(["--config", str(explicit), "config", "show"], home=home), "charcter")


def test_doctor_reports_in_text_and_json(home: Path) -> None:
    text = run_cli(["doctor"], home=home)
    assert_ok(text)
    assert "espeakng_loader" in text.stdout and "av" in text.stdout
    as_json = run_cli(["doctor", "--json"], home=home)
    assert_ok(as_json)
    checks = json.loads(as_json.stdout)
    names = {check["name"]: check for check in checks}
    assert names["av"]["ok"] is True and names["espeakng_loader"]["ok"] is True
    assert all(isinstance(check["ok"], bool) for check in checks)


def test_bench_animator_prints_one_json_line(home: Path) -> None:
    result = run_cli(["bench", "animator", "--frames", "50"], home=home)
    assert_ok(result)
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, describe(result)
    report = json.loads(lines[0])
    assert {"fps", "resolution", "threads"} <= set(report)
    assert report["fps"] > 0 and report["resolution"] == 512 and report["threads"] == 1


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["say"],
        ["chat"],
        ["run"],
        ["characters"],
        ["characters", "list"],
        ["characters", "new"],
        ["characters", "show"],
        ["config"],
        ["config", "show"],
        ["doctor"],
        ["bench"],
        ["bench", "animator"],
    ],
    ids=lambda command: " ".join(command) or "digihuman",
)
def test_help_works_for_every_command(command: list[str], home: Path) -> None:
    result = run_cli([*command, "--help"], home=home)
    assert_ok(result)
    assert result.stdout.startswith(f"usage: digihuman {' '.join(command)}".rstrip())
    assert result.stderr == ""


def test_a_reader_that_leaves_early_gets_no_traceback(home: Path) -> None:
    """`digihuman characters list --json | head -c 1`: the pipe closes before the output is written."""
    from tests.e2e.support import DIGIHUMAN

    process = subprocess.Popen(
        [*DIGIHUMAN, "characters", "list", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(home),
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) != 0
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr
