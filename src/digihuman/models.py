"""Model files: one way to name, fetch and cache every model (LLM GGUF, Piper voice, Whisper, ...).

A *spec* names a model in one of these ways:

- a local path (a file or a folder): used where it is, never copied;
- ``piper:en_US-amy-medium``: a Piper voice from ``rhasspy/piper-voices`` (the ``.onnx`` and its
  ``.onnx.json``); with ``kind="voice"`` the bare voice name works too;
- ``whisper:base``: a faster-whisper model, the ``Systran/faster-whisper-base`` repo (a snapshot);
  with ``kind="asr"`` the bare size (``base``) works too;
- ``hf:OWNER/REPO:FILE`` or ``OWNER/REPO/FILE``: one file of a Hugging Face repo;
  ``hf:OWNER/REPO``: a snapshot of the whole repo;
- a registry name from ``KNOWN`` (``qwen2.5-0.5b-instruct``, ``smart-turn-v3``, ...).

API (what the rest of the package calls)::

    resolve(spec, *, kind=None, download=True) -> Path  # the file (or folder); downloads on first use
    lookup(spec, *, kind=None) -> ModelRef              # parse only: where it comes from, where it goes
    cached() -> list[CachedModel]                       # complete models in the cache
    cache_dir() -> Path                                 # $DIGIHUMAN_HOME/models

`kind` is one of KINDS ("llm", "voice", "asr", "turn", "vad"); given, it lets bare names through and rejects a
model of another kind. Files land in ``cache_dir()/<owner>--<repo>/`` in the repo's own layout, so a file
can also be placed there by hand. Downloads go through huggingface_hub (``HF_ENDPOINT`` picks a mirror),
with its progress bar on a terminal and one log line otherwise. huggingface_hub writes each file as
``.incomplete`` and moves it into place only when whole, and a model counts as present only when all its
files are: nothing half-downloaded is ever used. A bad spec raises UserError; offline or a failed download
raises BackendError naming the model, the cache path and how to place the files by hand.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from digihuman.config import home_dir
from digihuman.errors import BackendError, UserError

logger = logging.getLogger(__name__)

KINDS = ("llm", "voice", "asr", "turn", "vad")
INDEX_FILE = "index.json"  # names of models fetched by spec, so `cached()` can list them
PIPER_REPO = "rhasspy/piper-voices"
WHISPER_PATTERNS = ("config.json", "preprocessor_config.json", "model.bin", "tokenizer.json", "vocabulary.*")
WHISPER_SIZES = ("tiny", "base", "small", "medium", "large-v2", "large-v3", "distil-large-v3")
_PIPER_VOICE = re.compile(
    r"^(?P<lang>[a-z]{2,3})_(?P<region>[A-Z]{2})-(?P<name>[^-/]+)-(?P<quality>[a-z_]+)$"
)
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True, slots=True)
class ModelRef:
    """Where a model comes from and where it lives in the cache.

    `files` are repo paths fetched one by one; empty means a snapshot of the repo (limited to `patterns`),
    complete when every glob in `required` matches a file. `main` is the file `resolve` returns; None
    returns the folder.
    """

    name: str
    kind: str
    repo: str
    files: tuple[str, ...] = ()
    main: str | None = None
    revision: str | None = None
    patterns: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    license: str = "unknown"
    size_mb: int | None = None
    description: str = ""

    @property
    def folder(self) -> Path:
        return cache_dir() / self.repo.replace("/", "--")

    @property
    def path(self) -> Path:
        """What `resolve` returns: the main file, or the folder."""
        return self.folder / self.main if self.main else self.folder

    def is_complete(self) -> bool:
        if self.files:
            return all((self.folder / f).is_file() for f in self.files)
        if not self.folder.is_dir():
            return False
        names = [p.name for p in self.folder.iterdir() if p.is_file()]
        return bool(self.required) and all(fnmatch.filter(names, glob) for glob in self.required)

    def size_bytes(self) -> int:
        if self.files:
            return sum((self.folder / f).stat().st_size for f in self.files if (self.folder / f).is_file())
        if not self.folder.is_dir():
            return 0
        return sum(p.stat().st_size for p in self.folder.iterdir() if p.is_file())

    def web_url(self) -> str:
        """Where a person finds the files to download by hand."""
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
        revision = self.revision or "main"
        if self.files:
            return f"{endpoint}/{self.repo}/resolve/{revision}/{self.files[0]}"
        return f"{endpoint}/{self.repo}/tree/{revision}"


@dataclass(frozen=True, slots=True)
class CachedModel:
    """A model whose files are all in the cache."""

    name: str
    kind: str
    path: Path
    size_bytes: int
    license: str


def cache_dir() -> Path:
    """`$DIGIHUMAN_HOME/models`: every downloaded model lives under it."""
    return home_dir() / "models"


def piper_voice(
    voice: str, *, license: str = "see the voice's MODEL_CARD", size_mb: int | None = None
) -> ModelRef:
    """The two files of a Piper voice ("en_US-amy-medium") in rhasspy/piper-voices."""
    match = _PIPER_VOICE.match(voice)
    if not match:
        raise UserError(
            f"'{voice}' is not a Piper voice name: use LANG_REGION-NAME-QUALITY such as en_US-amy-medium "
            "(see https://huggingface.co/rhasspy/piper-voices), or a path to an .onnx file"
        )
    lang, region, name, quality = match.group("lang", "region", "name", "quality")
    base = f"{lang}/{lang}_{region}/{name}/{quality}/{voice}"
    return ModelRef(
        name=f"piper:{voice}",
        kind="voice",
        repo=PIPER_REPO,
        files=(f"{base}.onnx", f"{base}.onnx.json"),
        main=f"{base}.onnx",
        license=license,
        size_mb=size_mb,
        description=f"Piper voice {voice} ({lang}_{region})",
    )


def whisper_model(size: str, *, size_mb: int | None = None) -> ModelRef:
    """A faster-whisper (CTranslate2) model: the Systran/faster-whisper-SIZE repo."""
    if not re.fullmatch(r"[\w.-]+", size):
        raise UserError(f"'{size}' is not a Whisper model size: use one of {', '.join(WHISPER_SIZES)}")
    return ModelRef(
        name=f"whisper:{size}",
        kind="asr",
        repo=f"Systran/faster-whisper-{size}",
        patterns=WHISPER_PATTERNS,
        required=("config.json", "model.bin", "tokenizer.json", "vocabulary.*"),
        license="MIT",
        size_mb=size_mb,
        description=f"Whisper {size} for faster-whisper (CTranslate2)",
    )


def _gguf(name: str, repo: str, file: str, size_mb: int, description: str) -> ModelRef:
    return ModelRef(
        name=name,
        kind="llm",
        repo=repo,
        files=(file,),
        main=file,
        license="Apache-2.0",
        size_mb=size_mb,
        description=description,
    )


# The models `digihuman models list` offers, with license and download size.
KNOWN: dict[str, ModelRef] = {
    ref.name: ref
    for ref in (
        _gguf(
            "qwen2.5-0.5b-instruct",
            "Qwen/Qwen2.5-0.5B-Instruct-GGUF",
            "qwen2.5-0.5b-instruct-q4_k_m.gguf",
            491,
            "Qwen2.5 0.5B Instruct, GGUF Q4_K_M: chat in English and Chinese",
        ),
        _gguf(
            "qwen2.5-1.5b-instruct",
            "Qwen/Qwen2.5-1.5B-Instruct-GGUF",
            "qwen2.5-1.5b-instruct-q4_k_m.gguf",
            1120,
            "Qwen2.5 1.5B Instruct, GGUF Q4_K_M: chat in English and Chinese",
        ),
        piper_voice("en_US-joe-medium", license="CC0-1.0", size_mb=63),
        piper_voice("en_US-amy-medium", size_mb=63),
        piper_voice("en_GB-alba-medium", size_mb=63),
        piper_voice("zh_CN-huayan-medium", size_mb=63),
        whisper_model("tiny", size_mb=75),
        whisper_model("base", size_mb=145),
        whisper_model("small", size_mb=484),
        ModelRef(
            name="smart-turn-v3",
            kind="turn",
            repo="pipecat-ai/smart-turn-v3",
            files=("smart-turn-v3.2-cpu.onnx",),
            main="smart-turn-v3.2-cpu.onnx",
            license="BSD-2-Clause",
            size_mb=9,
            description="Smart Turn v3.2 end-of-turn detector (CPU ONNX)",
        ),
    )
}


def lookup(spec: str, *, kind: str | None = None) -> ModelRef:
    """Parse a model spec (not a local path) into where it comes from; UserError when it names nothing."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}")
    text = spec.strip()
    ref = _parse(text, kind)
    if ref is None:
        raise UserError(
            f"unknown model '{spec}': give a file path, piper:VOICE, whisper:SIZE, hf:OWNER/REPO:FILE, "
            f"or one of {', '.join(KNOWN)} (see `digihuman models list`)"
        )
    # The same files under another name (hf:..., OWNER/REPO/FILE) are the registry's model.
    for known in KNOWN.values():
        if (known.repo, known.files, known.patterns) == (ref.repo, ref.files, ref.patterns):
            ref = known
            break
    if kind is not None and ref.kind not in (kind, "other"):
        raise UserError(f"'{spec}' is a model of kind {ref.kind}, not {kind}")
    if kind is not None and ref.kind == "other":
        ref = replace(ref, kind=kind)
    return ref


