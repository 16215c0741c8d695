"""Live progress of image pushes, for the Prefect UI and the command line.

The engine reports a push as a stream of JSON events, several per layer:
`Preparing`, `Waiting`, then `Pushing` with `progressDetail` `{current,
total}` bytes, and finally `Pushed`, `Layer already exists` or `Mounted
from ...`; each tag ends with an `aux` event carrying the digest.
`PushProgress` folds those events into one percentage for a push step (all
its tags).  `track_push` returns the `on_event` callback the engine pusher
takes: it publishes the percentage, throttled, to a Prefect progress
artifact of the running task, and to whoever watches in this process (the
CLI's progress bars, through `watching`).
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

log = logging.getLogger(__name__)

Event = Mapping[str, Any]

_DONE = ("Pushed", "Layer already exists", "Already exists", "Mounted from")
_NEW_TAG = "The push refers to repository"


@dataclass
class _Layer:
    current: int = 0
    total: int = 0
    done: bool = False

    def fraction(self) -> float:
        if self.done:
            return 1.0
        return min(self.current / self.total, 1.0) if self.total else 0.0


class PushProgress:
    """The percentage of a push of `tags` tags, fed with engine events.

    Layers count by their size once the engine reports it, and as an average
    layer before that; the percentage never goes back.
    """

    def __init__(self, tags: int = 1) -> None:
        self._expected = max(tags, 1)
        self._finished = 0
        self._layers: dict[str, _Layer] = {}
        self._highest = 0.0

    def add(self, event: Event) -> None:
        """Take one event of the engine's push stream into account."""
        status = str(event.get("status") or "")
        aux = event.get("aux")
        if isinstance(aux, Mapping) and aux.get("Digest"):
            self._finished += 1
            self._layers = {}
        elif status.startswith(_NEW_TAG):
            self._layers = {}
        elif event.get("id") and status:
            self._add_layer_event(str(event["id"]), status, event)

    def _add_layer_event(self, layer_id: str, status: str, event: Event) -> None:
        layer = self._layers.setdefault(layer_id, _Layer())
        if status.startswith(_DONE):
            layer.done = True
        elif status == "Pushing":
            detail = event.get("progressDetail") or {}
            layer.current = int(detail.get("current") or layer.current)
            layer.total = int(detail.get("total") or layer.total)

    @property
    def finished_tags(self) -> int:
        """How many tags the registry has confirmed with a digest."""
        return self._finished

    @property
    def percent(self) -> float:
        """Progress of the whole step, 0 to 100."""
        expected = max(self._expected, self._finished + bool(self._layers))
        value = 100.0 * (self._finished + self._current_tag()) / expected
        self._highest = max(self._highest, min(value, 100.0))
        return self._highest

    def _current_tag(self) -> float:
        layers = list(self._layers.values())
        if not layers:
            return 0.0
        sizes = [layer.total for layer in layers if layer.total]
        average = sum(sizes) / len(sizes) if sizes else 1.0
        weights = [layer.total or average for layer in layers]
        done = sum(
            w * layer.fraction() for w, layer in zip(weights, layers, strict=True)
        )
        return done / sum(weights)


class Throttle:
    """Says when a new percentage is worth an API call.

    Due at the first value, at 100, after `step` points of progress, or when
    the value changed and `interval` seconds passed since the last one.
    """

    def __init__(
        self,
        interval: float = 1.0,
        step: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval = interval
        self._step = step
        self._clock = clock
        self._last: float | None = None
        self._at = 0.0

    def due(self, percent: float) -> bool:
        """Whether to publish `percent` now; records it when so."""
        now = self._clock()
        last = self._last
        if last is not None and (percent == last or percent < 100.0 <= last):
            return False
        if not (
            last is None
            or percent >= 100.0
            or percent - last >= self._step
            or now - self._at >= self._interval
        ):
            return False
        self._last, self._at = percent, now
        return True


@dataclass(frozen=True)
class PushUpdate:
    """A new percentage of one push step, as watchers receive it."""

    key: str
    step: str
    repository: str
    percent: float
    done: bool


Watcher = Callable[[PushUpdate], None]

_lock = threading.Lock()
_watchers: list[Watcher] = []


@contextlib.contextmanager
def watching(watcher: Watcher) -> Iterator[None]:
    """Call `watcher` with every push update made in this process meanwhile."""
    with _lock:
        _watchers.append(watcher)
    try:
        yield
    finally:
        with _lock:
            _watchers.remove(watcher)


def _notify(update: PushUpdate) -> None:
    with _lock:
        watchers = list(_watchers)
    for watcher in watchers:
        try:
            watcher(update)
        except Exception as exc:  # a display never fails a push
            log.debug("progress watcher failed: %s", exc)


def artifact_key(step: str) -> str:
    """The artifact key of a step's push progress (lowercase, digits, dashes)."""
    slug = re.sub(r"[^a-z0-9]+", "-", step.lower()).strip("-")
    return f"freshflow-push-{slug or 'step'}"


class _ProgressArtifact:
    """A Prefect progress artifact of the running task, created on first use."""

    def __init__(self, step: str, description: str) -> None:
        self._key = artifact_key(step)
        self._description = description
        self._id: UUID | None = None
        self._broken = False

    def publish(self, percent: float) -> None:
        if self._broken:
            return
        from prefect.artifacts import (
            create_progress_artifact,
            update_progress_artifact,
        )

        try:
            if self._id is None:
                created = create_progress_artifact(
                    percent, key=self._key, description=self._description
                )
                self._id = created if isinstance(created, UUID) else None
            else:
                update_progress_artifact(self._id, percent)
        except Exception as exc:  # progress never fails a push
            self._broken = True
            log.debug("cannot publish push progress %s: %s", self._key, exc)


def _in_run() -> bool:
    from prefect.context import FlowRunContext, TaskRunContext

    return TaskRunContext.get() is not None or FlowRunContext.get() is not None


def track_push(
    step: str, repository: str, tags: Sequence[str], *, artifact: bool = True
) -> Callable[[Event], None]:
    """The `on_event` callback for pushing `repository` under `tags`.

    Inside a Prefect run it keeps a progress artifact of the step up to date
    (at most about once a second or every 5 %); watchers in this process see
    every change.
    """
    progress = PushProgress(len(tags))
    throttle = Throttle()
    where = f"{repository}:{','.join(tags)}"
    sink = (
        _ProgressArtifact(step, f"Push of step {step!r} to {where}")
        if artifact and _in_run()
        else None
    )
    key = f"{step}@{repository}@{id(progress)}"
    shown: tuple[float, bool] | None = None

    def on_event(event: Event) -> None:
        nonlocal shown
        progress.add(event)
        percent = progress.percent
        done = progress.finished_tags >= len(tags)
        if (percent, done) != shown:
            shown = (percent, done)
            _notify(PushUpdate(key, step, where, percent, done))
        if sink is not None and throttle.due(percent):
            sink.publish(percent)

    return on_event
