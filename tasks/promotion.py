"""Promotion: copying an image the engine knows from a registry, digest kept.

An image that was pulled (or pushed) has `RepoDigests`: the registries and
manifests the engine knows it from.  `origins` lists them, the candidate's
own reference first; `image_manifest` reads an origin's manifest of exactly
this image (for an index, the platform whose config is the image ID), so
the pusher can copy its blobs and write the very same manifest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flows.errors import StepError
from tasks.blobcache import Blob
from tasks.registry_api import IMAGE_MANIFESTS, MANIFEST_INDEXES, RegistryClient


@dataclass(frozen=True)
class Origin:
    """A registry the engine knows the image from: `host/repository@digest`."""

    host: str
    repository: str
    digest: str  # or a tag
    explicit_host: bool = False

    @property
    def name(self) -> str:
        mark = "@" if ":" in self.digest else ":"
        return f"{self.host}/{self.repository}{mark}{self.digest}"


class Unreadable(Exception):
    """The origin does not serve the image (gone, refused, or another image)."""


def origins(
    inspected: Mapping[str, Any], target_host: str, candidate: str | None
) -> list[Origin]:
    """Where the engine knows the image from: the candidate's own registry
    first (its RepoDigests may be stale), then each RepoDigest, the target
    registry's before others.  None for an image only the engine has."""
    known = [o for o in map(_origin, inspected.get("RepoDigests") or []) if o]
    if not known:
        return []
    named = _origin(candidate) if candidate else None
    first = [named] if named is not None and named.explicit_host else []
    return first + sorted(known, key=lambda o: o.host != target_host)


def _origin(name: str) -> Origin | None:
    """`host/repo@digest` or `host/repo:tag` as an origin."""
    repository, _, digest = name.partition("@")
    if not digest:
        repository, _, digest = name.rpartition(":")
        if not repository or "/" in digest:
            return None
    first, _, rest = repository.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return Origin(first, rest, digest, explicit_host=True)
    path = repository if "/" in repository else f"library/{repository}"
    return Origin("docker.io", path, digest)  # Docker Hub, written short


def image_manifest(
    source: RegistryClient, origin: Origin, image_id: str, reference: str
) -> tuple[bytes, str, list[Blob]] | None:
    """The origin's manifest of exactly this image (from an index, the right
    platform's), its media type and blobs; None when it holds another image."""
    try:
        manifest, media_type = source.get_manifest(
            origin.repository, origin.digest, reference
        )
        if media_type in MANIFEST_INDEXES:
            for entry in json.loads(manifest).get("manifests") or []:
                child, child_type = source.get_manifest(
                    origin.repository, str(entry.get("digest")), reference
                )
                blobs = blobs_of(child, child_type, image_id)
                if blobs is not None:
                    return child, child_type, blobs
            return None
        blobs = blobs_of(manifest, media_type, image_id)
    except StepError as exc:
        raise Unreadable(str(exc)) from None
    return None if blobs is None else (manifest, media_type, blobs)


def blobs_of(manifest: bytes, media_type: str, image_id: str) -> list[Blob] | None:
    """Config and layer blobs of an image manifest whose config is `image_id`."""
    if media_type not in IMAGE_MANIFESTS:
        return None
    try:
        document = json.loads(manifest)
        config = document["config"]
        if config["digest"] != image_id:
            return None
        return [
            Blob(str(b["digest"]), int(b["size"]))
            for b in [config, *document["layers"]]
            if not b.get("urls")  # foreign layers stay where they are
        ]
    except (ValueError, KeyError, TypeError):
        return None
