"""SadTalker (OpenTalker/SadTalker) as a face backend: its inference.py runs per utterance in its own env.

Far slower than real time (minutes per sentence on a CPU), so the turn engine renders sentence N+1 while N
plays. Facts this adapter relies on (reference/backends.md):
- it is run by its path inside its repo (it finds src/config relative to argv[0]) and writes scratch files
  relative to its cwd, so each job runs in a fresh directory of links to the repo;
- it writes `<result_dir>/<YYYY_MM_DD_HH.MM.SS>.mp4` (one-second names: a fresh result_dir per job), 25 fps;
- when it finds no face it prints "Can't get the coeffs of the input" and exits 0: check the file, not the
  exit code.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from digihuman.errors import BackendError
from digihuman.face.subprocess_face import JobResult, SubprocessFace, SubprocessParams

NO_FACE_MESSAGE = "Can't get the coeffs of the input"


class SadTalkerParams(SubprocessParams):
    checkpoint_dir: Path | None = Field(None, description="Default: <repo>/checkpoints.")
    still: bool = Field(True, description="Keep the head still (recommended for portraits).")
    preprocess: Literal["crop", "extcrop", "resize", "full", "extfull"] = Field(
        "full", description="'full' animates the face inside the whole portrait, so idle and talking match."
    )
    size: Literal[256, 512] = Field(256, description="SadTalker's render size (its checkpoint must exist).")
    enhancer: Literal["gfpgan", "RestoreFormer"] | None = Field(
        None, description="Face restoration; needs its weights installed in the SadTalker env."
    )
    pose_style: int = Field(0, ge=0, le=45)
    expression_scale: float = Field(1.0, gt=0)
    cpu: bool = False
    batch_size: int = Field(2, ge=1)


class SadTalkerFace(SubprocessFace):
    name: ClassVar[str] = "sadtalker"
    tool: ClassVar[str] = "SadTalker"
    params_model: ClassVar[type[SubprocessParams]] = SadTalkerParams
    private_dirs: ClassVar[tuple[str, ...]] = ("results",)
    params: SadTalkerParams

    @property
    def checkpoint_dir(self) -> Path:
        return (self.params.checkpoint_dir or self.repo / "checkpoints").expanduser().resolve()

    def _check_checkpoint(self) -> None:
        if not self.checkpoint_dir.is_dir():
            raise BackendError(
                f"SadTalker face: checkpoint folder {self.checkpoint_dir} does not exist: download "
                "SadTalker's checkpoints there or set face.params.checkpoint_dir"
            )

    def _command(self, job: Path) -> list[str]:
        p = self.params
        argv = [
            str(self.python),
            str(self.script),
            "--driven_audio", str(job / "audio.wav"),
            "--source_image", str(job / "source.png"),
            "--result_dir", str(job / "results"),
            "--checkpoint_dir", str(self.checkpoint_dir),
            "--preprocess", p.preprocess,
            "--size", str(p.size),
            "--pose_style", str(p.pose_style),
            "--expression_scale", f"{p.expression_scale:g}",
            "--batch_size", str(p.batch_size),
        ]  # fmt: skip
        if p.still:
            argv.append("--still")
        if p.enhancer:
            argv += ["--enhancer", p.enhancer]
        if p.cpu:
            argv.append("--cpu")
        return argv

    def _find_output(self, job: Path, result: JobResult) -> Path:
        videos = sorted((job / "results").glob("*.mp4"))
        if videos:
            return videos[-1]
        if NO_FACE_MESSAGE in result.output:
            raise BackendError(
                f"no face found by SadTalker in {self.portrait}: use a clear, frontal, well-lit portrait"
            )
        raise self._failure(result)
