"""One typed settings model, read from a TOML file plus `DIGIHUMAN_<SECTION>__<KEY>` environment overrides.

The file is `--config PATH`, else `$DIGIHUMAN_CONFIG`, else `$DIGIHUMAN_HOME/config.toml` (optional).
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from digihuman.errors import ConfigError
from digihuman.validation import describe_invalid, first_problem

ENV_PREFIX = "DIGIHUMAN_"
DEFAULT_API_KEY = "not-needed"


def home_dir() -> Path:
    """Where user characters, caches and config live: `$DIGIHUMAN_HOME` or the per-user data directory."""
    if env := os.environ.get("DIGIHUMAN_HOME"):
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("digihuman", appauthor=False))


class Section(BaseModel):
    # nan and inf pass every ge/le bound check (comparisons with nan are false): refuse them outright.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class FaceSettings(Section):
    size: int = Field(512, ge=64, le=2048, description="Output frame size in pixels (square, even).")
    fps: int = Field(25, ge=5, le=60)
    threads: int = Field(1, ge=1, le=16, description="Animator render threads.")
    audio_first: bool = Field(
        False,
        description="With a slow face (SadTalker, Wav2Lip), speak a sentence whose frames are not ready yet "
        "with the built-in animator instead of idling until they are.",
    )

    @field_validator("size")
    @classmethod
    def _even(cls, size: int) -> int:
        # H.264 in yuv420p halves the chroma planes: an odd frame size fails inside the encoder.
        if size % 2:
            raise ValueError(f"must be even (H.264 needs it), e.g. {size - 1} or {size + 1}")
        return size


class TTSSettings(Section):
    lookahead: int = Field(2, ge=1, le=8, description="Sentences synthesized ahead of playback.")
    shipped_piper: bool = Field(
        True,
        description="Shipped characters (espeak) speak with a Piper voice for their language when one is "
        "in the model cache (`digihuman models pull piper:en_US-joe-medium`) and piper-tts is installed.",
    )


class LLMSettings(Section):
    backend: Literal["ollama", "openai", "llamacpp"] = "ollama"
    url: str = "http://127.0.0.1:11434"
    model: str = Field(
        "qwen3-vl:4b-instruct",
        description="Model name; for llamacpp a .gguf path or a model name (this default means "
        "qwen2.5-0.5b-instruct, downloaded on first use).",
    )
    api_key: str = DEFAULT_API_KEY
    num_predict: int = Field(256, ge=16, description="Token budget for one reply.")
    temperature: float = Field(0.7, ge=0, le=2)
    keep_alive: str = "10m"
    first_token_timeout_s: float = Field(
        60.0,
        gt=0,
        description="The longest wait for a reply to start, model loading and the preload included.",
    )
    request_timeout_s: float = Field(
        120.0, gt=0, description="The longest silence once a reply is streaming (and for other requests)."
    )
    busy_retries: int = Field(3, ge=0, le=10)
    n_ctx: int = Field(4096, ge=512, le=131072, description="llamacpp: context length in tokens.")
    n_threads: int = Field(
        0,
        ge=0,
        le=256,
        description="llamacpp: CPU threads (0: every core for the first sentence, then half).",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        """Checked here so a typo fails at start-up in one line, not deep inside the HTTP client."""
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host, e.g. http://127.0.0.1:11434")
        try:
            parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
        except ValueError:
            raise ValueError("has an invalid port (use 1-65535)") from None
        return url.strip()


class CameraSettings(Section):
    sample_fps: float = Field(2.0, gt=0, le=30)
    crop: float = Field(
        1.0, gt=0.1, le=1.0, description="Centre crop: the fraction of width and height kept."
    )
    width: int = Field(448, ge=64, description="Frames sent to the VLM are downscaled to this width.")
    jpeg_quality: int = Field(70, ge=10, le=100)
    keep_frames: int = Field(3, ge=1, le=16, description="Recent frames kept in memory (and sent).")


class DirectorSettings(Section):
    min_gap_s: float = Field(20.0, ge=0, description="Minimum time between proactive remarks.")
    static_gap_s: float = Field(600.0, ge=0, description="Gap while the scene stays static.")
    max_age_s: float = Field(15.0, gt=0, description="A proactive reply older than this is dropped.")
    silence_token: str = "<silent>"


class ASRSettings(Section):
    backend: Literal["faster-whisper", "openai"] = "faster-whisper"
    model: str = Field("base", description="faster-whisper model name (tiny, base, small, ...) or a folder.")
    url: str = Field("http://127.0.0.1:8000/v1", description="OpenAI-compatible transcription server.")
    api_key: str = "not-needed"
    language: str = Field("auto", description='"auto" detects it; "en", "zh", ... fixes it.')
    threads: int = Field(2, ge=1, le=64, description="CPU threads for faster-whisper.")
    compute_type: str = Field("int8", description="faster-whisper weights: int8 (fast on CPU), float32, ...")
    beam_size: int = Field(1, ge=1, le=10)
    partial_every_s: float = Field(0.8, ge=0, description="Re-decode while the user speaks (0: no partials).")
    window_s: float = Field(20.0, ge=5, le=30, description="Longer speech is transcribed in windows.")


class ListenSettings(Section):
    vad_model: str = Field("hf:deepghs/silero-vad-onnx:silero_vad.onnx", description="Silero VAD ONNX.")
    turn_model: str = Field("smart-turn-v3", description='Smart Turn ONNX; "" ends turns on silence alone.')
    vad_threshold: float = Field(0.5, gt=0, lt=1, description="P(speech) that starts speech.")
    min_speech_s: float = Field(0.15, ge=0, description="Voiced time before speech counts.")
    min_silence_s: float = Field(0.2, ge=0, description="Unvoiced time that makes a pause.")
    pre_roll_s: float = Field(0.4, ge=0, le=2, description="Audio kept before speech starts.")
    turn_check_after_s: float = Field(0.3, ge=0, description="Silence before Smart Turn is asked.")
    turn_threshold: float = Field(0.3, gt=0, lt=1, description="Smart Turn P(complete) that ends the turn.")
    max_silence_s: float = Field(1.6, gt=0, description="Silence that always ends the turn.")
    fallback_silence_s: float = Field(0.8, gt=0, description="Silence that ends the turn without Smart Turn.")
    barge_in_min_s: float = Field(0.3, ge=0, description="User speech over the character before it stops.")
    echo_cancel: bool = Field(True, description="Remove the character's own voice from the microphone.")


class ServerSettings(Section):
    host: str = Field("127.0.0.1", description="`digihuman serve` address; another host needs a token.")
    port: int = Field(8000, ge=1, le=65535)
    token: str = Field("", description="Bearer token for every request (required off 127.0.0.1).")
    max_sessions: int = Field(4, ge=1, le=256, description="Open web sessions at once; more get 503.")
    idle_timeout_s: float = Field(900.0, gt=0, description="A session without input this long closes.")
    resume_s: float = Field(60.0, ge=0, description="A page that reconnects within this resumes its session.")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_assignment=True,
        allow_inf_nan=False,
    )

    character: str = Field("ada", description="The default character.")
    face: FaceSettings = FaceSettings()
    tts: TTSSettings = TTSSettings()
    llm: LLMSettings = LLMSettings()
    camera: CameraSettings = CameraSettings()
    director: DirectorSettings = DirectorSettings()
    asr: ASRSettings = ASRSettings()
    listen: ListenSettings = ListenSettings()
    server: ServerSettings = ServerSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment wins over the file (passed as init values); no .env or secrets files.
        return env_settings, init_settings


def config_path(explicit: str | Path | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    if env := os.environ.get("DIGIHUMAN_CONFIG"):
        return Path(env).expanduser()
    return home_dir() / "config.toml"


def _describe(error: ValidationError, file: Path) -> str:
    """One line naming the bad key and where it came from: the file or an environment variable."""
    env_name = ENV_PREFIX + "__".join(first_problem(error).parts).upper()
    where = f"environment variable {env_name}" if env_name in os.environ else str(file)
    return describe_invalid(error, where, kind="config key")


def load_settings(path: str | Path | None = None) -> Settings:
    """Read the effective settings; raise ConfigError with one line naming the bad key."""
    file = config_path(path)
    data: dict[str, Any] = {}
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if path is not None or os.environ.get("DIGIHUMAN_CONFIG"):
            raise ConfigError(f"config file {file} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file} is not valid TOML: {exc}") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {file} is a folder; give the path of a TOML file") from None
    except NotADirectoryError:
        if file == home_dir() / "config.toml":
            raise ConfigError(f"DIGIHUMAN_HOME {home_dir()} is a file; point it at a folder") from None
        raise ConfigError(f"cannot read config file {file}: a file stands where a folder should") from None
    except OSError as exc:  # unreadable, a name too long
        raise ConfigError(f"cannot read config file {file}: {exc.strerror or exc}") from None
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, file)) from None
    except SettingsError as exc:  # DIGIHUMAN_FACE='not json': a whole section must be a JSON object
        raise ConfigError(_describe_env_error(exc)) from None


def _describe_env_error(error: SettingsError) -> str:
    sections = [name for name, field in Settings.model_fields.items() if isinstance(field.default, BaseModel)]
    for name in sections:
        env_name = ENV_PREFIX + name.upper()
        if env_name in os.environ and f'"{name}"' in str(error):
            return (
                f"environment variable {env_name} must hold a JSON object such as "
                f'{{"key": value}}; to set one key use {env_name}__KEY'
            )
    return f"an environment override is invalid: {error}"


def set_setting(settings: Settings, section: str, key: str, value: Any, *, flag: str) -> None:
    """Apply a command-line flag to the settings, validated like the file: ConfigError names the flag."""
    try:
        setattr(getattr(settings, section), key, value)
    except ValidationError as exc:
        message = first_problem(exc).message
        raise ConfigError(f"{flag} {value}: {message} (config key {section}.{key})") from None


def to_toml(settings: Settings) -> str:
    """The effective config as TOML text (what `digihuman config show` prints)."""
    lines: list[str] = []
    dumped = settings.model_dump()
    if dumped["llm"]["api_key"] != DEFAULT_API_KEY:
        dumped["llm"]["api_key"] = "***"  # a secret: the output ends up in bug reports and terminals
    # TOML reads every key after a [table] header as part of it: top-level keys go first.
    for key, value in dumped.items():
        if not isinstance(value, dict):
            lines.append(f"{key} = {toml_value(value)}")
    for key, value in dumped.items():
        if isinstance(value, dict):
            lines.append(f"\n[{key}]")
            lines.extend(f"{k} = {toml_value(v)}" for k, v in value.items())
    return "\n".join(lines) + "\n"


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)