def _parse(text: str, kind: str | None) -> ModelRef | None:
    prefix, _, rest = text.partition(":")
    if rest and prefix == "piper":
        return KNOWN.get(text) or piper_voice(rest)
    if rest and prefix == "whisper":
        return KNOWN.get(text) or whisper_model(rest)
    if rest and prefix == "hf":
        repo, _, file = rest.partition(":")
        if not _REPO_ID.match(repo):
            raise UserError(f"'{text}': '{repo}' is not a Hugging Face repo id (OWNER/NAME)")
        if file:
            return ModelRef(name=text, kind="other", repo=repo, files=(file,), main=file)
        return ModelRef(name=text, kind="other", repo=repo, required=("*",))
    lowered = {name.lower(): ref for name, ref in KNOWN.items()}
    if text.lower() in lowered:
        return lowered[text.lower()]
    if kind == "voice" and "/" not in text:
        return lookup(f"piper:{text}")  # a bare name can only be a Piper voice: say what one looks like
    if kind == "asr" and text in WHISPER_SIZES:
        return lookup(f"whisper:{text}")
    parts = text.split("/")
    if len(parts) >= 3 and all(parts) and _REPO_ID.match("/".join(parts[:2])):
        return _parse(f"hf:{parts[0]}/{parts[1]}:{'/'.join(parts[2:])}", kind)
    return None


