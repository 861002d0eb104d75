"""A bug, reported as a user should see it: one line on the terminal, the traceback in a log file."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from digihuman import __version__


def one_line(exc: BaseException) -> str:
    """The exception's message on one line, at most 300 characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def log_crash(exc: BaseException) -> str:
    """Write the traceback under $DIGIHUMAN_HOME/logs (else the temp folder); return the file's path."""
    import tempfile
    import time
    import traceback

    text = f"digihuman {__version__}: {' '.join(sys.argv)}\n" + "".join(traceback.format_exception(exc))
    name = f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    folders: list[Callable[[], Path]] = [_home_logs, lambda: Path(tempfile.gettempdir())]
    for folder in folders:
        try:
            path = folder() / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8", errors="replace")
            return str(path)
        except Exception:  # a broken home (a file, read-only, full): try the next place
            continue
    return "nowhere: no writable log folder"


def _home_logs() -> Path:
    from digihuman.config import home_dir

    return home_dir() / "logs"
