"""Where a recording goes, and how it gets there without ever breaking what was at the path before.

A regular file (or a new one) is replaced atomically: the MP4 is encoded into a hidden file next to it and
renamed over it only when complete, so a failed or cancelled recording leaves the old file as it was.
A symlink is followed: its target is replaced the same way and the link itself stays. A character device
or a FIFO (`/dev/null`, `/dev/stdout` on a pipe, `mkfifo`) is never replaced: the finished file, encoded in
the temp folder, is copied into it. Anything else (a folder, a block device, a socket) is refused.
Folders missing on the way are created when recording starts and removed again if nothing is published.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from digihuman.errors import UserError

TEMP_NAME_BYTES = 180  # of the target's name kept in a temp name: leaves room for the suffix in 255


class OutputPathError(UserError):
    """The recording cannot be written where the user asked."""


@dataclass
class Destination:
    """A checked output path: `real` is where the bytes go; `stream` means copy into it, never replace."""

    path: Path  # as the user gave it, for messages
    real: Path
    stream: bool
    created: list[Path] = field(default_factory=list)  # folders made by prepare(), outermost first

    def prepare(self) -> Path:
        """Create missing folders; return the temporary file to encode into."""
        if self.stream:
            # Never next to a device node (that would be /dev): in the temp folder.
            try:
                fd, name = tempfile.mkstemp(prefix="digihuman-", suffix=".mp4.part")
            except OSError as exc:
                raise _error(
                    self.path, f"cannot make a temporary file in {tempfile.gettempdir()}", exc
                ) from None
            os.close(fd)
            return Path(name)
        missing = [p for p in (self.real.parent, *self.real.parent.parents) if not p.exists()]
        try:
            for folder in reversed(missing):
                folder.mkdir()
                self.created.append(folder)
        except OSError as exc:
            self.discard(None)
            raise _error(self.path, f"cannot create the folder {folder}", exc) from None
        return self.real.with_name(f".{_short(self.real.name)}.{uuid.uuid4().hex[:8]}.part")

    def publish(self, tmp: Path) -> None:
        """Put the finished file in place (worker thread); the temp file is gone afterwards."""
        try:
            if self.stream:
                # Blocks until a reader opens a FIFO, as `cat > fifo` would.
                with tmp.open("rb") as source, self.path.open("wb") as sink:
                    shutil.copyfileobj(source, sink, 1 << 20)
                tmp.unlink()
                return
            if self.real.exists() and not self.real.is_file():  # replaced by something else meanwhile
                raise OutputPathError(f"cannot record to {self.path}: it is no longer a regular file")
            os.replace(tmp, self.real)
        except OSError as exc:
            raise _error(self.path, "cannot write the recording", exc) from None
        finally:
            tmp.unlink(missing_ok=True)

    def discard(self, tmp: Path | None) -> None:
        """Nothing is published: remove the temp file and the folders prepare() made."""
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        for folder in reversed(self.created):
            try:
                folder.rmdir()
            except OSError:  # something else was put there meanwhile: leave it
                break
        self.created.clear()


def plan(path: Path | str) -> Destination:
    """Check that an MP4 can be written at `path` and decide how; OutputPathError (one line) if not.

    Call it before any slow work starts, so a typo in the path fails in a second, not after a reply.
    Nothing is created: a probe file in the nearest existing folder is made and removed at once.
    """
    path = Path(path).expanduser()
    try:
        return _plan(path)
    except OutputPathError:
        raise
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python 3.11)
        raise _error(path, "cannot use this path", exc) from None


def check_writable(path: Path | str) -> Path:
    """`plan(path)` for callers that only need the check; returns the path with `~` expanded."""
    return plan(path).path


def check_folder(folder: Path | str) -> Path:
    """Check that a folder for recordings can be used or created at `folder` (nothing is created)."""
    folder = Path(folder).expanduser()
    try:
        if folder.exists():
            if not folder.is_dir():
                raise OutputPathError(f"cannot record to {folder}: it exists and is not a folder")
            _probe(folder, folder)
        else:
            _probe(_existing_ancestor(folder, folder), folder)
    except OutputPathError:
        raise
    except (OSError, RuntimeError) as exc:
        raise _error(folder, "cannot use this folder", exc) from None
    return folder


def _plan(path: Path) -> Destination:
    try:
        mode: int | None = os.stat(path).st_mode  # follows links, /proc/self/fd/1 included
    except FileNotFoundError:
        mode = None
    if mode is not None and stat.S_ISDIR(mode):
        raise OutputPathError(
            f"cannot record to {path}: it is a folder; give a file name such as {path / 'reply.mp4'}"
        )
    if mode is not None and (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):
        if not os.access(path, os.W_OK):
            raise OutputPathError(f"cannot record to {path}: it is not writable; choose another path")
        return Destination(path, path, stream=True)
    if mode is not None and not stat.S_ISREG(mode):
        raise OutputPathError(
            f"cannot record to {path}: it is not a regular file (a block device or socket); give a file name"
        )
    real = path.resolve() if path.is_symlink() else path  # a link is followed, not replaced
    ancestor = _existing_ancestor(real.parent, path)
    name_max = _name_max(ancestor)
    if len(real.name.encode("utf-8", "surrogateescape")) > name_max:
        raise OutputPathError(
            f"cannot record to {path}: the file name is longer than {name_max} bytes; use a shorter one"
        )
    _probe(ancestor, path)
    return Destination(path, real, stream=False)


def _existing_ancestor(folder: Path, shown: Path) -> Path:
    """The nearest folder on the way to `folder` that exists; error if a file is in the way."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            if not candidate.is_dir():
                raise OutputPathError(f"cannot record to {shown}: {candidate} is not a folder")
            return candidate
    return Path(".")


def _probe(folder: Path, shown: Path) -> None:
    # A real write test: permission bits say little for root or read-only file systems.
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".digihuman.", suffix=".probe"):
            pass
    except OSError as exc:
        raise _error(shown, f"the folder {folder} is not writable", exc) from None


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def _short(name: str) -> str:
    return name.encode("utf-8", "surrogateescape")[:TEMP_NAME_BYTES].decode("utf-8", "ignore")


def _error(path: Path, what: str, exc: BaseException) -> OutputPathError:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return OutputPathError(f"cannot record to {path}: {what} ({reason}); choose another path")
