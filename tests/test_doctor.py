from __future__ import annotations

import socket

import pytest

from digihuman import doctor
from digihuman.config import Settings


def test_checks_cover_the_backends_and_hide_fixes_for_what_works() -> None:
    checks = {c.name: c for c in doctor.run_checks(Settings())}
    assert {"espeakng_loader", "av", "cv2", "llm: ollama", "gpt-sovits", "audio output"} <= set(checks)
    assert checks["espeakng_loader"].ok and checks["av"].ok
    for check in checks.values():
        assert bool(check.fix) != check.ok or check.name == "sadtalker / wav2lip"


def test_an_unreachable_llm_names_how_to_start_it(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:  # a port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = Settings()
    settings.llm.url = f"http://127.0.0.1:{port}"
    check = next(c for c in doctor.run_checks(settings) if c.name == "llm: ollama")
    assert not check.ok and "ollama serve" in check.fix
    settings.llm.backend = "openai"
    check = next(c for c in doctor.run_checks(settings) if c.name.startswith("llm: openai"))
    assert not check.ok and "llama-server" in check.fix


def test_render_shows_one_line_per_check_plus_fixes() -> None:
    checks = [doctor.Check("a", True, "fine"), doctor.Check("b", False, "missing", "install b")]
    assert doctor.render(checks).splitlines() == ["ok  a  fine", "--  b  missing", "       fix: install b"]
