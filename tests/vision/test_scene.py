from __future__ import annotations

import time

import numpy as np
import pytest

from digihuman.vision.scene import SceneEvent, SceneWatcher

from .synthetic import frame, noisy, room, with_face


def run(watcher: SceneWatcher, images: list[np.ndarray], start_s: float = 0.0) -> list[SceneEvent]:
    events: list[SceneEvent] = []
    for i, image in enumerate(images):
        events += watcher.observe(frame(image, start_s + i * 0.5))
    return events


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def test_a_noisy_static_scene_produces_no_events(rng: np.random.Generator) -> None:
    scene = room(0)
    assert run(SceneWatcher(), [noisy(scene, rng, sigma=10) for _ in range(60)]) == []


def test_a_big_change_produces_exactly_one_event_after_it_persists(rng: np.random.Generator) -> None:
    before, after = room(0), room(1)
    watcher = SceneWatcher(change_samples=3)
    images = [noisy(before, rng) for _ in range(10)] + [noisy(after, rng) for _ in range(20)]
    events = run(watcher, images)
    assert [(e.kind, e.t_s) for e in events] == [("scene_changed", 6.0)]  # the third sample of the new scene
    assert events[0].score > 0.3
    assert events[0].frame.rgb_small is images[12]


def test_a_brief_change_that_goes_away_is_ignored(rng: np.random.Generator) -> None:
    scene, other = room(0), room(1)
    images = [noisy(scene, rng) for _ in range(5)] + [other, other] + [noisy(scene, rng) for _ in range(10)]
    assert run(SceneWatcher(change_samples=3), images) == []


def test_lighting_flicker_and_slow_drift_produce_no_events(rng: np.random.Generator) -> None:
    scene = room(2).astype(np.float32)
    flicker = [scene * (1.25 if i % 2 else 0.8) for i in range(20)]
    dusk = [scene * (1.0 - 0.6 * i / 120) for i in range(120)]  # daylight fading over a minute
    images = [noisy(np.clip(image, 0, 255), rng) for image in flicker + dusk]
    assert run(SceneWatcher(), images) == []


def test_a_small_moving_object_produces_no_events(rng: np.random.Generator) -> None:
    scene = room(0)
    images = []
    for i in range(40):
        image = scene.copy()
        x = 20 + 9 * i
        image[150:190, x : x + 40] = (250, 250, 40)  # a ball rolling across the view
        images.append(noisy(image, rng))
    assert run(SceneWatcher(), images) == []


def test_someone_arriving_and_leaving(rng: np.random.Generator) -> None:
    background = room(4)
    person = with_face(background)
    images = (
        [noisy(background, rng) for _ in range(6)]
        + [noisy(person, rng) for _ in range(10)]
        + [noisy(background, rng) for _ in range(10)]
    )
    watcher = SceneWatcher(arrive_samples=2, leave_samples=4)
    events = run(watcher, images)
    # The arrival and departure explain the big change: no separate scene_changed events.
    assert [(e.kind, e.t_s) for e in events] == [("someone_arrived", 3.5), ("someone_left", 9.5)]
    assert events[0].score == 1.0
    assert not watcher.present


def test_a_face_seen_only_once_is_not_an_arrival(rng: np.random.Generator) -> None:
    background = room(4)
    images = [noisy(background, rng) for _ in range(4)] + [with_face(background)] + [background] * 6
    assert [e.kind for e in run(SceneWatcher(arrive_samples=2), images)] == []


def test_the_face_detector_reruns_only_when_the_picture_changes(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    watcher = SceneWatcher()
    calls = 0
    detect = watcher._detect

    def counting_detect(rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
        nonlocal calls
        calls += 1
        return detect(rgb)

    monkeypatch.setattr(watcher, "_detect", counting_detect)
    person = with_face(room(4))
    events = run(watcher, [noisy(person, rng) for _ in range(20)])
    assert [e.kind for e in events] == ["someone_arrived"]
    assert calls == 2  # two independent detections to confirm the arrival, then the answer is reused
    events = run(watcher, [noisy(room(4), rng) for _ in range(8)], start_s=10.0)
    assert [e.kind for e in events] == ["someone_left"]
    assert calls == 2 + 4


def test_a_static_sample_costs_well_under_two_milliseconds(rng: np.random.Generator) -> None:
    watcher = SceneWatcher()
    images = [noisy(with_face(room(0)), rng) for _ in range(40)]
    run(watcher, images[:5])
    costs = []
    for i, image in enumerate(images[5:]):
        started = time.perf_counter()
        watcher.observe(frame(image, 10.0 + i))
        costs.append(time.perf_counter() - started)
    assert float(np.median(costs)) < 0.002


async def test_watch_turns_a_frame_stream_into_events(rng: np.random.Generator) -> None:
    images = [noisy(room(0), rng) for _ in range(5)] + [noisy(room(1), rng) for _ in range(5)]

    async def frames():
        for i, image in enumerate(images):
            yield frame(image, float(i))

    events = [event async for event in SceneWatcher(change_samples=2).watch(frames())]
    assert [(e.kind, e.t_s) for e in events] == [("scene_changed", 6.0)]
