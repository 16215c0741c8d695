"""Push progress: engine events in, one percentage out, published sparingly.

The event streams are what Docker Engine 20.10 sent for real pushes of a
two-layer image (recorded from `push_image`): a first tag that uploads both
layers, then a second tag whose layers already exist.
"""

from __future__ import annotations

from typing import Any

import pytest

from tasks.progress import (
    PushProgress,
    PushUpdate,
    Throttle,
    artifact_key,
    track_push,
    watching,
)

REPOSITORY = "127.0.0.1:5000/cap/app"
SMALL, BIG = "add5fe95b84c", "89e093c9eb21"
DIGEST = "sha256:dad47e0e5fa91c08fc0101e74dbf03766e6bb1cc2576908b06b3be6356a45316"


def pushing(layer: str, current: int, total: int) -> dict[str, Any]:
    return {
        "status": "Pushing",
        "progressDetail": {"current": current, "total": total},
        "id": layer,
    }


def status(layer: str, text: str) -> dict[str, Any]:
    return {"status": text, "progressDetail": {}, "id": layer}


def tag_done(tag: str) -> list[dict[str, Any]]:
    return [
        {"status": f"{tag}: digest: {DIGEST} size: 735"},
        {"progressDetail": {}, "aux": {"Tag": tag, "Digest": DIGEST, "Size": 735}},
    ]


START = {"status": f"The push refers to repository [{REPOSITORY}]"}
FIRST_TAG = [
    START,
    status(SMALL, "Preparing"),
    status(BIG, "Preparing"),
    pushing(SMALL, 512, 31),
    pushing(BIG, 33792, 1982256),
    pushing(BIG, 1115136, 1982256),
    status(SMALL, "Pushed"),
    pushing(BIG, 1984512, 1982256),
    status(BIG, "Pushed"),
    *tag_done("v1"),
]
SECOND_TAG = [
    START,
    status(SMALL, "Preparing"),
    status(BIG, "Preparing"),
    status(SMALL, "Layer already exists"),
    status(BIG, "Layer already exists"),
    *tag_done("v2"),
]


def percent_after(events: list[dict[str, Any]], tags: int) -> float:
    progress = PushProgress(tags)
    for event in events:
        progress.add(event)
    return progress.percent


@pytest.mark.parametrize(
    ("events", "tags", "low", "high"),
    [
        ([], 1, 0, 0),
        (FIRST_TAG[:3], 1, 0, 0),  # layers known, nothing sent
        (FIRST_TAG[:5], 1, 0, 5),  # the small layer counts by its size
        (FIRST_TAG[:6], 1, 55, 57),  # 1.1 of 1.98 MB
        (FIRST_TAG[:9], 1, 99.99, 100),  # both layers pushed
        (FIRST_TAG, 1, 100, 100),
        (FIRST_TAG, 2, 50, 50),  # one tag of two
        (FIRST_TAG + SECOND_TAG[:4], 2, 50, 75),  # one layer exists, sizes unknown
        (FIRST_TAG + SECOND_TAG, 2, 100, 100),
        (FIRST_TAG + SECOND_TAG, 1, 100, 100),  # an extra tag never passes 100
        ([START, status(BIG, "Mounted from other/app")], 1, 100, 100),
    ],
)
def test_percent_of_a_push(
    events: list[dict[str, Any]], tags: int, low: float, high: float
) -> None:
    assert low <= percent_after(events, tags) <= high


def test_percent_never_goes_back() -> None:
    # Sizes arrive late: a layer first counts as average, then by its size.
    progress = PushProgress(1)
    seen = []
    for event in [
        START,
        status("a", "Preparing"),
        status("b", "Preparing"),
        status("a", "Pushed"),
        pushing("b", 10, 1000),
    ]:
        progress.add(event)
        seen.append(progress.percent)
    assert seen == sorted(seen)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        # (seconds later, percent) -> whether it is published
        ([(0, 0)], [True]),
        ([(0, 0), (0.1, 1), (0.2, 2)], [True, False, False]),  # too soon, too small
        ([(0, 0), (0.1, 1), (1.2, 2)], [True, False, True]),  # a second passed
        ([(0, 0), (0.1, 6)], [True, True]),  # 5 points of progress
        ([(0, 0), (0.1, 100)], [True, True]),  # the end always shows
        ([(0, 50), (5, 50)], [True, False]),  # no change, no call
        ([(0, 100), (5, 100)], [True, False]),
    ],
)
def test_throttle(steps: list[tuple[float, float]], expected: list[bool]) -> None:
    clock = Clock()
    throttle = Throttle(clock=clock)
    results = []
    for later, percent in steps:
        clock.now += later
        results.append(throttle.due(percent))
    assert results == expected


def test_a_long_push_makes_few_updates() -> None:
    clock = Clock()
    throttle = Throttle(clock=clock)
    published = 0
    for chunk in range(1, 10_001):  # 10 000 chunk events over 100 s
        clock.now = chunk / 100
        published += throttle.due(chunk / 100)
    assert published <= 20 + 100 + 1


def test_watchers_see_every_change_outside_a_run() -> None:
    updates: list[PushUpdate] = []
    on_event = track_push("push", REPOSITORY, ["v1", "v2"])
    with watching(updates.append):
        for event in FIRST_TAG + SECOND_TAG:
            on_event(event)
    on_event(START)  # after the block: nobody is told
    percents = [u.percent for u in updates]
    assert percents == sorted(percents)
    assert updates[-1].percent == 100
    assert updates[-1].done
    assert not any(u.done for u in updates[:-1])
    assert updates[0].repository == f"{REPOSITORY}:v1,v2"


def test_a_failing_watcher_does_not_stop_the_push() -> None:
    def broken(update: PushUpdate) -> None:
        msg = "display gone"
        raise RuntimeError(msg)

    on_event = track_push("push", REPOSITORY, ["v1"])
    with watching(broken):
        for event in FIRST_TAG:
            on_event(event)


@pytest.mark.parametrize(
    ("step", "key"),
    [
        ("push", "freshflow-push-push"),
        ("PushingToMyRegistry", "freshflow-push-pushingtomyregistry"),
        ("push_to ECR/prod", "freshflow-push-push-to-ecr-prod"),
        ("___", "freshflow-push-step"),
    ],
)
def test_artifact_keys_are_valid(step: str, key: str) -> None:
    assert artifact_key(step) == key
