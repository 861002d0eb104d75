"""One frame from a rig and a set of weights: mix the fields, one `cv2.remap`, paint the mouth interior.

Only the head box is warped; the rest of the frame is the portrait itself, so the background stays
pixel-identical. Buffers are allocated once per renderer; a renderer is not thread-safe (use one per
worker thread).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from digihuman.face.rig import Rig
from digihuman.face.rig_layers import ROUND_SQUEEZE, WIDE_STRETCH, EyeLayer, layer_anchor


@dataclass(frozen=True, slots=True)
class FaceWeights:
    """How far each blendshape is applied. Mouth and blink in [0, 1]; head motion in [-1, 1]."""

    jaw: float = 0.0
    wide: float = 0.0
    pucker: float = 0.0
    closed: float = 0.0
    blink: float = 0.0
    roll: float = 0.0
    nod: float = 0.0
    turn: float = 0.0
    breath: float = 0.0


@dataclass(slots=True)
class _MouthState:
    """Where the mouth layer landed this frame, and what the painter needs from the warp."""

    rows: slice  # of the mouth layer's arrays
    cols: slice
    map_rows: slice  # of the head box
    map_cols: slice
    frac_across: float  # sub-pixel head shift across the mouth
    closed: float
    t: np.ndarray | None = None  # px below the (closing) split, at each output pixel
    opening: np.ndarray | None = None  # how far the lower lip has dropped there, px
    s: np.ndarray | None = None  # position along the mouth, in inner half-widths


class RigRenderer:
    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        x0, y0, x1, y1 = (int(v) for v in rig.head.box)
        self._head_box = (x0, y0, x1, y1)
        grid_x, grid_y = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
        self._base = np.ascontiguousarray(np.dstack([grid_x, grid_y]))
        self._map = np.empty_like(self._base)
        self._fields = [np.ascontiguousarray(f, dtype=np.float32) for f in rig.head.fields]
        self._warped = np.empty((y1 - y0, x1 - x0, 3), np.uint8)
        self._image = np.ascontiguousarray(rig.image)
        mouth = rig.mouth
        # What the jaw motion reaches: the lens part fades as the rigid chin part takes over.
        self._lens_part = mouth.falloff * (1.0 - mouth.chin_ramp)
        self._chin_part = mouth.falloff * mouth.chin_ramp
        self._inner_half = float(mouth.params[3])

    def render(self, weights: FaceWeights) -> np.ndarray:
        """An RGB uint8 (size, size, 3) frame; a fresh array the caller may keep."""
        warp = self._map
        np.copyto(warp, self._base)
        head = (weights.roll, weights.nod, weights.turn, weights.breath)
        for field, weight in zip(self._fields, head, strict=True):
            if weight:
                cv2.scaleAdd(field, float(weight), warp, dst=warp)

        mouth_shift = self._head_shift(self.rig.mouth.box, head)
        mouth_state = self._add_mouth(weights, mouth_shift)
        if weights.blink > 0.005:
            for eye in self.rig.eyes:
                self._add_blink(eye, min(weights.blink, 1.0), self._head_shift(eye.box, head))

        cv2.remap(  # type: ignore[call-overload]  # map2=None is valid with a 2-channel map1; the stub omits it
            self._image, warp, None, cv2.INTER_LINEAR, dst=self._warped, borderMode=cv2.BORDER_REPLICATE
        )
        if mouth_state is not None:
            self._paint_mouth(weights, mouth_state)
        frame = self._image.copy()
        x0, y0, x1, y1 = self._head_box
        frame[y0:y1, x0:x1] = self._warped
        return frame

    def displacement(self, weights: FaceWeights) -> np.ndarray:
        """The backward displacement (h, w, 2) over the head box for `weights` (for checks and debugging)."""
        self.render(weights)
        return self._map - self._base

    # --- local layers follow the head -----------------------------------------------------------------

    def _head_shift(self, box: np.ndarray, head: tuple[float, ...]) -> tuple[int, int, float, float]:
        """How far the head motion carries a layer's centre: integer part and fractional rest."""
        cx, cy = layer_anchor(box, self._head_box)
        dx = dy = 0.0
        for field, weight in zip(self._fields, head, strict=True):
            if weight:
                dx -= weight * float(field[cy, cx, 0])
                dy -= weight * float(field[cy, cx, 1])
        ix, iy = math.floor(dx + 0.5), math.floor(dy + 0.5)
        return ix, iy, dx - ix, dy - iy

    def _place(
        self, box: np.ndarray, shift: tuple[int, int, float, float]
    ) -> tuple[slice, slice, slice, slice]:
        """Slices of the head map and of the layer's own arrays where the shifted layer lands."""
        hx0, hy0, hx1, hy1 = self._head_box
        x0, y0 = int(box[0]) + shift[0], int(box[1]) + shift[1]
        x1, y1 = int(box[2]) + shift[0], int(box[3]) + shift[1]
        cx0, cy0, cx1, cy1 = max(x0, hx0), max(y0, hy0), min(x1, hx1), min(y1, hy1)
        return (
            slice(cy0 - hy0, cy1 - hy0), slice(cx0 - hx0, cx1 - hx0),
            slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0),
        )  # fmt: skip

    def _add_mouth(self, weights: FaceWeights, shift: tuple[int, int, float, float]) -> _MouthState | None:
        mouth = self.rig.mouth
        stretch = WIDE_STRETCH * weights.wide - ROUND_SQUEEZE * weights.pucker
        closed = min(max(weights.closed, 0.0), 1.0)
        jaw = min(max(weights.jaw, 0.0), 1.3)
        if not (stretch or closed or jaw > 0.002):
            return None
        map_rows, map_cols, rows, cols = self._place(mouth.box, shift)
        target = self._map[map_rows, map_cols]
        right_x, right_y = float(-mouth.down[1]), float(mouth.down[0])
        frac_along = shift[2] * right_x + shift[3] * right_y
        frac_across = shift[2] * float(mouth.down[0]) + shift[3] * float(mouth.down[1])
        if stretch:
            target += stretch * mouth.horizontal[rows, cols]
        if closed:
            target += closed * mouth.closed[rows, cols]
        state = _MouthState(rows, cols, map_rows, map_cols, frac_across, closed)
        if jaw <= 0.002:
            return state
        # Where each output pixel sits relative to the (stretched, sub-pixel shifted) mouth.
        s = mouth.s[rows, cols] - stretch * mouth.s_bump[rows, cols] - frac_along / self._inner_half
        lens = np.sqrt(np.clip(1.0 - s * s, 0.0, 1.0))
        opening = (lens * self._lens_part[rows, cols] + self._chin_part[rows, cols]) * (jaw * self.rig.jaw_px)
        t = mouth.t[rows, cols] - frac_across
        if closed:
            # The jaw opens from wherever the closing lower lip has slid to.
            t = t + closed * mouth.rest_gap[rows, cols]
        moved = np.minimum(np.maximum(t, 0.0), opening)
        target[..., 0] -= moved * float(mouth.down[0])
        target[..., 1] -= moved * float(mouth.down[1])
        state.t, state.opening, state.s = t, opening, s
        return state

    def _add_blink(self, eye: EyeLayer, blink: float, shift: tuple[int, int, float, float]) -> None:
        map_rows, map_cols, rows, cols = self._place(eye.box, shift)
        down_x, down_y = float(eye.down[0]), float(eye.down[1])
        below = eye.below_lid[rows, cols] - (shift[2] * down_x + shift[3] * down_y)
        # A touch past the rest gap so the lashes meet the lower lid with no sliver of eye left.
        lid = (1.06 * blink) * eye.gap[rows, cols]
        reach, lash = float(eye.params[0]), float(eye.params[1])
        # From `reach` above the lashes down to the lash band, the lid skin stretches linearly; the
        # lashes move down whole; below the lowered lid edge the eye itself shows, unmoved.
        stretch = np.clip((below + reach) / (lid + reach - lash), 0.0, 1.0)
        over_eye = np.clip(lid - below + 0.5, 0.0, 1.0)
        drag = lid * stretch * over_eye
        target = self._map[map_rows, map_cols]
        target[..., 0] -= drag * down_x
        target[..., 1] -= drag * down_y

    # --- mouth interior ---------------------------------------------------------------------------------

    def _paint_mouth(self, weights: FaceWeights, state: _MouthState) -> None:
        mouth = self.rig.mouth
        cbox = mouth.cavity_box
        rows, cols = state.rows, state.cols
        top, bottom = max(int(cbox[1]), rows.start), min(int(cbox[3]), rows.stop)
        left, right = max(int(cbox[0]), cols.start), min(int(cbox[2]), cols.stop)
        if bottom <= top or right <= left:
            return
        to_map_y, to_map_x = state.map_rows.start - rows.start, state.map_cols.start - cols.start
        region = self._warped[top + to_map_y : bottom + to_map_y, left + to_map_x : right + to_map_x]
        if state.closed > 0.01 and float(mouth.params[2]) > 1.0:
            self._paint_seam(region, state, slice(top, bottom), slice(left, right))
        if state.t is not None and state.opening is not None and state.s is not None:  # all set together
            cut = (slice(top - rows.start, bottom - rows.start), slice(left - cols.start, right - cols.start))
            self._paint_interior(region, weights, state.t[cut], state.opening[cut], state.s[cut])

    def _paint_seam(self, region: np.ndarray, state: _MouthState, rows: slice, cols: slice) -> None:
        """The dark line where closing lips meet; it also hides the hard edge of the lower lip's slide."""
        mouth = self.rig.mouth
        seam = mouth.seam[rows, cols] - state.frac_across
        ends = np.clip((1.08 - np.abs(mouth.s[rows, cols])) / 0.2, 0.0, 1.0)
        alpha = (0.8 * state.closed) * np.exp(-((seam / 0.9) ** 2)) * ends
        crease = mouth.colours[3]
        blended = region + alpha[..., None] * (crease - region)
        region[...] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)

    def _paint_interior(
        self, region: np.ndarray, weights: FaceWeights, t_c: np.ndarray, open_c: np.ndarray, s_c: np.ndarray
    ) -> None:
        mouth = self.rig.mouth
        above_lip = open_c - t_c  # distance up from the lowered lower lip
        alpha = np.clip(above_lip, 0.0, 1.0) * np.clip(t_c + 0.5, 0.0, 1.0) * np.clip(open_c, 0.0, 1.0)
        if not alpha.any():
            return
        throat, tongue, teeth = mouth.colours[:3]
        upper_teeth, teeth_px = float(mouth.params[0]), float(mouth.params[1])
        lens = np.sqrt(np.clip(1.0 - s_c * s_c, 0.0, 1.0))
        # A dark throat; the tongue rises into view above the lower lip as the jaw drops; the corners
        # are in shadow. Lower teeth are a faint hint: the lower lip hides most of them in speech.
        tongue_part = np.clip(1.0 - above_lip / (0.4 * open_c + 1.0), 0.0, 1.0) * min(1.0, 1.6 * weights.jaw)
        colour = throat + tongue_part[..., None] * (tongue - throat)
        front = np.clip((0.8 - np.abs(s_c)) / 0.25, 0.0, 1.0)
        cover = np.clip(1.0 - above_lip / teeth_px, 0.0, 1.0) * front * (0.35 * min(1.0, 2.0 * weights.jaw))
        if upper_teeth:
            upper = np.clip(1.0 - np.maximum(t_c, 0.0) / teeth_px, 0.0, 1.0) * front * 0.9
            cover = np.maximum(cover, upper)
        colour += cover[..., None] * (teeth - colour)
        colour *= (0.6 + 0.4 * lens)[..., None]
        blended = region + alpha[..., None] * (colour - region)
        region[...] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
