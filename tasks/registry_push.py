"""Pushing an engine image through the registry's HTTP API.

An image the engine knows from a registry is promoted: its blobs are copied
from there and its very manifest written (`tasks.promotion`).  Any other
image leaves the engine as a `docker save` tar (`tasks.image_export`); each
layer is gzip-compressed on the fly and streamed to the registry, a few
layers at a time, and every tag then gets the same schema 2 manifest.  The
config blob's digest is the image ID, so pulling any of the tags gives back
the very image that was pushed.

Layers are compressed deterministically, and the layer cache
(`tasks.blobcache`) remembers each result: a layer the registry already has
is skipped before it is read, one that another repository of the registry
holds is mounted, and when every blob is there the image is not exported
at all.

At the deadline, or when another layer fails, each upload ends its body
early, deletes its upload session and stops; no tag is written.
"""

from __future__ import annotations

import contextvars
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, TypeVar

import docker

from flows.errors import EngineError, PushError, RegistryUnavailableError, StepError
from flows.report import PushedImage
from tasks.blobcache import Blob, BlobCache
from tasks.engine import Deadline, Event, RegistryAuth, tag_image
from tasks.image_export import Export, LayerBody, spooled_export
from tasks.promotion import Origin, Unreadable, blobs_of, image_manifest, origins
from tasks.registry_api import (
    CONFIG_V1,
    LAYER_GZIP,
    MANIFEST_V2,
    RegistryClient,
    UploadStopped,
)
from tasks.registry_transport import EngineRegistryRules
from tasks.settings import PushSettings

log = logging.getLogger(__name__)

_MAX_AHEAD = 8  # blocks of one layer in the gzip pool at once: bounds memory
_PROGRESS_EVERY = 0.5
_ATTEMPTS = 3  # tries of one blob transfer when the registry is unavailable
_RETRY_DELAY = 1.0  # seconds before the second try; doubled for each next
_NO_MORE_TAGS = "no further tag was written"
_CANCELLED = "freshflow stopped the upload and cancelled it at the registry"

_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(frozen=True)
class Source:
    """What is known of where a candidate came from.

    `reference` is the candidate as the step names it (`host/repo:tag`),
    tried first when the engine knows the image from a registry; `auth`
    gives credentials for reading from a registry host.
    """

    reference: str | None = None
    auth: Callable[[str], RegistryAuth | None] = lambda _host: None


PushFunction = Callable[
    [
        str,
        str,
        tuple[str, ...],
        RegistryAuth | None,
        Deadline,
        Callable[[PushedImage], None],
    ],
    list[PushedImage],
]


