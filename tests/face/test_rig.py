from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from digihuman.errors import CharacterError
from digihuman.face import landmarks as lmk
from digihuman.face.renderer import FaceWeights, RigRenderer
from digihuman.face.rig import FORMAT_VERSION, Rig, build_rig, crop_portrait


def test_crop_centres_the_face_in_the_upper_part(rig: Rig) -> None:
    assert rig.image.shape == (512, 512, 3) and rig.image.dtype == np.uint8
    centre = (rig.landmarks[lmk.FOREHEAD_TOP] + rig.landmarks[lmk.CHIN]) / 2
    assert 0.4 * 512 < centre[0] < 0.6 * 512
    assert 0.3 * 512 < centre[1] < 0.5 * 512
    assert 0.33 * 512 < rig.face_height < 0.43 * 512  # head and some shoulders
    assert rig.mouth_rests_open  # the astronaut smiles with her teeth showing


def test_crop_near_the_photo_edge_repeats_the_edge(
    astronaut: np.ndarray, astronaut_landmarks: np.ndarray
) -> None:
    # Cut the photo just above her hair: the crop slides down a little (never far), stays square, and
    # what is still missing above repeats the photo's top row instead of showing black.
    top = int(astronaut_landmarks[:, 1].min()) - 20
    shifted = astronaut_landmarks - np.array([0, top], np.float32)
    crop, points = crop_portrait(astronaut[top:], shifted)
    full_crop, full_points = crop_portrait(astronaut, astronaut_landmarks)
    assert crop.shape == full_crop.shape and crop.shape[0] == crop.shape[1]
    assert np.abs(points[:, 0] - full_points[:, 0]).max() < 1.0
    centre_y = (points[lmk.FOREHEAD_TOP, 1] + points[lmk.CHIN, 1]) / 2 / crop.shape[0]
    assert 0.25 < centre_y < 0.42
    assert np.abs(crop[0].astype(int) - crop[1]).mean() < 3  # replicated rows, not a black band
    assert crop[:5].mean() > 100


def test_local_fields_vanish_at_their_box_edges(rig: Rig) -> None:
    """A displacement that is not zero at the edge of its box would tear the image along that edge."""
    renderer = RigRenderer(rig)
    hx0, hy0 = int(rig.head.box[0]), int(rig.head.box[1])
    for weights in (
        FaceWeights(jaw=1.3, wide=1),
        FaceWeights(jaw=1, pucker=1),
        FaceWeights(closed=1, blink=1),
    ):
        moved = renderer.displacement(weights)
        assert np.abs(moved).max() > 5
        for box in (rig.mouth.box, rig.eyes[0].box, rig.eyes[1].box):
            x0, y0, x1, y1 = (int(v) for v in box)
            local = moved[y0 - hy0 : y1 - hy0, x0 - hx0 : x1 - hx0]
            rim = np.concatenate([local[0], local[-1], local[:, 0], local[:, -1]])
            assert np.abs(rim).max() < 0.05, (weights, box)
    # The head fields fall to exactly zero outside the head mask and at the head box's edge.
    assert rig.head.mask[0].max() == rig.head.mask[-1].max() == 0
    assert rig.head.mask[:, 0].max() == rig.head.mask[:, -1].max() == 0
    assert np.all(rig.head.fields[:, rig.head.mask == 0] == 0)


def test_head_motion_keeps_the_background_still(rig: Rig) -> None:
    renderer = RigRenderer(rig)
    still = rig.image
    moved = renderer.render(FaceWeights(roll=1, nod=1, turn=1, breath=1, jaw=1, blink=1, wide=1))
    outside = ~rig.motion_mask()
    assert np.array_equal(moved[outside], still[outside])
    assert np.abs(moved.astype(int) - still).max() > 50  # and the head did move


def test_save_load_round_trip(rig: Rig, tmp_path: Path) -> None:
    rig.save(tmp_path / "rig.npz")
    loaded = Rig.load(tmp_path / "rig.npz")
    assert loaded.size == rig.size and loaded.jaw_px == pytest.approx(rig.jaw_px)
    assert np.array_equal(loaded.image, rig.image)
    assert np.array_equal(loaded.landmarks, rig.landmarks)
    assert np.array_equal(loaded.head.box, rig.head.box)
    assert np.abs(loaded.head.fields - rig.head.fields).max() < 0.05  # stored at half precision
    weights = FaceWeights(jaw=0.7, wide=0.3, blink=0.6, roll=0.5, nod=-0.4, turn=0.3)
    before, after = RigRenderer(rig).render(weights), RigRenderer(loaded).render(weights)
    assert np.abs(before.astype(int) - after).mean() < 0.05


