"""The 2-D rig: a square portrait crop plus precomputed displacement fields ("2-D blendshapes").

All fields are *backward* maps for `cv2.remap`: the output pixel p shows the source pixel p + d(p). Each
layer covers only its own box of the image, so the background outside the head is never touched:

- head: roll, nod, turn and breath fields over the head-and-neck box, each scaled by a feathered mask that
  is exactly zero outside the head, hair and upper neck (and falls to zero down the neck).
- mouth: the jaw opens along a "split" curve (the lower inner lip): everything below it moves down by up
  to `jaw_px`, shaped like a lens between the mouth corners and rigid at the chin; `min(t, opening)` keeps
  the map continuous, so the gap is a stretch that the mouth-interior layer paints over. Wide and round
  scale the lips horizontally; closed slides the lower lip up over a rest gap (a smiling photo's teeth).
- eyes: the upper lid slides down over the eye by `blink * gap`; below the lid edge the eye stays put.

A rig stores its source crop and landmarks too, so it can be rebuilt at another size in a few tens of
milliseconds without the landmark detector (`Rig.resized`).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from digihuman.errors import CharacterError
from digihuman.face import landmarks as lmk
from digihuman.face.rig_layers import (
    CROP_FACE_HEIGHTS,
    FACE_CENTRE_FROM_TOP,
    FORMAT_VERSION,
    JAW_OPEN,
    PARTED_LIPS,
    SOURCE_MAX_SIDE,
    EyeLayer,
    HeadLayer,
    MouthLayer,
    eye_layer,
    head_layer,
    layer_anchor,
    mouth_layer,
)

logger = logging.getLogger(__name__)


@dataclass
class Rig:
    """A portrait prepared for animation at `size` x `size` pixels."""

    size: int
    image: np.ndarray  # (size, size, 3) uint8
    landmarks: np.ndarray  # (478, 2) float32 in image pixels
    jaw_px: float
    head: HeadLayer
    mouth: MouthLayer
    eyes: tuple[EyeLayer, EyeLayer]
    source: np.ndarray  # the square crop at up to SOURCE_MAX_SIDE px (for rebuilding at other sizes)
    source_landmarks: np.ndarray

    def __post_init__(self) -> None:
        # One rig is shared by every session showing the character and read by several render threads:
        # read-only arrays make an in-place write fail loudly instead of changing everyone's face.
        layers = (self.head, self.mouth, *self.eyes)
        arrays = [self.image, self.landmarks, self.source, self.source_landmarks]
        arrays += [getattr(layer, item.name) for layer in layers for item in fields(layer)]
        for array in arrays:
            if isinstance(array, np.ndarray):
                array.setflags(write=False)

    @property
    def face_height(self) -> float:
        return lmk.face_height(self.landmarks)

    @property
    def mouth_rests_open(self) -> bool:
        """Does the photo show parted lips (teeth) at rest?"""
        return float(self.mouth.params[2]) >= PARTED_LIPS * self.face_height

    def resized(self, size: int) -> Rig:
        """The same portrait rigged at another output size."""
        if size == self.size:
            return self
        return rig_from_crop(self.source, self.source_landmarks, size)

    def motion_mask(self) -> np.ndarray:
        """(size, size) bool: every pixel a frame may change, for head weights within [-1, 1].

        The head mask, plus the mouth and eye layers' support grown by how far the head can carry them.
        """
        mask = np.zeros((self.size, self.size), bool)
        x0, y0, x1, y1 = self.head.box
        mask[y0:y1, x0:x1] = self.head.mask > 0
        local = np.zeros_like(mask)
        mouth = self.mouth
        mouth_support = (
            (mouth.falloff > 0) | np.any(mouth.horizontal != 0, axis=-1) | np.any(mouth.closed != 0, axis=-1)
        )
        carry = 0.0
        for box, support in (
            (mouth.box, mouth_support),
            (self.eyes[0].box, np.ones(self.eyes[0].gap.shape, bool)),
            (self.eyes[1].box, np.ones(self.eyes[1].gap.shape, bool)),
        ):
            bx0, by0, bx1, by1 = (int(v) for v in box)
            local[by0:by1, bx0:bx1] |= support
            cx, cy = layer_anchor(box, self.head.box)
            carry = max(carry, float(np.abs(self.head.fields[:, cy, cx]).sum(axis=0).max()))
        reach = math.ceil(carry) + 1
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
        return mask | cv2.dilate(local.astype(np.uint8), kernel).astype(bool)

    def save(self, path: Path) -> None:
        arrays: dict[str, Any] = {  # Any: numpy's stub reads ** as its bool keyword arguments
            "image": self.image,
            "landmarks": self.landmarks,
            "source": self.source,
            "source_landmarks": self.source_landmarks,
        }
        for prefix, layer in (("head", self.head), ("mouth", self.mouth), ("eye0", self.eyes[0]),
                              ("eye1", self.eyes[1])):  # fmt: skip
            for item in fields(layer):
                value = getattr(layer, item.name)
                # Fields are smooth and small: half precision halves the file at no visible cost.
                if value.dtype == np.float32 and value.ndim >= 2:
                    value = value.astype(np.float16)
                arrays[f"{prefix}.{item.name}"] = value
        meta = {"format": FORMAT_VERSION, "size": self.size, "jaw_px": self.jaw_px}
        arrays["meta"] = np.array(json.dumps(meta))
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as file:
            np.savez_compressed(file, **arrays)

    @classmethod
    def load(cls, path: Path, size: int | None = None) -> Rig:
        """Read a rig; an old format (or another `size`) is rebuilt from the stored crop."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
        except FileNotFoundError:
            raise CharacterError(f"rig {path} does not exist; recreate the character") from None
        except (OSError, ValueError, EOFError) as exc:
            raise CharacterError(f"rig {path} is unreadable ({exc}); recreate the character") from None
        try:
            meta = json.loads(str(arrays["meta"]))
            source, source_landmarks = arrays["source"], arrays["source_landmarks"].astype(np.float32)
        except (KeyError, ValueError):
            raise CharacterError(f"rig {path} is not a digihuman rig; recreate the character") from None
        wanted = size or int(meta.get("size", 512))
        if meta.get("format") != FORMAT_VERSION or wanted != meta.get("size"):
            logger.info("rebuilding rig %s at %d px (format %s)", path, wanted, meta.get("format"))
            return rig_from_crop(source, source_landmarks, wanted)

        def layer(kind: type[Any], prefix: str) -> Any:
            values = {}
            for item in fields(kind):
                value = arrays[f"{prefix}.{item.name}"]
                values[item.name] = value.astype(np.float32) if value.dtype == np.float16 else value
            return kind(**values)

        try:
            return cls(
                size=int(meta["size"]),
                image=arrays["image"],
                landmarks=arrays["landmarks"].astype(np.float32),
                jaw_px=float(meta["jaw_px"]),
                head=layer(HeadLayer, "head"),
                mouth=layer(MouthLayer, "mouth"),
                eyes=(layer(EyeLayer, "eye0"), layer(EyeLayer, "eye1")),
                source=source,
                source_landmarks=source_landmarks,
            )
        except (KeyError, TypeError, ValueError):
            # Fields missing or damaged, the crop intact: the rig can still be made again.
            logger.warning("rig %s is incomplete; rebuilding it from its stored crop", path)
            return rig_from_crop(source, source_landmarks, wanted)


