"""Logging with the session id on every line.

The id lives in a context variable: a session sets it in the context its tasks run in, asyncio copies the
context into every task and `to_thread` worker they start, and a filter on the handler stamps each record.
Nothing process-wide changes when a session starts, so many sessions share one process and one handler.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar

SESSION_ID: ContextVar[str] = ContextVar("digihuman_session_id", default="-")
FORMAT = "%(levelname)s %(name)s [%(session)s]: %(message)s"


class SessionFilter(logging.Filter):
    """Adds `record.session`: the id of the session the code runs for, or "-"."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.session = SESSION_ID.get()
        return True


def session_handler(handler: logging.Handler) -> logging.Handler:
    """`handler`, formatting with the session id."""
    handler.addFilter(SessionFilter())
    handler.setFormatter(logging.Formatter(FORMAT))
    return handler


@contextlib.contextmanager
def session_context(session_id: str) -> Iterator[None]:
    """Run a block (and the tasks it starts) as part of session `session_id`."""
    token = SESSION_ID.set(session_id)
    try:
        yield
    finally:
        SESSION_ID.reset(token)
