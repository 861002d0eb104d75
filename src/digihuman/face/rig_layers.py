"""The rig's layers: what each one stores (head, mouth, eyes), its constants, and how it is built from the
portrait's landmarks. `rig.py` assembles them into a `Rig`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from digihuman.face import landmarks as lmk

FORMAT_VERSION = 2
SOURCE_MAX_SIDE = 1024
# Crop geometry, in face heights (forehead-top to chin): the crop is CROP_FACE_HEIGHTS tall and the
# mid-face sits FACE_CENTRE_FROM_TOP of the way down, which leaves room for hair and some shoulders.
CROP_FACE_HEIGHTS = 2.6
FACE_CENTRE_FROM_TOP = 0.42
# Motion amplitudes at weight 1.0, in face heights (or degrees).
JAW_OPEN = 0.085
ROLL_DEGREES = 3.0
NOD = 0.035
TURN = 0.045
BREATH = 0.006
WIDE_STRETCH = 0.12
ROUND_SQUEEZE = 0.22
HEAD_FIELDS = ("roll", "nod", "turn", "breath")
# Lips count as parted at rest when their inner gap is at least this many face heights.
PARTED_LIPS = 0.02


@dataclass
class HeadLayer:
    box: np.ndarray  # (4,) int32: x0, y0, x1, y1
    mask: np.ndarray  # (h, w) float32 in [0, 1], exactly 0 where nothing may move
    fields: np.ndarray  # (4, h, w, 2) float32 in HEAD_FIELDS order


@dataclass
class MouthLayer:
    box: np.ndarray  # (4,) int32
    cavity_box: np.ndarray  # (4,) int32, inside `box`, in box coordinates
    down: np.ndarray  # (2,) the face's "down" direction at the mouth
    s: np.ndarray  # along the mouth, in inner half-widths (0 at the centre)
    s_bump: np.ndarray  # s times the lip-area bump (for wide/round)
    t: np.ndarray  # px below the split curve (negative above)
    chin_ramp: np.ndarray  # how much of the rigid jaw motion reaches here (smoothstep of t)
    falloff: np.ndarray  # lateral and neck falloff of the jaw motion
    horizontal: np.ndarray  # (h, w, 2) backward field of a +1 horizontal lip stretch (per unit)
    closed: np.ndarray  # (h, w, 2) backward field sliding the lower lip over the rest gap
    rest_gap: np.ndarray  # how far the lower lip slides up when closed (the rest gap at this column), px
    seam: np.ndarray  # px below the line where closed lips meet
    colours: np.ndarray  # (4, 3) float32 RGB: throat, tongue, teeth, lip crease
    params: np.ndarray  # (4,) float32: upper_teeth (0/1), teeth height px, rest gap px, inner half-width px


@dataclass
class EyeLayer:
    box: np.ndarray  # (4,) int32
    down: np.ndarray  # (2,)
    below_lid: np.ndarray  # px below the upper lid curve
    gap: np.ndarray  # rest eye opening at this column, px
    params: np.ndarray  # (2,): reach (how far above the lashes the lid skin stretches), lash band, px


def layer_anchor(box: np.ndarray, head_box: np.ndarray | tuple[int, ...]) -> tuple[int, int]:
    """The pixel of the head box whose head motion carries a local layer: the layer's centre, clamped."""
    x0, y0, x1, y1 = (int(v) for v in head_box)
    cx = min(max((int(box[0]) + int(box[2])) // 2, x0), x1 - 1) - x0
    cy = min(max((int(box[1]) + int(box[3])) // 2, y0), y1 - 1) - y0
    return cx, cy


def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _plateau(x: np.ndarray) -> np.ndarray:
    """1 for |x| <= 0.35, easing to exactly 0 at |x| >= 1."""
    return 1.0 - smoothstep((np.abs(x) - 0.35) / 0.65)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-6)


def _frame_coords(
    box: tuple[int, int, int, int], origin: np.ndarray, right: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel coordinates in a rotated frame: along `right` and along its "down" normal."""
    x0, y0, x1, y1 = box
    xs = np.arange(x0, x1, dtype=np.float32) - origin[0]
    ys = np.arange(y0, y1, dtype=np.float32) - origin[1]
    gx, gy = np.meshgrid(xs, ys)
    down = np.array([-right[1], right[0]], np.float32)
    return gx * right[0] + gy * right[1], gx * down[0] + gy * down[1]


def _project(points: np.ndarray, origin: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rel = points - origin
    down = np.array([-right[1], right[0]])
    return rel @ right, rel @ down


def _clip_box(x0: float, y0: float, x1: float, y1: float, size: int) -> tuple[int, int, int, int]:
    return (
        max(0, math.floor(x0)),
        max(0, math.floor(y0)),
        min(size, math.ceil(x1)),
        min(size, math.ceil(y1)),
    )


def _rotated_box(
    origin: np.ndarray, right: np.ndarray, along: tuple[float, float], across: tuple[float, float], size: int
) -> tuple[int, int, int, int]:
    """The image-aligned box around a rectangle given in a rotated frame."""
    down = np.array([-right[1], right[0]])
    corners = np.array([origin + a * right + c * down for a in along for c in across])
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    return _clip_box(lo[0] - 1, lo[1] - 1, hi[0] + 2, hi[1] + 2, size)


def _curve(points: tuple[np.ndarray, np.ndarray] | np.ndarray, along: np.ndarray) -> np.ndarray:
    """Interpolate a contour's "down" offset at positions `along` (constant beyond its ends)."""
    xs, ys = points
    order = np.argsort(xs)
    return np.interp(along, xs[order], ys[order]).astype(np.float32)


# --- head -------------------------------------------------------------------------------------------


def head_layer(points: np.ndarray, size: int) -> HeadLayer:
    height = lmk.face_height(points)
    right = _unit(points[263] - points[33])
    down = np.array([-right[1], right[0]], np.float32)
    oval = points[list(lmk.FACE_OVAL)]
    centre = oval.mean(axis=0)
    face_width = float(np.ptp(_project(oval, centre, right)[0]))

    core = np.zeros((size, size), np.uint8)
    expanded = centre + 1.1 * (oval - centre)
    cv2.fillPoly(core, [np.round(expanded).astype(np.int32)], 1)
    # Hair and the top of the head: an ellipse reaching above the forehead landmarks.
    head_centre = centre - 0.1 * height * down
    angle = math.degrees(math.atan2(right[1], right[0]))
    axes = (round(0.62 * face_width), round(0.66 * height))
    cv2.ellipse(core, (round(head_centre[0]), round(head_centre[1])), axes, angle, 0, 360, 1, -1)
    # The neck: from the jaw down below the chin.
    chin = points[lmk.CHIN]
    neck_half = 0.32 * face_width
    neck_top = chin - 0.25 * height * down
    neck_bottom = chin + 0.55 * height * down
    neck = np.array(
        [
            neck_top - neck_half * right,
            neck_top + neck_half * right,
            neck_bottom + neck_half * right,
            neck_bottom - neck_half * right,
        ]
    )
    cv2.fillPoly(core, [np.round(neck).astype(np.int32)], 1)

    feather = 0.22 * height
    outside = cv2.distanceTransform((1 - core).astype(np.uint8), cv2.DIST_L2, 5)
    mask = smoothstep(1.0 - outside / feather)
    # Down the neck the motion fades to nothing: the torso stays still while the head moves.
    _, below_chin = _frame_coords((0, 0, size, size), chin, right)
    mask *= 1.0 - smoothstep((below_chin + 0.05 * height) / (0.6 * height))
    mask[mask < 1e-3] = 0.0

    rows, cols = np.nonzero(mask)
    box = _clip_box(cols.min() - 2, rows.min() - 2, cols.max() + 3, rows.max() + 3, size)
    x0, y0, x1, y1 = box
    mask = mask[y0:y1, x0:x1].astype(np.float32)

    # Backward fields (the source pixel an output pixel shows), each at weight 1.
    gx, gy = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
    pivot = chin + 0.25 * height * down
    theta = math.radians(ROLL_DEGREES)
    cos, sin = math.cos(-theta), math.sin(-theta)
    rx, ry = gx - pivot[0], gy - pivot[1]
    roll = np.stack([cos * rx - sin * ry - rx, sin * rx + cos * ry - ry], axis=-1)

    # Nod and turn: the front of the face (around the nose) moves more than its outline, which reads
    # as a rotation in depth rather than a slide.
    along, across = _frame_coords(box, points[lmk.NOSE_TIP], right)
    radius2 = (along / (0.5 * face_width)) ** 2 + (across / (0.6 * height)) ** 2
    depth = 0.45 + 0.55 * np.exp(-radius2 / 0.7)
    nod = -(NOD * height * depth)[..., None] * down
    turn = -(TURN * height * depth)[..., None] * right
    breath = np.broadcast_to(BREATH * size * down, roll.shape)  # the head rises: sample from below

    stacked = np.stack([roll, nod, turn, breath]) * mask[None, :, :, None]
    return HeadLayer(box=np.array(box, np.int32), mask=mask, fields=stacked.astype(np.float32))


# --- mouth ------------------------------------------------------------------------------------------


def mouth_layer(image: np.ndarray, points: np.ndarray, jaw_px: float) -> MouthLayer:
    size = image.shape[0]
    height = lmk.face_height(points)
    right = _unit(points[291] - points[61])
    down = np.array([-right[1], right[0]], np.float32)
    inner_left, inner_right = points[78], points[308]
    centre = (inner_left + inner_right) / 2
    inner_half = max(float(np.linalg.norm(inner_right - inner_left)) / 2, 2.0)
    outer_half = float(np.linalg.norm(points[291] - points[61])) / 2
    oval_along = _project(points[list(lmk.FACE_OVAL)], centre, right)[0]
    jaw_half = 0.5 * float(np.ptp(oval_along))
    chin_t = float(_project(points[[lmk.CHIN]], centre, right)[1][0])

    # Tall enough for the lip bump above and the fade into the neck below (both end within 0.2 face heights).
    box = _rotated_box(centre, right, (-jaw_half, jaw_half), (-0.22 * height, chin_t + 0.22 * height), size)
    along, across = _frame_coords(box, centre, right)
    s = along / inner_half
    lower = _project(points[list(lmk.LIPS_INNER_LOWER)], centre, right)
    upper = _project(points[list(lmk.LIPS_INNER_UPPER)], centre, right)
    outer_lower = _project(points[list(lmk.LIPS_OUTER_LOWER)], centre, right)
    split = _curve((lower[0] / inner_half, lower[1]), s)
    t = across - split

    # The chin moves rigidly; right under the lips the lens shape takes over. The ramp is gentle enough
    # (slope < 1 / jaw_px) that beside the mouth corners the skin stretches instead of tearing open.
    chin_distance = max(chin_t - float(lower[1].max()), 4.0)
    ramp_length = max(1.6 * jaw_px, 0.6 * chin_distance)
    chin_ramp = smoothstep(t / ramp_length)
    lateral = 1.0 - smoothstep((np.abs(along) - 1.05 * outer_half) / max(0.95 * jaw_half - outer_half, 4.0))
    # Under the chin the motion fades fast: the chin slides over the neck, the collar stays.
    neck = 1.0 - smoothstep((across - chin_t + 0.02 * height) / (0.2 * height))
    falloff = (lateral * neck).astype(np.float32)

    # Wide/round: a horizontal scaling of the lips, fading out over the cheeks and chin.
    lip_mid = float(np.mean(upper[1]) + np.mean(outer_lower[1])) / 2
    reach = min(1.7 * outer_half, 0.95 * jaw_half)
    bump = (_plateau(along / reach) * _plateau((across - lip_mid) / (0.2 * height))).astype(np.float32)
    horizontal = (-(along * bump))[..., None] * right  # a +1 stretch: sample closer to the centre

    # Closed: where the photo's mouth is open (a smile's teeth), the lower lip slides up over the gap.
    upper_curve = _curve((upper[0] / inner_half, upper[1]), s)
    rest_gap = np.clip(split - upper_curve, 0.0, None)
    rest_gap[np.abs(s) > 1] = 0.0
    # The slide starts a pixel above the landmark contour, overshoots by a pixel and a half, and eases in
    # over a pixel and a half: an exact fit leaves a sliver of teeth between the lips. The crease the
    # renderer paints along the seam covers the teeth the soft edge samples.
    seam = across - (upper_curve - 1.0)
    below_upper = np.clip(seam / 1.5 + 0.5, 0.0, 1.0)
    rest_gap = rest_gap + 1.5 * np.clip(rest_gap, 0.0, 1.0)
    lip_bottom = float(outer_lower[1].max())
    drag = 1.0 - smoothstep((across - lip_bottom) / max(chin_t - lip_bottom, 4.0))
    closed = ((rest_gap * below_upper * drag)[..., None] * down).astype(np.float32)

    # The interior can only show between the split and the lowest the lower lip can go.
    cx0, cy0, cx1, cy1 = _rotated_box(
        centre,
        right,
        (-1.1 * inner_half, 1.1 * inner_half),
        (min(float(lower[1].min()), float(upper[1].min())) - 3, float(lower[1].max()) + 1.3 * jaw_px + 2),
        size,
    )
    cx0, cy0, cx1, cy1 = max(cx0, box[0]), max(cy0, box[1]), min(cx1, box[2]), min(cy1, box[3])
    cavity_box = np.array([cx0 - box[0], cy0 - box[1], cx1 - box[0], cy1 - box[1]], np.int32)
    centre_gap = float(np.interp(0.0, lower[0], lower[1]) - np.interp(0.0, upper[0], upper[1]))
    upper_teeth = 1.0 if centre_gap < PARTED_LIPS * height else 0.0
    return MouthLayer(
        box=np.array(box, np.int32),
        cavity_box=cavity_box,
        down=down,
        s=s.astype(np.float32),
        s_bump=(s * bump).astype(np.float32),
        t=t.astype(np.float32),
        chin_ramp=chin_ramp.astype(np.float32),
        falloff=falloff,
        horizontal=horizontal.astype(np.float32),
        closed=closed,
        rest_gap=rest_gap.astype(np.float32),
        seam=seam.astype(np.float32),
        colours=_mouth_colours(image, points),
        params=np.array([upper_teeth, 0.24 * jaw_px, max(centre_gap, 0.0), inner_half], np.float32),
    )


def _mouth_colours(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Throat, tongue, teeth and lip-crease colours from the photo, so the interior matches its light."""
    size = image.shape[0]
    lips = np.zeros((size, size), np.uint8)
    outer = np.concatenate([points[list(lmk.LIPS_OUTER_UPPER)], points[list(lmk.LIPS_OUTER_LOWER)][::-1]])
    inner = np.concatenate([points[list(lmk.LIPS_INNER_UPPER)], points[list(lmk.LIPS_INNER_LOWER)][::-1]])
    cv2.fillPoly(lips, [np.round(outer).astype(np.int32)], 1)
    opening = np.zeros_like(lips)
    cv2.fillPoly(opening, [np.round(inner).astype(np.int32)], 1)
    lip_pixels = image[(lips > 0) & (opening == 0)].astype(np.float32)
    lip = lip_pixels.mean(axis=0) if len(lip_pixels) else np.array([150.0, 80.0, 80.0], np.float32)
    inside = image[opening > 0].astype(np.float32)
    if len(inside) >= 20:
        # Teeth are the brightest quarter of what the photo shows inside the lips.
        brightness = inside.sum(axis=1)
        teeth = inside[brightness >= np.percentile(brightness, 75)].mean(axis=0)
    else:
        teeth = np.array([214.0, 206.0, 192.0], np.float32)
    teeth = np.clip(teeth * 0.92, 0, 255)
    throat = lip * np.array([0.2, 0.09, 0.09], np.float32)
    tongue = lip * np.array([0.4, 0.19, 0.19], np.float32)
    crease = lip * np.array([0.5, 0.33, 0.33], np.float32)
    return np.stack([throat, tongue, teeth, crease]).astype(np.float32)


# --- eyes -------------------------------------------------------------------------------------------


def eye_layer(
    points: np.ndarray,
    upper_ids: tuple[int, ...],
    lower_ids: tuple[int, ...],
    brow_ids: tuple[int, ...],
    size: int,
) -> EyeLayer:
    corner_a, corner_b = points[upper_ids[0]], points[upper_ids[-1]]
    right = _unit(corner_b - corner_a)
    down = np.array([-right[1], right[0]], np.float32)
    centre = (corner_a + corner_b) / 2
    half = max(float(np.linalg.norm(corner_b - corner_a)) / 2, 2.0)
    upper = _project(points[list(upper_ids)], centre, right)
    lower = _project(points[list(lower_ids)], centre, right)
    brow = _project(points[list(brow_ids)], centre, right)
    max_gap = max(float((lower[1] - upper[1]).max()), 1.0)
    brow_distance = max(float(upper[1].min() - brow[1].mean()), 2.5 * max_gap)
    box = _rotated_box(
        centre,
        right,
        (-1.4 * half, 1.4 * half),
        (-brow_distance - 2, float(lower[1].max()) + 0.5 * max_gap + 2),
        size,
    )
    along, across = _frame_coords(box, centre, right)
    upper_curve = _curve(upper, along)
    lower_curve = _curve(lower, along)
    gap = np.clip(lower_curve - upper_curve, 0.0, None)
    gap[np.abs(along) > half] = 0.0
    below_lid = across - upper_curve
    # Closing, the lid skin from `reach` above the lashes stretches over the eye (a linear stretch
    # cannot fold) while the lash band itself keeps its width; the brow above stays put.
    reach = min(1.1 * max_gap, 0.55 * brow_distance)
    lash = min(0.22 * max_gap, 0.5 * reach)
    return EyeLayer(
        box=np.array(box, np.int32),
        down=down,
        below_lid=below_lid.astype(np.float32),
        gap=gap.astype(np.float32),
        params=np.array([reach, lash], np.float32),
    )
