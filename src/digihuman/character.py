"""Characters: a folder with `character.toml`, a portrait, an optional voice sample and the cached rig.

Shipped characters live inside the package and are read-only; user characters live in
`$DIGIHUMAN_HOME/characters/<id>/`.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from digihuman.config import home_dir, toml_value
from digihuman.errors import CharacterError
from digihuman.lang import espeak_voice
from digihuman.validation import describe_invalid

CHARACTER_FILE = "character.toml"
RIG_FILE = "rig.npz"
LANGUAGE_PATTERN = r"^[a-z]{2,3}(-[A-Za-z]+)?$"
MAX_ID_BYTES = 200  # a folder name (255 bytes on most file systems) plus room for the staging suffix
DEFAULT_PERSONA = {
    "en": "You are {name}, a friendly digital human who lives on the user's computer. "
    "Speak naturally, warmly and briefly: one to three short sentences.",
    "zh": "你是{name}，一个住在用户电脑里的友好数字人。说话自然、亲切、简短：一到三句短句。",
}


class BackendSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: str
    params: dict[str, Any] = Field(default_factory=dict)


class CharacterSpec(BaseModel):
    """What `character.toml` holds."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    language: str = Field("en", pattern=LANGUAGE_PATTERN)
    persona: str = ""
    portrait: str = "portrait.png"
    voice_sample: str | None = None
    voice: BackendSpec = BackendSpec(backend="espeak")
    face: BackendSpec = BackendSpec(backend="animator")


