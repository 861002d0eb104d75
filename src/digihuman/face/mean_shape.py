"""The mean-shape face template used when mediapipe is not installed.

`data/mean_shape.npy` holds 478 points (float32, MediaPipe FaceMesh topology) in units of the OpenCV haar
cascade's face box: x = (px - box_x) / box_w, y = (py - box_y) / box_h. It was made by this module's
`make_mean_shape()`, which runs MediaPipe FaceMesh (0.10.21, refine_landmarks=True) and the haar cascade
on scikit-image's public-domain astronaut portrait at three scales, plain and mirrored, and averages the
box-normalized landmarks (the mirrored runs are matched back to their left/right partners, so the
template is symmetric). Regenerate with (needs mediapipe, scikit-image and scipy):

    .venv/bin/python -m digihuman.face.mean_shape
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import cv2
import numpy as np

DATA_FILE = "mean_shape.npy"


def load_mean_shape() -> np.ndarray:
    path = resources.files("digihuman.face") / "data" / DATA_FILE
    with resources.as_file(path) as file:
        shape = np.load(file)
    return shape.astype(np.float32)


def make_mean_shape() -> np.ndarray:
    import skimage.data
    from scipy.optimize import linear_sum_assignment

    from digihuman.face.landmarks import _face_mesh, _mesh_faces, haar_faces

    mesh = _face_mesh()
    if mesh is None:
        raise RuntimeError("making the mean shape needs mediapipe")
    photo = skimage.data.astronaut()
    samples: list[np.ndarray] = []
    for scale in (0.8, 1.0, 1.25):
        scaled = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        for mirrored in (False, True):
            image = np.ascontiguousarray(scaled[:, ::-1] if mirrored else scaled)
            (landmarks,) = _mesh_faces(mesh, image)
            x, y, w, h = haar_faces(image)[0]
            normalized = (landmarks - np.array([x, y])) / np.array([w, h])
            if mirrored:
                normalized[:, 0] = 1.0 - normalized[:, 0]
            samples.append(normalized)
    reference = samples[0]
    aligned = []
    for sample, mirrored in zip(samples, [False, True] * 3, strict=True):
        if mirrored:
            # Point i of a mirrored run sits where its left/right partner sits in a plain run.
            cost = np.linalg.norm(reference[:, None, :] - sample[None, :, :], axis=2)
            _, partner = linear_sum_assignment(cost)
            sample = sample[partner]
        aligned.append(sample)
    return np.mean(aligned, axis=0).astype(np.float32)


if __name__ == "__main__":
    target = Path(__file__).parent / "data" / DATA_FILE
    target.parent.mkdir(exist_ok=True)
    np.save(target, make_mean_shape())
    print(f"wrote {target}")
