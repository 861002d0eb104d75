"""Shared machinery for slow face backends that run a tool as a subprocess in its own Python environment.

One job per utterance: the audio goes to a WAV in a fresh job directory, the tool runs there (its cwd holds
symlinks to the tool's repo, so the repo's relative paths resolve while the fixed scratch paths some tools
write, like Wav2Lip's temp/, stay private to the job), and its MP4 is decoded into frames at our fps and
size. The job directory is removed afterwards. A timeout or a cancelled turn kills the tool's whole process
group.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import os
import shutil
import signal
import tempfile
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from digihuman.errors import BackendError, CharacterError
from digihuman.face.base import Face
from digihuman.media import AudioChunk, Utterance, VideoFrame
from digihuman.validation import describe_invalid

logger = logging.getLogger(__name__)

OUTPUT_TAIL_BYTES = 64 * 1024  # keep the end of the tool's output for error messages, not all of it
FRAMES_PER_BATCH = 8  # frames decoded per worker-thread hop


class SubprocessParams(BaseModel):
    """Face params common to subprocess backends (`[face.params]` in character.toml)."""

    model_config = ConfigDict(extra="forbid")

    python: str = Field(description="The python executable of the tool's own environment.")
    repo: Path = Field(description="The tool's repository folder (holds inference.py).")
    timeout_s: float = Field(600.0, gt=0, description="Kill a job that runs longer than this.")
    max_jobs: int = Field(1, ge=1, le=8, description="Jobs run at once; more queue (one GPU is easily full).")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables for the tool.")


@dataclass(frozen=True, slots=True)
class JobResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + "\n" + self.stderr

    def last_line(self) -> str:
        """The last meaningful line the tool printed: usually the exception of a crash."""
        for text in (self.stderr, self.stdout):
            lines = [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
            if lines:
                return lines[-1][:300]
        return "(no output)"


class SubprocessFace(ABC):
    """Base of the SadTalker and Wav2Lip adapters; subclasses build the command line and find the output.

    `idle`, when given (e.g. the built-in animator for the same portrait), supplies `idle_frame` and is
    closed with this face; otherwise the idle frame is the still portrait.
    """

    name: ClassVar[str] = "subprocess"
    tool: ClassVar[str] = "the face tool"
    params_model: ClassVar[type[SubprocessParams]] = SubprocessParams
    #: Folders the tool writes to by relative path: real, per-job folders instead of links into the repo.
    private_dirs: ClassVar[tuple[str, ...]] = ()
    #: Names in the job directory that are ours, never links into the repo.
    private_names: ClassVar[frozenset[str]] = frozenset({"audio.wav", "source.png", "results", "temp"})
    realtime = False

    def __init__(
        self,
        portrait: Path,
        params: Mapping[str, Any] | SubprocessParams,
        *,
        size: int = 512,
        fps: int = 25,
        idle: Face | None = None,
    ) -> None:
        self.params = self._validate(params)
        self.size = size
        self.fps = fps
        self.portrait = Path(portrait)
        self.idle = idle
        self.python = self._find_python(self.params.python)
        self.repo = self._find_repo(self.params.repo)
        self.script = self.repo / "inference.py"
        self._check_checkpoint()
        self.still = load_still(self.portrait, size)
        self._jobs = asyncio.Semaphore(self.params.max_jobs)
        self._running: set[asyncio.subprocess.Process] = set()

    # -- the Face protocol ------------------------------------------------------------------------------

    async def animate(self, audio: AsyncIterator[AudioChunk]) -> AsyncIterator[VideoFrame]:
        """Collect the utterance, render it with the tool, then yield its frames (pts from 0, at `fps`)."""
        utterance = Utterance([chunk async for chunk in audio])
        pcm = utterance.pcm()
        if len(pcm) == 0:
            return
        turn_id = utterance.chunks[0].turn_id
        count = math.ceil(len(pcm) / utterance.sample_rate * self.fps - 1e-9)
        job = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix=f"digihuman-{self.name}-"))
        try:
            await asyncio.to_thread(self._prepare_job, job, pcm, utterance.sample_rate)
            async with self._jobs:
                result = await self._run(self._command(job), cwd=job)
            video = await asyncio.to_thread(self._find_output, job, result)
            frames = iter_video_frames(video, count, self.fps, self.size)
            try:
                index = 0
                while batch := await asyncio.to_thread(list, itertools.islice(frames, FRAMES_PER_BATCH)):
                    for image in batch:
                        yield VideoFrame(image=image, pts_s=index / self.fps, turn_id=turn_id)
                        index += 1
            finally:
                frames.close()
        finally:
            await asyncio.to_thread(shutil.rmtree, job, True)

    def idle_frame(self, t_s: float) -> np.ndarray:
        if self.idle is not None:
            return self.idle.idle_frame(t_s)
        return self.still

    async def aclose(self) -> None:
        for process in list(self._running):
            kill_group(process)
        if self.idle is not None:
            await self.idle.aclose()

    # -- subclass hooks ---------------------------------------------------------------------------------

    @abstractmethod
    def _command(self, job: Path) -> list[str]:
        """The full argv, run with cwd=job."""

    @abstractmethod
    def _find_output(self, job: Path, result: JobResult) -> Path:
        """The MP4 the tool wrote, or a BackendError saying why there is none."""

    @abstractmethod
    def _check_checkpoint(self) -> None:
        """Raise a BackendError when the tool's weights are not where the params say."""

    # -- shared steps -----------------------------------------------------------------------------------

    def _prepare_job(self, job: Path, pcm: np.ndarray, sample_rate: int) -> None:
        """Write the audio and the portrait, and link the repo's contents into the job's working dir."""
        import cv2
        import soundfile

        soundfile.write(job / "audio.wav", pcm, sample_rate, subtype="PCM_16")
        # The prepared still: both tools keep its framing, so idle and talking frames match. H.264 needs
        # even sides.
        source = self.still[: self.size // 2 * 2, : self.size // 2 * 2]
        cv2.imwrite(str(job / "source.png"), cv2.cvtColor(source, cv2.COLOR_RGB2BGR))
        for entry in self.repo.iterdir():
            target = job / entry.name
            if not target.exists() and entry.name not in self.private_names:
                target.symlink_to(entry, target_is_directory=entry.is_dir())
        for name in self.private_dirs:
            (job / name).mkdir(exist_ok=True)

    async def _run(self, argv: list[str], *, cwd: Path) -> JobResult:
        env = {**os.environ, **self.params.env}
        logger.info("%s: running %s", self.tool, " ".join(argv))
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # its own process group: a kill reaches its children too
        )
        self._running.add(process)
        assert process.stdout is not None and process.stderr is not None
        readers = [
            asyncio.create_task(read_tail(process.stdout)),
            asyncio.create_task(read_tail(process.stderr)),
        ]
        try:
            await asyncio.wait_for(process.wait(), self.params.timeout_s)
        except TimeoutError:
            await stop(process, readers)
            raise BackendError(
                f"{self.tool} took longer than {self.params.timeout_s:g} s and was stopped: "
                "raise face.params.timeout_s or use a faster face backend"
            ) from None
        except BaseException:  # the turn was cancelled: stop the tool with it
            await stop(process, readers)
            raise
        finally:
            self._running.discard(process)
        kill_group(process)  # leftovers (an ffmpeg it started) would hold the pipes open
        stdout, stderr = await collect(readers)
        return JobResult(process.returncode or 0, stdout, stderr)

    def _validate(self, params: Mapping[str, Any] | SubprocessParams) -> Any:
        if isinstance(params, self.params_model):
            return params
        try:
            return self.params_model(**dict(params))
        except ValidationError as exc:
            raise BackendError(describe_invalid(exc, f"{self.tool} face", kind="face.params key")) from None

    def _find_python(self, python: str) -> Path:
        found = shutil.which(python) if os.sep not in python else python
        path = Path(found or python).expanduser()
        if not path.is_file() or not os.access(path, os.X_OK):
            raise BackendError(
                f"{self.tool} face: python '{python}' is not an executable: set face.params.python to "
                f"the python of {self.tool}'s own environment"
            )
        return path

    def _find_repo(self, repo: Path) -> Path:
        repo = repo.expanduser().resolve()
        if not (repo / "inference.py").is_file():
            raise BackendError(
                f"{self.tool} face: {repo} is not a {self.tool} checkout (no inference.py): "
                "set face.params.repo to the cloned repository"
            )
        return repo

    def _failure(self, result: JobResult) -> BackendError:
        """A crash (non-zero exit) or a run that wrote nothing, as one line."""
        if result.returncode != 0:
            return BackendError(f"{self.tool} failed (exit {result.returncode}): {result.last_line()}")
        return BackendError(f"{self.tool} finished without writing a video: {result.last_line()}")


