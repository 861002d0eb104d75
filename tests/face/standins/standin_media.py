"""What the face-tool stand-ins share: finding a face, a fake but audio-driven mouth, and writing an MP4.

The stand-ins run as scripts (in place of the real tools' inference.py), so this module is imported by path.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import av
import cv2
import numpy as np
import soundfile


def misbehave_if_asked() -> None:
    """Failure modes the adapter tests trigger through the environment."""
    if message := os.environ.get("STANDIN_CRASH"):
        raise RuntimeError(message)
    if pid_file := os.environ.get("STANDIN_HANG"):
        # Hang like a stuck GPU job, with a child process, to show the whole group gets killed.
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
        with open(pid_file, "w") as out:
            out.write(f"{os.getpid()} {child.pid}\n")
        while True:
            time.sleep(3600)


def find_face(bgr: np.ndarray) -> tuple[int, int, int, int] | None:
    """The largest frontal face (x, y, w, h), or None."""
    gray = cv2.equalizeHist(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    side = max(24, min(gray.shape) // 8)
    faces = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=4, minSize=(side, side))
    if len(faces) == 0:
        return None
    x, y, w, h = max(faces, key=lambda f: f[2] * f[3])
    return int(x), int(y), int(w), int(h)


def read_audio(path: str) -> tuple[np.ndarray, int]:
    pcm, rate = soundfile.read(path, dtype="float32", always_2d=True)
    return pcm.mean(axis=1), rate


def loudness_per_frame(pcm: np.ndarray, rate: int, fps: float, count: int) -> np.ndarray:
    """RMS of the audio under each video frame, scaled to 0..1."""
    levels = np.zeros(count, np.float32)
    for i in range(count):
        window = pcm[int(i * rate / fps) : int((i + 1) * rate / fps)]
        if len(window):
            levels[i] = float(np.sqrt(np.mean(window**2)))
    return np.clip(levels / 0.3, 0.0, 1.0)


def draw_mouth(bgr: np.ndarray, face: tuple[int, int, int, int], openness: float) -> np.ndarray:
    """A dark mouth that opens with the audio: crude, but it moves exactly with the sound."""
    x, y, w, h = face
    out = bgr.copy()
    centre = (x + w // 2, y + int(0.8 * h))
    axes = (max(2, w // 4), max(1, int(openness * h * 0.15)))
    if openness > 0.02:
        cv2.ellipse(out, centre, axes, 0, 0, 360, (20, 10, 40), -1)
    return out


def write_mp4(path: str, frames_bgr: list[np.ndarray], fps: float, pcm: np.ndarray, rate: int) -> None:
    """H.264 video plus AAC audio, like ffmpeg writes for the real tools."""
    height, width = frames_bgr[0].shape[:2]
    with av.open(path, "w") as container:
        video = container.add_stream("libx264", rate=round(fps))
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "ultrafast", "crf": "18"}
        audio = container.add_stream("aac", rate=rate)
        audio.layout = "mono"
        for image in frames_bgr:
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        sound = av.AudioFrame.from_ndarray(pcm[None, :].astype(np.float32), format="flt", layout="mono")
        sound.sample_rate = rate
        for packet in audio.encode(sound):
            container.mux(packet)
        for stream in (audio, video):
            for packet in stream.encode(None):
                container.mux(packet)