def build_rig(image: np.ndarray, landmarks: np.ndarray, size: int = 512) -> Rig:
    """Crop the portrait to a square around the face and rig it at `size` x `size`."""
    if size < 64:
        raise CharacterError(f"face size {size} is too small; use at least 64 px")
    source, source_landmarks = crop_portrait(image, landmarks)
    return rig_from_crop(source, source_landmarks, size)


def crop_portrait(image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A square crop with the face centred in its upper part, at up to SOURCE_MAX_SIDE px.

    The crop stays inside the photo where it can; where the photo ends, its edge pixels are repeated.
    """
    height = lmk.face_height(landmarks)
    centre = (landmarks[lmk.FOREHEAD_TOP] + landmarks[lmk.CHIN]) / 2
    side = CROP_FACE_HEIGHTS * height
    x0 = centre[0] - side / 2
    y0 = centre[1] - FACE_CENTRE_FROM_TOP * side
    img_h, img_w = image.shape[:2]
    # Slide the crop back inside the photo, but never so far that the face leaves its middle half.
    x0 = _slide_inside(x0, side, img_w, limit=side / 4)
    y0 = _slide_inside(y0, side, img_h, limit=side / 8)
    out_side = int(min(SOURCE_MAX_SIDE, round(side)))
    scale = out_side / side
    matrix = np.array([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]], np.float64)
    if scale < 0.5:
        # Area-average first so the affine warp below does not alias a large downscale.
        shrink = scale * 2
        image = cv2.resize(image, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
        matrix[:, :2] /= shrink
    crop = cv2.warpAffine(
        image, matrix, (out_side, out_side), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )
    moved = (landmarks - np.array([x0, y0])) * scale
    return crop, moved.astype(np.float32)


def _slide_inside(start: float, side: float, extent: int, limit: float) -> float:
    if side >= extent:
        return start
    target = min(max(start, 0.0), extent - side)
    return start + float(np.clip(target - start, -limit, limit))


def rig_from_crop(source: np.ndarray, source_landmarks: np.ndarray, size: int) -> Rig:
    began = time.perf_counter()
    scale = size / source.shape[0]
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    image = cv2.resize(source, (size, size), interpolation=interpolation)
    points = (source_landmarks * scale).astype(np.float32)
    height = lmk.face_height(points)
    jaw_px = JAW_OPEN * height
    rig = Rig(
        size=size,
        image=image,
        landmarks=points,
        jaw_px=jaw_px,
        head=head_layer(points, size),
        mouth=mouth_layer(image, points, jaw_px),
        eyes=(
            eye_layer(points, lmk.RIGHT_EYE_UPPER, lmk.RIGHT_EYE_LOWER, lmk.RIGHT_BROW, size),
            eye_layer(points, lmk.LEFT_EYE_UPPER, lmk.LEFT_EYE_LOWER, lmk.LEFT_BROW, size),
        ),
        source=source,
        source_landmarks=source_landmarks.astype(np.float32),
    )
    logger.debug("rigged %d px portrait in %.0f ms", size, 1000 * (time.perf_counter() - began))
    return rig


# --- geometry helpers -------------------------------------------------------------------------------
