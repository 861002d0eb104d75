"""Errors the user can fix. The CLI prints them as one line, without a traceback."""


class UserError(Exception):
    """A problem with the user's input or environment; the message names the fix."""

    exit_code = 2


class ConfigError(UserError):
    """The config file or an environment override is invalid."""


class CharacterError(UserError):
    """A character is unknown, invalid, or its portrait cannot be used."""


class BackendError(UserError):
    """A backend (LLM, TTS, face) is unreachable, missing, or answered with an error."""

    exit_code = 3


class MissingExtraError(BackendError):
    """An optional dependency is not installed."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(f"{package} is not installed: run `.venv/bin/pip install 'digihuman[{extra}]'`")
