"""One wording for a pydantic validation error: the first problem, as one line that names the key.

Config files, character files, face parameters and command-line flags are all validated by pydantic
models; users see the same shape of message for each: `WHERE: unknown KIND 'a.b'` for a key the model
does not have, otherwise `WHERE: KIND 'a.b': what is wrong (got VALUE)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError


@dataclass(frozen=True, slots=True)
class Problem:
    """The first problem pydantic found."""

    parts: tuple[str, ...]  # the key's path: ("face", "size")
    message: str  # pydantic's message without its "Value error, " prefix
    unknown: bool  # a key the model does not have
    missing: bool  # a required key that is absent
    input: Any  # the rejected value

    @property
    def key(self) -> str:
        return ".".join(self.parts)


def first_problem(error: ValidationError) -> Problem:
    first = error.errors()[0]
    return Problem(
        parts=tuple(str(p) for p in first["loc"]),
        message=str(first["msg"]).removeprefix("Value error, "),
        unknown=first["type"] == "extra_forbidden",
        missing=first["type"] == "missing",
        input=first.get("input"),
    )


def describe_invalid(error: ValidationError, where: str, *, kind: str = "key") -> str:
    """`where: unknown key 'x'` or `where: key 'x': message (got value)`; `kind` names what a key is."""
    problem = first_problem(error)
    key = problem.key or "(root)"
    if problem.unknown:
        return f"{where}: unknown {kind} '{key}'"
    if problem.missing:  # pydantic's input is then the enclosing table: noise
        return f"{where}: {kind} '{key}': {problem.message}"
    return f"{where}: {kind} '{key}': {problem.message} (got {problem.input!r})"
