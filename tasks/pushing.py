"""The one seam every push goes through.

Today images are pushed by the Docker Engine (`EnginePusher`).  A registry-API
pusher (registry-to-registry promotion, one upload per layer for many
registries) can stand beside it; steps and the flow only see `Pusher`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

import docker

from flows.errors import StepError
from flows.report import PushedImage
from tasks.engine import Deadline, Event, RegistryAuth, push_image, tag_image

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