class Character(BaseModel):
    """A loaded character: its spec plus where it lives."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    id: str
    path: Path
    spec: CharacterSpec
    source: Literal["shipped", "user"]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def language(self) -> str:
        return self.spec.language

    @property
    def portrait_path(self) -> Path:
        return self.path / self.spec.portrait

    @property
    def rig_path(self) -> Path:
        return self.path / RIG_FILE

    @property
    def voice_sample_path(self) -> Path | None:
        return self.path / self.spec.voice_sample if self.spec.voice_sample else None

    @property
    def persona(self) -> str:
        template = self.spec.persona or DEFAULT_PERSONA.get(self.language[:2], DEFAULT_PERSONA["en"])
        return template.replace("{name}", self.name)


def shipped_dir() -> Path:
    return Path(str(resources.files("digihuman") / "characters"))


def user_dir() -> Path:
    return home_dir() / "characters"


def load_character_dir(path: Path, source: Literal["shipped", "user"]) -> Character:
    file = path / CHARACTER_FILE
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
        spec = CharacterSpec(**data)
    except FileNotFoundError:
        raise CharacterError(f"{path} is not a character: it has no {CHARACTER_FILE}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CharacterError(f"{file} is not valid TOML: {exc}") from None
    except ValidationError as exc:
        raise CharacterError(describe_invalid(exc, str(file))) from None
    except OSError as exc:
        raise CharacterError(f"cannot read {file}: {exc.strerror or exc}") from None
    return Character(id=path.name, path=path, spec=spec, source=source)


@dataclass(frozen=True, slots=True)
class BrokenCharacter:
    """A user character whose folder cannot be loaded: listed with its error, fails only when chosen."""

    id: str
    path: Path
    source: Literal["shipped", "user"]
    error: CharacterError


def scan_characters() -> list[Character | BrokenCharacter]:
    """Shipped characters first, then the user's; a user character may not shadow a shipped id.

    One broken user character must not break every command: it is returned as a BrokenCharacter.
    """
    found: dict[str, Character | BrokenCharacter] = {}
    roots: tuple[tuple[Path, Literal["shipped", "user"]], ...] = (
        (shipped_dir(), "shipped"),
        (user_dir(), "user"),
    )
    for root, source in roots:
        try:
            folders = sorted(p for p in root.iterdir() if (p / CHARACTER_FILE).is_file())
        except OSError:  # no user folder yet (or an unreadable one): nothing to list there
            continue
        for folder in folders:
            if folder.name in found:
                continue
            try:
                found[folder.name] = load_character_dir(folder, source)
            except CharacterError as exc:
                found[folder.name] = BrokenCharacter(folder.name, folder, source, exc)
    return list(found.values())


def list_characters() -> list[Character]:
    """The characters that load (see scan_characters for the broken ones too)."""
    return [c for c in scan_characters() if isinstance(c, Character)]


def find_character(name: str) -> Character:
    """Look a character up by folder id, else by display name; a broken one raises its error.

    Ids win over display names, so a user character named like a shipped one ("小美", id `小美`) is still
    selectable, and the shipped one stays reachable by its id (`xiaomei`). Within each pass an exact match
    wins over a case-insensitive one, and shipped characters come first.
    """
    character = find_entry(name)
    if isinstance(character, BrokenCharacter):
        raise character.error
    return character


def find_entry(name: str) -> Character | BrokenCharacter:
    """As find_character, but a broken character is returned (with its folder, to show or fix it)."""
    wanted = name.strip()
    characters = scan_characters()
    passes = (
        lambda c: c.id == wanted,
        lambda c: c.id.lower() == wanted.lower(),
        lambda c: isinstance(c, Character) and c.name == wanted,
        lambda c: isinstance(c, Character) and c.name.lower() == wanted.lower(),
    )
    for matches in passes:
        for character in characters:
            if matches(character):
                return character
    known = ", ".join(c.id for c in characters) or "none"
    raise CharacterError(f"unknown character '{name}' (known: {known}); see `digihuman characters list`")


def slugify(name: str) -> str:
    slug = re.sub(r"[^\w-]+", "-", name.strip().lower(), flags=re.UNICODE).strip("-")
    if not slug:
        raise CharacterError(f"'{name}' cannot be used as a character name")
    if len(slug.encode("utf-8")) > MAX_ID_BYTES:
        raise CharacterError("the character name is too long for a folder name; use a shorter one")
    return slug


def create_character(
    name: str,
    portrait: Path,
    *,
    language: str = "en",
    voice_sample: Path | None = None,
    persona: str = "",
    voice: BackendSpec | None = None,
    face_size: int = 512,
) -> Character:
    """Build a user character pack: validate the portrait, detect the face, cache the rig.

    The pack is assembled in a temporary folder and moved into place only when complete, so a
    failure leaves nothing behind.
    """
    from digihuman.face.portrait import save_portrait
    from digihuman.face.prepare import rig_from_portrait

    slug = slugify(name)
    if not re.fullmatch(LANGUAGE_PATTERN, language):
        raise CharacterError(f"--language {language!r} is not a language code; use one like en, zh or pt-BR")
    target = user_dir() / slug
    if _exists(target) or any(c.id == slug for c in scan_characters()):
        raise CharacterError(f"a character named '{slug}' already exists; pick another name")
    if voice_sample is not None and not voice_sample.is_file():
        raise CharacterError(f"voice sample {voice_sample} does not exist")

    image, rig = rig_from_portrait(portrait, face_size)

    default_voice = espeak_voice(language)  # one home: lang.py
    spec = CharacterSpec(
        name=name,
        language=language,
        persona=persona,
        voice_sample=f"voice{voice_sample.suffix.lower()}" if voice_sample else None,
        voice=voice or BackendSpec(backend="espeak", params={"voice": default_voice}),
    )
    try:
        user_dir().mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{slug}-", dir=user_dir()))
    except OSError as exc:
        raise CharacterError(f"cannot create a character in {user_dir()}: {exc.strerror or exc}") from None
    try:
        save_portrait(image, staging / spec.portrait)
        rig.save(staging / RIG_FILE)
        if voice_sample is not None and spec.voice_sample:
            shutil.copyfile(voice_sample, staging / spec.voice_sample)
        (staging / CHARACTER_FILE).write_text(spec_to_toml(spec), encoding="utf-8")
        staging.chmod(0o755)  # mkdtemp makes it private; a character folder is ordinary user data
        _publish(staging, target)
    except OSError as exc:  # a full disk, a vanished folder: nothing half-made stays behind
        shutil.rmtree(staging, ignore_errors=True)
        raise CharacterError(
            f"cannot write the character to {user_dir()}: {exc.strerror or exc}; nothing was created"
        ) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return load_character_dir(target, "user")


def _exists(path: Path) -> bool:
    try:
        return path.exists() or path.is_symlink()
    except OSError:
        return True  # cannot even look: do not build there


def _publish(staging: Path, target: Path) -> None:
    """Move the finished pack into place atomically; a concurrent `characters new` of the same name loses.

    A plain rename would replace an empty folder at `target`; claiming the name with mkdir first makes the
    second of two racing commands fail cleanly instead.
    """
    try:
        target.mkdir()
    except FileExistsError:
        raise CharacterError(f"a character named '{target.name}' already exists; pick another name") from None
    try:
        staging.rename(target)  # onto our own empty folder: atomic, complete or absent
    except BaseException:
        target.rmdir()
        raise


def spec_to_toml(spec: CharacterSpec) -> str:
    lines = [f"name = {toml_value(spec.name)}", f"language = {toml_value(spec.language)}"]
    if spec.persona:
        lines.append(f"persona = {toml_value(spec.persona)}")
    lines.append(f"portrait = {toml_value(spec.portrait)}")
    if spec.voice_sample:
        lines.append(f"voice_sample = {toml_value(spec.voice_sample)}")
    for section in ("voice", "face"):
        backend: BackendSpec = getattr(spec, section)
        lines += ["", f"[{section}]", f"backend = {toml_value(backend.backend)}"]
        if backend.params:
            lines += ["", f"[{section}.params]"]
            lines += [f"{k} = {toml_value(v)}" for k, v in backend.params.items()]
    return "\n".join(lines) + "\n"