def _local_path(spec: str) -> Path | None:
    """The path a spec names when it is one; None for model names and hub ids."""
    path = Path(spec).expanduser()
    if path.exists():
        return path
    looks_like_path = spec.startswith(("/", "./", "../", "~")) or (
        spec.count("/") < 2 and bool(path.suffix) and ":" not in spec and spec.lower() not in KNOWN
    )
    if looks_like_path:
        raise UserError(f"model file {path} does not exist: check the path, or give a model name")
    return None


def resolve(spec: str | Path, *, kind: str | None = None, download: bool = True) -> Path:
    """The local path of a model: a local path as given, else the cached copy, downloading it first.

    `download=False` raises BackendError instead of downloading a model that is not cached.
    """
    text = str(spec)
    if not text.strip():
        raise UserError("no model given: set a model name or a path")
    local = _local_path(text.strip())
    if local is not None:
        _check_local(local, kind)
        return local.resolve()
    ref = lookup(text, kind=kind)
    if ref.is_complete():
        return ref.path
    if not download:
        raise BackendError(
            f"model {ref.name} is not downloaded: run `digihuman models pull {ref.name}` "
            f"(it goes to {ref.folder})"
        )
    fetch(ref)
    return ref.path


def _check_local(path: Path, kind: str | None) -> None:
    if kind == "voice" and path.suffix == ".onnx" and not Path(f"{path}.json").is_file():
        raise UserError(f"Piper voice {path} has no config next to it: put {path.name}.json beside it")
    if kind == "asr" and path.is_dir() and not (path / "model.bin").is_file():
        raise UserError(f"{path} is not a faster-whisper model folder: it has no model.bin")


