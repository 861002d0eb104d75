"""Characters: a folder with `character.toml`, a portrait, an optional voice sample and the cached rig.

Shipped characters live inside the package and are read-only; user characters live in
`$DIGIHUMAN_HOME/characters/<id>/`.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from digihuman.config import home_dir, toml_value
from digihuman.errors import CharacterError

CHARACTER_FILE = "character.toml"
RIG_FILE = "rig.npz"
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
    language: str = Field("en", pattern=r"^[a-z]{2,3}(-[A-Za-z]+)?$")
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
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise CharacterError(f"{file}: key '{key}': {first['msg']}") from None
    return Character(id=path.name, path=path, spec=spec, source=source)


def list_characters() -> list[Character]:
    """Shipped characters first, then the user's; a user character may not shadow a shipped id."""
    found: dict[str, Character] = {}
    for root, source in ((shipped_dir(), "shipped"), (user_dir(), "user")):
        if not root.is_dir():
            continue
        for folder in sorted(p for p in root.iterdir() if (p / CHARACTER_FILE).is_file()):
            if folder.name not in found:
                found[folder.name] = load_character_dir(folder, source)  # type: ignore[arg-type]
    return list(found.values())


def find_character(name: str) -> Character:
    """Look a character up by folder id or display name (case-insensitive)."""
    wanted = name.strip().lower()
    characters = list_characters()
    for character in characters:
        if wanted in (character.id.lower(), character.name.lower()):
            return character
    known = ", ".join(c.id for c in characters) or "none"
    raise CharacterError(f"unknown character '{name}' (known: {known}); see `digihuman characters list`")


def slugify(name: str) -> str:
    slug = re.sub(r"[^\w-]+", "-", name.strip().lower(), flags=re.UNICODE).strip("-")
    if not slug:
        raise CharacterError(f"'{name}' cannot be used as a character name")
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
    from digihuman.face.landmarks import detect_landmarks
    from digihuman.face.portrait import load_portrait, save_portrait
    from digihuman.face.rig import build_rig

    slug = slugify(name)
    target = user_dir() / slug
    if target.exists() or any(c.id == slug for c in list_characters()):
        raise CharacterError(f"a character named '{slug}' already exists; pick another name")
    if voice_sample is not None and not voice_sample.is_file():
        raise CharacterError(f"voice sample {voice_sample} does not exist")

    image = load_portrait(portrait)
    landmarks = detect_landmarks(image)
    rig = build_rig(image, landmarks, size=face_size)

    default_voice = "cmn" if language.startswith("zh") else "en-us"
    spec = CharacterSpec(
        name=name,
        language=language,
        persona=persona,
        voice_sample=f"voice{voice_sample.suffix.lower()}" if voice_sample else None,
        voice=voice or BackendSpec(backend="espeak", params={"voice": default_voice}),
    )
    user_dir().mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{slug}-", dir=user_dir()))
    try:
        save_portrait(image, staging / spec.portrait)
        rig.save(staging / RIG_FILE)
        if voice_sample is not None and spec.voice_sample:
            shutil.copyfile(voice_sample, staging / spec.voice_sample)
        (staging / CHARACTER_FILE).write_text(spec_to_toml(spec), encoding="utf-8")
        staging.chmod(0o755)  # mkdtemp makes it private; a character folder is ordinary user data
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return load_character_dir(target, "user")


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