def load_still(portrait: Path, size: int) -> np.ndarray:
    """The portrait as an RGB `size` x `size` image (centre-cropped to a square): the idle frame."""
    import cv2

    bgr = cv2.imread(str(portrait), cv2.IMREAD_COLOR)
    if bgr is None:
        raise CharacterError(f"portrait {portrait} is missing or not an image: use a PNG or JPEG photo")
    return fit_square(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), size)


def fit_square(rgb: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square and resize to `size` x `size`."""
    import cv2

    height, width = rgb.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = rgb[top : top + side, left : left + side]
    if side == size:
        return np.ascontiguousarray(square)
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return cv2.resize(square, (size, size), interpolation=interpolation)


def iter_video_frames(path: Path, count: int, fps: int, size: int) -> Generator[np.ndarray, None, None]:
    """Exactly `count` frames at `fps` from the video's first video stream, resized to `size`.

    Frame i shows what the video shows at i / fps, whatever its own rate; a video shorter than the audio
    holds its last frame (tools round their frame count down).
    """
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise BackendError(f"the face video {path.name} cannot be read: {exc}") from None
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        decoded = container.decode(stream)
        first_s: float | None = None
        shown: Any = None  # the av.VideoFrame on screen at the current output time
        image: np.ndarray | None = None  # ... converted, once, however often it repeats
        upcoming = next(decoded, None)
        for index in range(count):
            due_s = index / fps
            while upcoming is not None:
                upcoming_s = float(upcoming.time or 0.0)
                if first_s is None:
                    first_s = upcoming_s
                # Half a frame of slack: a 25 fps source resampled to 25 fps maps frame for frame.
                if shown is not None and upcoming_s - first_s > due_s + 0.5 / fps:
                    break
                shown, image = upcoming, None
                upcoming = next(decoded, None)
            if shown is None:
                raise BackendError(f"the face video {path.name} has no frames")
            if image is None:
                image = fit_square(shown.to_ndarray(format="rgb24"), size)
            yield image
    finally:
        container.close()


async def read_tail(stream: asyncio.StreamReader) -> str:
    """Read a pipe to its end (so the tool never blocks on a full pipe), keeping only the last bytes."""
    tail = bytearray()
    while chunk := await stream.read(65536):
        tail += chunk
        if len(tail) > OUTPUT_TAIL_BYTES:
            del tail[: len(tail) - OUTPUT_TAIL_BYTES]
    return tail.decode("utf-8", errors="replace")


async def collect(readers: list[asyncio.Task[str]], timeout_s: float = 5.0) -> list[str]:
    """The readers' text; a pipe still held open by an escaped grandchild is abandoned after a while."""
    _, pending = await asyncio.wait(readers, timeout=timeout_s)
    for reader in pending:
        reader.cancel()
    return [reader.result() if reader.done() and not reader.cancelled() else "" for reader in readers]


async def stop(process: asyncio.subprocess.Process, readers: list[asyncio.Task[str]]) -> None:
    """Kill the tool's group and wait for it, so nothing outlives the job (or the event loop)."""
    kill_group(process)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(process.wait(), 5.0)
    await collect(readers)


def kill_group(process: asyncio.subprocess.Process) -> None:
    """SIGKILL the process's whole group (it leads its own session); quiet when it is already gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
