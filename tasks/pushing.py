"""The one seam every push goes through.

Two pushers stand behind `Pusher`; `FRESHFLOW_PUSH_VIA` (`tasks.settings`)
chooses:

- `RegistryPusher` (`auto` and `registry`) uploads through the registry's
  HTTP API itself: blobs once for all tags, layers the registry has skipped,
  a timeout that cancels the uploads at the registry.  An image the engine
  knows from a registry (pulled, or pushed before) is copied from there
  blob by blob with its very manifest, so a promotion keeps its digest.
- `EnginePusher` (`engine`) has the Docker Engine push each tag, as
  `docker push` does.  Under `auto` it also takes the images whose registry
  cannot be read, since the engine recompresses a layer as it first did.

Steps and the flow only see `Pusher`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

import docker

from flows.errors import StepError
from flows.report import PushedImage
from tasks.engine import Deadline, Event, RegistryAuth, push_image, tag_image
from tasks.registry_push import RegistryPusher, Source
from tasks.settings import PushSettings

log = logging.getLogger(__name__)


class Pusher(Protocol):
    """Pushes one local image to one repository under several tags."""

    def push(
        self,
        image_id: str,
        repository: str,
        tags: tuple[str, ...],
        auth: RegistryAuth | None,
        deadline: Deadline,
        on_pushed: Callable[[PushedImage], None],
    ) -> list[PushedImage]: ...


class EnginePusher:
    """Tags the image in the engine, then has the engine push each tag."""

    def __init__(
        self, api: docker.APIClient, on_event: Callable[[Event], None] | None = None
    ) -> None:
        self._api = api
        self._on_event = on_event

    def push(
        self,
        image_id: str,
        repository: str,
        tags: tuple[str, ...],
        auth: RegistryAuth | None,
        deadline: Deadline,
        on_pushed: Callable[[PushedImage], None],
    ) -> list[PushedImage]:
        pushed: list[PushedImage] = []
        for tag in tags:
            tag_image(self._api, image_id, repository, tag)
            try:
                result = push_image(
                    self._api, repository, tag, auth, deadline, self._on_event
                )
            except StepError as exc:
                exc.pushed = tuple(pushed)
                raise
            image = PushedImage(result.reference, result.digest, image_id, result.size)
            pushed.append(image)
            on_pushed(image)
        return pushed


def make_pusher(
    api: docker.APIClient,
    settings: PushSettings,
    on_event: Callable[[Event], None] | None = None,
    source: Source | None = None,
) -> Pusher:
    """The pusher the settings ask for; `source` helps promotions."""
    engine = EnginePusher(api, on_event)
    if settings.via == "engine":
        return engine
    return RegistryPusher(
        api,
        settings,
        on_event,
        source=source,
        fallback=engine.push if settings.via == "auto" else None,
    )
