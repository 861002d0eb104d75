"""`digihuman doctor`: what is installed and reachable, and what each backend would need."""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
from dataclasses import asdict, dataclass
from urllib.parse import urlparse

from digihuman.config import Settings, home_dir


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return ""


def _reachable(url: str, timeout_s: float = 0.5) -> bool:
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _package(name: str, dist: str, purpose: str, fix: str) -> Check:
    ok = _module(name)
    return Check(name, ok, f"{dist} {_version(dist)} — {purpose}" if ok else purpose, "" if ok else fix)


GPT_SOVITS_START = "in GPT-SoVITS: python api_v2.py -a 127.0.0.1 -p 9880 -c GPT_SoVITS/configs/tts_infer.yaml"


def run_checks(settings: Settings) -> list[Check]:
    sovits_up = _reachable("http://127.0.0.1:9880")
    checks = [
        Check("python", sys.version_info >= (3, 11), sys.version.split()[0]),
        Check("home", True, str(home_dir())),
        _package(
            "espeakng_loader", "espeakng-loader", "embedded voice (English, Chinese)", "scripts/setup.sh"
        ),
        _package("av", "av", "MP4 output (H.264 + AAC)", "scripts/setup.sh"),
        _package("cv2", "opencv-python-headless", "portrait animator", "scripts/setup.sh"),
        _package(
            "mediapipe",
            "mediapipe",
            "face landmarks for `characters new` (haar fallback otherwise)",
            ".venv/bin/pip install --no-deps mediapipe==0.10.21",
        ),
        _package("pygame", "pygame", "desktop window (--play)", ".venv/bin/pip install 'digihuman[window]'"),
    ]
    checks.append(_audio_check())
    display = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    checks.append(
        Check(
            "display",
            display,
            "available" if display else "none: --play falls back to MP4 only",
            "" if display else "run on a desktop session (or under Xvfb)",
        )
    )

    llm = settings.llm
    if llm.backend == "llamacpp":
        from digihuman.llm.llamacpp import readiness

        checks.append(Check("llm: llamacpp (built-in)", *readiness(llm)))
    else:
        if llm.backend == "ollama":
            name, start = "llm: ollama", f"start it with `ollama serve`, then `ollama pull {llm.model}`"
        else:
            name, start = "llm: openai-compatible", "start llama-server / vLLM / LM Studio, or set llm.url"
        up = _reachable(llm.url)
        checks.append(Check(name, up, f"{llm.url} model {llm.model}", "" if up else start))
    checks += [
        _package("ChatTTS", "ChatTTS", "ChatTTS voice", ".venv/bin/pip install 'digihuman[chattts]'"),
        _package(
            "edge_tts", "edge-tts", "edge-tts voice (online)", ".venv/bin/pip install 'digihuman[edge]'"
        ),
        _package(
            "llama_cpp",
            "llama-cpp-python",
            "the built-in brain (--llm llamacpp)",
            ".venv/bin/pip install 'digihuman[llamacpp]'",
        ),
        Check(
            "gpt-sovits",
            sovits_up,
            "http://127.0.0.1:9880 (default)",
            "" if sovits_up else GPT_SOVITS_START,
        ),
        Check(
            "sadtalker / wav2lip", True, "subprocess faces: set [face] python and repo in a character.toml"
        ),
        _package("piper", "piper-tts", "Piper neural voices", ".venv/bin/pip install 'digihuman[piper]'"),
        _models_check(),
    ]
    return checks


def _models_check() -> Check:
    """What the model cache holds (`digihuman models list` has the details)."""
    from digihuman.models import cache_dir, cached

    present = cached()
    if not present:
        return Check("models", True, f"none cached in {cache_dir()}", "")
    names = ", ".join(f"{m.name} ({m.size_bytes / 1e6:.0f} MB)" for m in present)
    return Check("models", True, f"{names} in {cache_dir()}")


def _audio_check() -> Check:
    if not _module("sounddevice"):
        return Check(
            "audio output", False, "sounddevice missing", ".venv/bin/pip install 'digihuman[window]'"
        )
    try:
        import sounddevice

        outputs = [d for d in sounddevice.query_devices() if d["max_output_channels"] > 0]
    except Exception as exc:  # PortAudio missing or broken: report, don't crash the doctor
        return Check("audio output", False, f"PortAudio unavailable ({exc})", "apt-get install libportaudio2")
    ok = bool(outputs)
    return Check(
        "audio output", ok, f"{len(outputs)} device(s)", "" if ok else "no speaker: video plays silently"
    )


def render(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = []
    for check in checks:
        mark = "ok " if check.ok else "-- "
        line = f"{mark} {check.name:<{width}}  {check.detail}"
        if check.fix:
            line += f"\n    {'':<{width}}  fix: {check.fix}"
        lines.append(line)
    return "\n".join(lines)


def as_json(checks: list[Check]) -> list[dict[str, object]]:
    return [asdict(c) for c in checks]