def test_load_rebuilds_for_another_size_or_an_old_format(rig: Rig, tmp_path: Path) -> None:
    rig.save(tmp_path / "rig.npz")
    small = Rig.load(tmp_path / "rig.npz", size=256)
    assert small.size == 256 and small.image.shape == (256, 256, 3)
    assert RigRenderer(small).render(FaceWeights(jaw=1)).shape == (256, 256, 3)

    with np.load(tmp_path / "rig.npz") as data:
        arrays = {key: data[key] for key in data.files}
    meta = json.loads(str(arrays["meta"]))
    arrays["meta"] = np.array(json.dumps({**meta, "format": FORMAT_VERSION - 1}))
    np.savez(tmp_path / "old.npz", **arrays)
    rebuilt = Rig.load(tmp_path / "old.npz")
    assert rebuilt.size == 512 and np.abs(rebuilt.jaw_px - rig.jaw_px) < 0.5

    arrays["meta"] = np.array(json.dumps(meta))
    del arrays["mouth.seam"]
    np.savez(tmp_path / "damaged.npz", **arrays)
    assert np.array_equal(Rig.load(tmp_path / "damaged.npz").mouth.seam, rig.mouth.seam)


def test_unusable_rig_files(tmp_path: Path) -> None:
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    np.savez(tmp_path / "other.npz", something=np.zeros(3))
    for name, expected in (
        ("absent.npz", "does not exist"),
        ("junk.npz", "unreadable"),
        ("other.npz", "not a"),
    ):
        with pytest.raises(CharacterError, match=expected):
            Rig.load(tmp_path / name)


def test_build_rig_refuses_tiny_sizes(astronaut: np.ndarray, astronaut_landmarks: np.ndarray) -> None:
    with pytest.raises(CharacterError):
        build_rig(astronaut, astronaut_landmarks, size=32)


def test_jaw_opens_the_mouth_and_blink_closes_the_eyes(rig: Rig) -> None:
    """Measured on the rendered pixels: the dark mouth interior grows, the eye's dark iris disappears."""
    renderer = RigRenderer(rig)
    lips = rig.landmarks[list(lmk.LIPS_OUTER_LOWER + lmk.LIPS_OUTER_UPPER)]
    x0, y0 = (int(v) for v in lips.min(axis=0))
    x1, y1 = (int(v) for v in lips.max(axis=0) + np.array([0, rig.jaw_px + 2]))

    def dark_pixels(frame: np.ndarray, box: tuple[int, int, int, int]) -> int:
        bx0, by0, bx1, by1 = box
        return int((frame[by0:by1, bx0:bx1].mean(axis=2) < 60).sum())

    mouth_box = (x0, y0, x1, y1)
    rest = dark_pixels(renderer.render(FaceWeights()), mouth_box)
    half = dark_pixels(renderer.render(FaceWeights(jaw=0.5)), mouth_box)
    full = dark_pixels(renderer.render(FaceWeights(jaw=1.0)), mouth_box)
    assert rest < half < full and full > rest + 300

    iris = rig.landmarks[list(lmk.RIGHT_IRIS)]
    cx, cy = (int(v) for v in iris.mean(axis=0))
    eye_box = (cx - 6, cy - 4, cx + 6, cy + 4)
    assert dark_pixels(renderer.render(FaceWeights()), eye_box) > 10
    assert dark_pixels(renderer.render(FaceWeights(blink=1.0)), eye_box) < 3


def test_a_rig_is_read_only(rig: Rig, tmp_path: Path) -> None:
    """Shared by every session and render thread: an in-place write must fail, not change every face."""
    rig.save(tmp_path / "rig.npz")
    for shared in (rig, Rig.load(tmp_path / "rig.npz")):
        with pytest.raises(ValueError, match="read-only"):
            shared.image[0, 0] = 0
        with pytest.raises(ValueError, match="read-only"):
            shared.mouth.t[0, 0] = 1.0