class RegistryPusher:
    """Uploads an engine image's blobs to the registry, then one manifest per tag."""

    def __init__(
        self,
        api: docker.APIClient,
        settings: PushSettings,
        on_event: Callable[[Event], None] | None = None,
        *,
        source: Source | None = None,
        fallback: PushFunction | None = None,
    ) -> None:
        self._api = api
        self._settings = settings
        self._on_event = on_event or (lambda _event: None)
        self._cache = BlobCache(settings.cache_dir, settings.compression_level)
        self._lock = threading.Lock()
        self._source = source or Source()
        self._fallback = fallback

    def push(
        self,
        image_id: str,
        repository: str,
        tags: tuple[str, ...],
        auth: RegistryAuth | None,
        deadline: Deadline,
        on_pushed: Callable[[PushedImage], None],
    ) -> list[PushedImage]:
        """Push the image under each tag; the engine does it when `fallback` must."""
        host, _, path = repository.partition("/")
        first = f"{repository}:{tags[0]}"
        inspected = self._inspect(image_id)
        rules = EngineRegistryRules.of(self._api)
        pushed: list[PushedImage] = []

        def record(image: PushedImage) -> None:
            pushed.append(image)
            on_pushed(image)

        try:
            with RegistryClient.connect(host, auth, rules, first) as client:
                self._event({"status": f"The push refers to repository [{repository}]"})
                known = origins(inspected, host, self._source.reference)
                promoted = self._promote(
                    client, path, known, image_id, rules, deadline, first
                )
                if promoted is None and known and self._fallback is not None:
                    log.info(
                        "%s came from %s, which cannot be read; the engine pushes it",
                        image_id[:19],
                        known[0].name,
                    )
                    return self._fallback(
                        image_id, repository, tags, auth, deadline, on_pushed
                    )
                if promoted is None:
                    if known:
                        log.warning(
                            "%s came from %s, which cannot be read; pushing it from the engine gives it a new digest",
                            image_id[:19],
                            known[0].name,
                        )
                    promoted = self._exported(
                        client, path, image_id, inspected, deadline, first
                    )
                self._tag(
                    client, repository, tags, image_id, promoted, deadline, record
                )
        except StepError as exc:
            exc.pushed = tuple(pushed)
            raise
        return pushed

    def _exported(
        self,
        client: RegistryClient,
        path: str,
        image_id: str,
        inspected: Mapping[str, Any],
        deadline: Deadline,
        reference: str,
    ) -> tuple[bytes, str]:
        """The manifest of the engine's image, once its blobs are uploaded."""
        diff_ids = [str(d) for d in (inspected.get("RootFS") or {}).get("Layers") or []]
        size = int(inspected.get("Size") or 0)
        config_size, layers = self._blobs(
            client, path, image_id, diff_ids, size, deadline, reference
        )
        return _manifest(image_id, config_size, layers), MANIFEST_V2

    def _tag(
        self,
        client: RegistryClient,
        repository: str,
        tags: tuple[str, ...],
        image_id: str,
        promoted: tuple[bytes, str],
        deadline: Deadline,
        on_pushed: Callable[[PushedImage], None],
    ) -> None:
        """Write the manifest under each tag, and tag the image in the engine."""
        host, _, path = repository.partition("/")
        manifest, media_type = promoted
        for tag in tags:
            if deadline.expired():
                raise deadline.error(_NO_MORE_TAGS)
            reference = f"{repository}:{tag}"
            digest = client.put_manifest(path, tag, manifest, reference, media_type)
            tag_image(self._api, image_id, repository, tag)
            image = PushedImage(reference, digest, image_id, len(manifest))
            self._event({"aux": {"Tag": tag, "Digest": digest, "Size": len(manifest)}})
            on_pushed(image)
        held = blobs_of(manifest, media_type, image_id) or []
        self._cache.remember_places(host, path, [b.digest for b in held])

    def _inspect(self, image_id: str) -> dict[str, Any]:
        try:
            inspected: dict[str, Any] = self._api.inspect_image(image_id)
        except docker.errors.APIError as exc:
            msg = f"cannot inspect image {image_id[:19]}: {exc.explanation or exc}"
            raise EngineError(msg) from None
        return inspected

    def _promote(
        self,
        client: RegistryClient,
        path: str,
        known: list[Origin],
        image_id: str,
        rules: EngineRegistryRules,
        deadline: Deadline,
        reference: str,
    ) -> tuple[bytes, str] | None:
        """Copy the image from a registry it came from, keeping its manifest.

        None, before anything is written, when no origin can be read.
        """
        for origin in known:
            try:
                source = (
                    client
                    if origin.host == client.host
                    else RegistryClient.connect(
                        origin.host,
                        self._source.auth(origin.host),
                        rules,
                        reference,
                        actions="pull",
                    )
                )
            except StepError as exc:
                log.debug("cannot reach %s: %s", origin.name, exc)
                continue
            try:
                found = image_manifest(source, origin, image_id, reference)
                if found is None:
                    continue
                manifest, media_type, blobs = found
                self._copy_blobs(
                    client, path, source, origin, blobs, deadline, reference
                )
                return manifest, media_type
            except Unreadable as exc:
                log.debug("cannot read %s: %s", origin.name, exc)
            finally:
                if source is not client:
                    source.close()
        return None

    def _copy_blobs(
        self,
        client: RegistryClient,
        path: str,
        source: RegistryClient,
        origin: Origin,
        blobs: list[Blob],
        deadline: Deadline,
        reference: str,
    ) -> None:
        unique = list(dict.fromkeys(blobs))
        places = self._cache.places(client.host, [b.digest for b in unique])
        if source is client:  # the origin's repository holds them all
            places.update({b.digest: origin.repository for b in unique})
        there = self._each(
            unique,
            lambda blob: self._reuse(
                client, path, blob.digest, blob.digest, places, reference
            ),
        )
        missing = [b for b, ok in zip(unique, there, strict=True) if not ok]

        def copy(blob: Blob, should_stop: Callable[[], bool]) -> Blob:
            progress = self._progress(blob.digest)
            client.copy_blob(
                source,
                origin.repository,
                path,
                blob.digest,
                should_stop,
                deadline,
                reference,
                lambda done: progress(done, blob.size),
            )
            self._event({"id": _short(blob.digest), "status": "Pushed"})
            return blob

        self._in_parallel({b.digest: b for b in missing}, copy, deadline)

    def _blobs(
        self,
        client: RegistryClient,
        path: str,
        image_id: str,
        diff_ids: list[str],
        size: int,
        deadline: Deadline,
        reference: str,
    ) -> tuple[int, list[Blob]]:
        """The config size and layer blobs, uploading what the registry lacks.

        `size` is the image's uncompressed size, the room an export needs.
        """
        known = self._cache.layers(diff_ids)
        config_size = self._cache.config_size(image_id)
        places = self._cache.places(
            client.host, [b.digest for b in known.values()] + [image_id]
        )
        # Asked a few at once: against a distant registry each answer is a
        # round trip, and an image may have dozens of layers.
        checks = [(known[d].digest, d) for d in dict.fromkeys(diff_ids) if d in known]
        if config_size is not None:
            checks.append((image_id, image_id))
        found = self._each(
            checks,
            lambda check: self._reuse(
                client, path, check[0], check[1], places, reference
            ),
        )
        there = {label: ok for (_, label), ok in zip(checks, found, strict=True)}
        present = {d: known[d] for d in known if there.get(d)}
        config_there = there.get(image_id, False)
        missing = [d for d in dict.fromkeys(diff_ids) if d not in present]
        if config_size is not None and config_there and not missing:
            return config_size, [present[d] for d in diff_ids]
        if deadline.expired():
            raise deadline.error(_CANCELLED)
        with spooled_export(
            self._api,
            image_id,
            diff_ids,
            size,
            self._settings.spool_dir,
            deadline,
        ) as export:
            if not config_there:
                client.put_blob(path, export.config, image_id, reference)
            config_size = len(export.config)
            self._cache.remember_config(image_id, config_size)
            present |= self._upload(client, path, export, missing, deadline, reference)
        return config_size, [present[d] for d in diff_ids]

    def _reuse(
        self,
        client: RegistryClient,
        path: str,
        digest: str,
        label: str,
        places: Mapping[str, str],
        reference: str,
    ) -> bool:
        """Whether the repository has the blob, or got it by a mount.

        `label` names the blob in progress events (a layer's diff ID).
        """
        if client.has_blob(path, digest, reference):
            self._event({"id": _short(label), "status": "Layer already exists"})
            return True
        source = places.get(digest)
        if (
            source
            and source != path
            and client.mount_blob(path, digest, source, reference)
        ):
            self._event({"id": _short(label), "status": f"Mounted from {source}"})
            return True
        return False

    def _each(self, items: Sequence[_T], work: Callable[[_T], _R]) -> list[_R]:
        """`work` on every item, a few at once, results in order.

        Each runs in a copy of this thread's context, so its logs go to the
        task run it belongs to (`flows.runlogs`).
        """
        if not items:
            return []
        workers = min(self._settings.concurrency, len(items))
        with ThreadPoolExecutor(workers, thread_name_prefix="freshflow-check") as pool:
            futures = [
                pool.submit(contextvars.copy_context().run, work, item)
                for item in items
            ]
            return [future.result() for future in futures]

    def _upload(
        self,
        client: RegistryClient,
        path: str,
        export: Export,
        diff_ids: list[str],
        deadline: Deadline,
        reference: str,
    ) -> dict[str, Blob]:
        if not diff_ids:
            return {}
        threads = self._settings.compression_threads
        with ThreadPoolExecutor(threads, thread_name_prefix="freshflow-gzip") as pool:

            def one(diff_id: str, should_stop: Callable[[], bool]) -> Blob:
                return self._upload_layer(
                    client,
                    path,
                    export,
                    diff_id,
                    pool,
                    should_stop,
                    deadline,
                    reference,
                )

            return self._in_parallel({d: d for d in diff_ids}, one, deadline)

    def _in_parallel(
        self,
        items: dict[str, _T],
        work: Callable[[_T, Callable[[], bool]], Blob],
        deadline: Deadline,
    ) -> dict[str, Blob]:
        """Run `work` on each item, a few at once; the first failure stops the rest.

        An item whose registry is unavailable is tried again, up to
        `_ATTEMPTS` times, after waits that double, while the deadline allows.
        """
        if not items:
            return {}
        abort = threading.Event()

        def should_stop() -> bool:
            return abort.is_set() or deadline.expired()

        def attempts(item: _T) -> Blob:
            attempt = 1
            while True:
                try:
                    return work(item, should_stop)
                except RegistryUnavailableError as exc:
                    delay = _RETRY_DELAY * 2 ** (attempt - 1)
                    left = deadline.remaining()
                    if attempt == _ATTEMPTS or (left is not None and left <= delay):
                        raise
                    attempt += 1
                    log.warning(
                        "%s; trying again in %gs (attempt %d of %d)",
                        exc,
                        delay,
                        attempt,
                        _ATTEMPTS,
                    )
                    if abort.wait(delay):
                        raise

        done: dict[str, Blob] = {}
        errors: list[BaseException] = []
        workers = min(self._settings.concurrency, len(items))
        with ThreadPoolExecutor(workers, thread_name_prefix="freshflow-upload") as pool:
            # Each upload runs in a copy of this thread's context, so its
            # logs go to the task run it belongs to (`flows.runlogs`).
            futures = {
                pool.submit(contextvars.copy_context().run, attempts, item): key
                for key, item in items.items()
            }
            for future in as_completed(futures):
                try:
                    done[futures[future]] = future.result()
                except BaseException as exc:
                    abort.set()
                    errors.append(exc)
        if not errors:
            return done
        if deadline.expired():
            raise deadline.error(_CANCELLED)
        real = [e for e in errors if not isinstance(e, UploadStopped)]
        raise real[0]

    def _upload_layer(
        self,
        client: RegistryClient,
        path: str,
        export: Export,
        diff_id: str,
        pool: Executor,
        should_stop: Callable[[], bool],
        deadline: Deadline,
        reference: str,
    ) -> Blob:
        short = _short(diff_id)
        progress = self._progress(diff_id)
        body = LayerBody(
            export.path,
            export.layers[diff_id],
            self._settings.compression_level,
            pool,
            min(self._settings.compression_threads, _MAX_AHEAD) + 1,
            should_stop,
            progress,
        )

        def finish() -> str | None:
            if body.stopped:
                return None
            if "sha256:" + body.raw.hexdigest() != diff_id:
                msg = f"push of {reference}: the engine exported layer {short} with other content than its ID says"
                raise PushError(msg)
            return body.digest

        client.stream_blob(path, iter(body), finish, deadline, reference)
        blob = Blob(body.digest, body.size)
        self._cache.remember_layer(diff_id, blob)
        self._event({"id": short, "status": "Pushed"})
        return blob

    def _progress(self, digest: str) -> Callable[[int, int], None]:
        """A progress callback for one blob, sending at most two events a second."""
        short = _short(digest)
        last = [0.0]

        def progress(current: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] >= _PROGRESS_EVERY or current == total:
                last[0] = now
                self._event(
                    {
                        "id": short,
                        "status": "Pushing",
                        "progressDetail": {"current": current, "total": total},
                    }
                )

        return progress

    def _event(self, event: Event) -> None:
        with self._lock:
            self._on_event(event)


def _short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]


def _manifest(image_id: str, config_size: int, layers: list[Blob]) -> bytes:
    document = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_V2,
        "config": {"mediaType": CONFIG_V1, "size": config_size, "digest": image_id},
        "layers": [
            {"mediaType": LAYER_GZIP, "size": blob.size, "digest": blob.digest}
            for blob in layers
        ],
    }
    return json.dumps(document, indent=3).encode()
