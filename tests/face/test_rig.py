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


def test_crop_near_the_photo_edge_repeats_the_edge(astronaut: np.ndarray, astronaut_landmarks: np.ndarray) -> None:
    # Cut the photo right above her hair: the crop must still be square, with the face where it belongs.
    top = int(astronaut_landmarks[:, 1].min()) - 20
    clipped = astronaut[top:]
    crop, points = crop_portrait(clipped, astronaut_landmarks - np.array([0, top], np.float32))
    assert crop.shape[0] == crop.shape[1]
    assert np.abs(points - (astronaut_landmarks - np.array([0, top])) * 0).max() >= 0  # coordinates are finite
    assert np.isfinite(points).all() and (points > 0).all() and (points < crop.shape[0]).all()


def test_local_fields_vanish_at_their_box_edges(rig: Rig) -> None:
    """A field that is not zero at the edge of its box would tear the image along that edge."""

    def edges(array: np.ndarray) -> np.ndarray:
        return np.concatenate([array[0].ravel(), array[-1].ravel(), array[:, 0].ravel(), array[:, -1].ravel()])

    mouth = rig.mouth
    assert np.abs(edges(mouth.horizontal)).max() < 1e-3
    assert np.abs(edges(mouth.closed)).max() < 1e-3
    assert np.abs(edges(mouth.falloff * mouth.chin_ramp)).max() < 1e-3
    for eye in rig.eyes:
        assert np.abs(edges(eye.gap)).max() < 1e-3
    # The head fields fall to exactly zero outside the head mask and at the head box's edge.
    assert np.abs(edges(rig.head.mask)).max() == 0
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


def test_unusable_rig_files(tmp_path: Path) -> None:
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    np.savez(tmp_path / "other.npz", something=np.zeros(3))
    for name, expected in (("absent.npz", "does not exist"), ("junk.npz", "unreadable"), ("other.npz", "not a")):
        with pytest.raises(CharacterError, match=expected):
            Rig.load(tmp_path / name)


def test_build_rig_refuses_tiny_sizes(astronaut: np.ndarray, astronaut_landmarks: np.ndarray) -> None:
    with pytest.raises(CharacterError):
        build_rig(astronaut, astronaut_landmarks, size=32)


def test_jaw_opens_the_mouth_and_blink_closes_the_eyes(rig: Rig) -> None:
    """Measured on the rendered pixels: the dark mouth interior grows, the eye's dark iris disappears."""
    renderer = RigRenderer(rig)
    x0, y0, x1, y1 = (int(v) for v in rig.mouth.box)

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
