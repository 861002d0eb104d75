"""Suite-wide fixtures: every test gets its own DIGIHUMAN_HOME, so no test touches the user's data."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Stand-in servers are started as `python -m tests.<...>`: make the repo importable for them too.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@pytest.fixture(autouse=True)
def digihuman_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("DIGIHUMAN_HOME", str(home))
    monkeypatch.delenv("DIGIHUMAN_CONFIG", raising=False)
    for key in [k for k in os.environ if k.startswith("DIGIHUMAN_") and "__" in k]:
        monkeypatch.delenv(key)
    yield home


@pytest.fixture(autouse=True)
def piper_test_voice(monkeypatch: pytest.MonkeyPatch) -> None:
    """Test speech (digihuman.testing.speech) is spoken by the cached fixture voice, or the test skips."""
    from digihuman.testing import speech
    from tests.real_models import real_model_path

    monkeypatch.setattr(speech, "find_piper_voice", lambda: real_model_path("piper-joe"))
