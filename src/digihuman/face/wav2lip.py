"""Wav2Lip (Rudrabha/Wav2Lip) as a face backend: its inference.py runs per utterance in its own env.

Facts this adapter relies on (reference/backends.md and its inference.py):
- it writes fixed relative paths (temp/result.avi, then ffmpeg muxes --outfile), so each job runs in its own
  directory (links to the repo plus a private temp/);
- it decides "image or video" by `face.split('.')[1]` and shells out to ffmpeg with unquoted paths, so the
  face, audio and output are passed as plain relative names inside the job directory;
- it needs the `ffmpeg` command on its PATH; when ffmpeg fails it still exits 0 without a video;
- no face: it raises ValueError('Face not detected! ...'). The mouth is rendered at 96x96 (blurry when large).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from digihuman.errors import BackendError
from digihuman.face.subprocess_face import JobResult, SubprocessFace, SubprocessParams

NO_FACE_MESSAGE = "Face not detected!"
OUTFILE = "result.mp4"


class Wav2LipParams(SubprocessParams):
    checkpoint_path: Path | None = Field(None, description="Default: <repo>/checkpoints/wav2lip_gan.pth.")
    pads: tuple[int, int, int, int] = Field((0, 10, 0, 0), description="top, bottom, left, right (chin!).")
    resize_factor: int = Field(1, ge=1)
    nosmooth: bool = False
    fps: float = Field(25.0, gt=0)
    face_det_batch_size: int = Field(16, ge=1)
    wav2lip_batch_size: int = Field(128, ge=1)


class Wav2LipFace(SubprocessFace):
    name: ClassVar[str] = "wav2lip"
    tool: ClassVar[str] = "Wav2Lip"
    params_model: ClassVar[type[SubprocessParams]] = Wav2LipParams
    private_dirs: ClassVar[tuple[str, ...]] = ("temp",)
    private_names: ClassVar[frozenset[str]] = SubprocessFace.private_names | {OUTFILE}
    params: Wav2LipParams

    @property
    def checkpoint_path(self) -> Path:
        return (
            (self.params.checkpoint_path or self.repo / "checkpoints" / "wav2lip_gan.pth")
            .expanduser()
            .resolve()
        )

    def _check_checkpoint(self) -> None:
        if not self.checkpoint_path.is_file():
            raise BackendError(
                f"Wav2Lip face: checkpoint {self.checkpoint_path} does not exist: download wav2lip_gan.pth "
                "there or set face.params.checkpoint_path"
            )

    def _command(self, job: Path) -> list[str]:
        p = self.params
        argv = [
            str(self.python),
            str(self.script),
            "--checkpoint_path", str(self.checkpoint_path),
            "--face", "source.png",
            "--audio", "audio.wav",
            "--outfile", OUTFILE,
            "--fps", f"{p.fps:g}",
            "--pads", *(str(v) for v in p.pads),
            "--resize_factor", str(p.resize_factor),
            "--face_det_batch_size", str(p.face_det_batch_size),
            "--wav2lip_batch_size", str(p.wav2lip_batch_size),
        ]  # fmt: skip
        if p.nosmooth:
            argv.append("--nosmooth")
        return argv

    def _find_output(self, job: Path, result: JobResult) -> Path:
        video = job / OUTFILE
        if video.is_file() and video.stat().st_size > 0:
            return video
        if NO_FACE_MESSAGE in result.output:
            raise BackendError(
                f"no face found by Wav2Lip in {self.portrait}: use a clear, frontal portrait "
                "(or widen face.params.pads)"
            )
        if result.returncode == 0 and shutil.which("ffmpeg", path=self._path_env()) is None:
            raise BackendError(
                "Wav2Lip wrote no video: it needs the ffmpeg command on its PATH (apt-get install ffmpeg)"
            )
        raise self._failure(result)

    def _path_env(self) -> str | None:
        return self.params.env.get("PATH", os.environ.get("PATH"))