def fetch(ref: ModelRef) -> None:
    """Download every file of `ref` into its folder (BackendError on any failure)."""
    try:
        import huggingface_hub
        from huggingface_hub import constants as hub_constants
        from huggingface_hub import errors as hub_errors
    except ImportError:
        raise BackendError("huggingface_hub is not installed: run scripts/setup.sh") from None
    size = f" ({ref.size_mb} MB)" if ref.size_mb else ""
    # A one-time, possibly long wait the user should see whatever the log level: one line on stderr.
    print(f"downloading {ref.name}{size} from {ref.repo} into {ref.folder}", file=sys.stderr, flush=True)
    common: dict[str, Any] = {
        "revision": ref.revision,
        "local_dir": ref.folder,
        "endpoint": os.environ.get("HF_ENDPOINT") or None,
        "tqdm_class": None if sys.stderr.isatty() else _quiet_tqdm(),
    }
    ref.folder.mkdir(parents=True, exist_ok=True)
    try:
        _check_reachable(common["endpoint"] or hub_constants.ENDPOINT)
        if ref.files:
            for file in ref.files:
                huggingface_hub.hf_hub_download(ref.repo, file, **common)
        else:
            huggingface_hub.snapshot_download(ref.repo, allow_patterns=list(ref.patterns) or None, **common)
    except (hub_errors.RepositoryNotFoundError, hub_errors.RevisionNotFoundError) as exc:
        raise BackendError(
            f"model {ref.name}: {ref.repo} was not found on the hub ({_reason(exc)})"
        ) from None
    except hub_errors.RemoteEntryNotFoundError:
        raise BackendError(f"model {ref.name}: {ref.repo} has no file {', '.join(ref.files)}") from None
    except Exception as exc:  # any network or disk failure: one line with what to do instead
        logger.debug("download of %s failed", ref.name, exc_info=True)
        raise BackendError(_failure(ref, exc)) from None
    if not ref.is_complete():
        raise BackendError(f"model {ref.name}: the download from {ref.repo} lacks {', '.join(ref.required)}")
    _remember(ref)
    logger.info("%s is ready: %s", ref.name, ref.path)


def _failure(ref: ModelRef, exc: Exception) -> str:
    if ref.files:
        target = ref.folder / Path(ref.files[0]).parent
        files = " and ".join(Path(f).name for f in ref.files)
        by_hand = f"put {files} (from {ref.web_url()}) into {target}"
    else:
        by_hand = f"put the files of {ref.web_url()} into {ref.folder}"
    return (
        f"could not download model {ref.name} ({_reason(exc)}): check the connection, "
        f"or {by_hand}, or give a local path instead"
    )


def _check_reachable(endpoint: str) -> None:
    """Fail at once when the hub cannot be reached: huggingface_hub would retry for half a minute."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "localhost", port), timeout=5).close()
    except OSError as exc:
        raise ConnectionError(f"{url.hostname} is unreachable: {exc.strerror or exc}") from exc


def _reason(exc: BaseException) -> str:
    """The innermost cause in one short line (huggingface_hub wraps network errors in long messages)."""
    while exc.__cause__ is not None or (exc.__context__ is not None and not exc.__suppress_context__):
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]  # the loop test rules out None
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def _quiet_tqdm() -> type:
    """A tqdm that draws nothing: without a terminal the log lines say what happens."""
    from tqdm.auto import tqdm

    class QuietTqdm(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return QuietTqdm


def _index() -> dict[str, str]:
    try:
        data = json.loads((cache_dir() / INDEX_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _remember(ref: ModelRef) -> None:
    """Record a model fetched by spec (name -> kind), so `cached()` lists it later."""
    if ref.name in KNOWN:
        return
    index = _index()
    index[ref.name] = ref.kind
    file = cache_dir() / INDEX_FILE
    tmp = file.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(index, indent=1, sort_keys=True), encoding="utf-8")
    tmp.replace(file)  # atomic: concurrent writers never leave a torn file


def cached() -> list[CachedModel]:
    """Every model whose files are all in the cache: registry models, fetched ones, hand-placed voices."""
    refs: dict[str, ModelRef] = dict(KNOWN)
    for name, kind in _index().items():
        try:
            refs.setdefault(name, lookup(name, kind=kind if kind in KINDS else None))
        except UserError:
            continue
    root = cache_dir()
    voices = root / PIPER_REPO.replace("/", "--")
    if voices.is_dir():
        for onnx in voices.rglob("*.onnx"):
            if _PIPER_VOICE.match(onnx.stem):
                refs.setdefault(f"piper:{onnx.stem}", piper_voice(onnx.stem))
    if root.is_dir():
        for folder in root.glob("Systran--faster-whisper-*"):
            size = folder.name.removeprefix("Systran--faster-whisper-")
            refs.setdefault(f"whisper:{size}", whisper_model(size))
    return [
        CachedModel(ref.name, ref.kind, ref.path, ref.size_bytes(), ref.license)
        for ref in refs.values()
        if ref.is_complete()
    ]


def known() -> list[ModelRef]:
    """The registry: models that `digihuman models pull NAME` knows by name."""
    return list(KNOWN.values())
