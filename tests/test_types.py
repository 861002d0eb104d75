"""src/ type-checks clean under mypy (config: [tool.mypy] in pyproject.toml), like the lint test for ruff.

The interfaces are Protocols, so only a checker proves that every backend really implements them;
`digihuman/interfaces.py` spells out each implementation against its Protocol for mypy to verify, and
the contract suite's registry does the same for the test fakes.
Every remaining `# type: ignore` must name its error code and say why, so none hides a real bug.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"

# "# type: ignore[code]" followed by a "# why" comment on the same line.
_IGNORE = re.compile(r"#\s*type:\s*ignore(?P<codes>\[[^\]]*\])?(?P<rest>.*)$")


def _mypy(*args: str) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (it comes with the dev extra)")
    # The cache lives outside the tree (other runs may share the tree) and makes re-runs take seconds.
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "digihuman-mypy"
    command = [sys.executable, "-m", "mypy", "--cache-dir", str(cache), "--no-error-summary", *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True)


def test_mypy_reports_no_errors() -> None:
    proc = _mypy()
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_fakes_implement_the_protocols() -> None:
    """tests/contracts/backends.py types every factory with its Protocol, so this proves the fakes of
    digihuman/testing/fakes.py implement them, as digihuman/interfaces.py does for the real backends."""
    proc = _mypy("--follow-imports=silent", "tests/contracts")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def ignore_problems(source: str) -> list[str]:
    """What is wrong with each `# type: ignore` in `source`: a missing error code or a missing reason."""
    problems = []
    for number, line in enumerate(source.splitlines(), 1):
        match = _IGNORE.search(line)
        if match is None:
            continue
        codes = match.group("codes")
        if not codes or codes == "[]":
            problems.append(f"{number}: no error code")
        if not re.match(r"\s*#\s*\S", match.group("rest")):
            problems.append(f"{number}: no reason comment after it")
    return problems


def test_every_type_ignore_names_its_code_and_reason() -> None:
    found = {
        str(path.relative_to(REPO)) + ":" + problem
        for path in sorted(SRC.rglob("*.py"))
        for problem in ignore_problems(path.read_text(encoding="utf-8"))
    }
    assert not found, "\n".join(sorted(found))


@pytest.mark.parametrize(
    ("line", "ok"),
    [
        ("x = f()  # type: ignore[arg-type]  # the stub says int, it takes float", True),
        ("x = f()  # type: ignore", False),
        ("x = f()  # type: ignore[]  # why", False),
        ("x = f()  # type: ignore[arg-type]", False),
        ("x = f()  # type:ignore[misc] #", False),
    ],
)
def test_ignore_check_itself(line: str, ok: bool) -> None:
    assert (ignore_problems(line) == []) is ok
