"""Docker image references: parsing, naming rules and push targets.

Follows the grammar of distribution's `reference` package: a reference is
`[registry/]path[:tag][@digest]`; the first component is a registry when it
has a `.` or `:` or is `localhost`.  Docker Hub is `docker.io`, and its
one-component paths live under `library/`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flows.integrations import DOCKER_HUB

TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-fA-F0-9]{32,}$")


class ImageReferenceError(ValueError):
    """An image reference or tag breaks Docker's naming rules."""


@dataclass(frozen=True)
class ImageReference:
    """A parsed image reference."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        """`domain/path` as the engine names the repository."""
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        text = self.repository
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def split_domain(name: str) -> tuple[str | None, str]:
    """Split `name` into (registry or None, path) by Docker's rule."""
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return None, name


def parse_reference(text: str) -> ImageReference:
    """Parse `text`; raise ImageReferenceError naming the broken part."""
    name, _, digest = text.partition("@")
    tag = None
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    domain, path = split_domain(name)
    if domain is None or domain in ("index.docker.io", "registry-1.docker.io"):
        domain = DOCKER_HUB
        if "/" not in path:
            path = f"library/{path}"
    check_path(path, text)
    if tag is not None:
        check_tag(tag)
    if digest and not _DIGEST.match(digest):
        msg = f"invalid digest {digest!r} in image reference {text!r}"
        raise ImageReferenceError(msg)
    return ImageReference(domain, path, tag, digest or None)


def check_path(path: str, context: str | None = None) -> None:
    """Check a repository path (lowercase components split by `/`)."""
    bad = [c for c in path.split("/") if not _COMPONENT.match(c)]
    if bad or not path:
        where = f" in {context!r}" if context and context != path else ""
        msg = (
            f"invalid repository name {path!r}{where}: use lowercase letters, digits "
            "and separators (. _ -) between them, components split by '/'"
        )
        raise ImageReferenceError(msg)


def check_tag(tag: str) -> None:
    """Check a tag against Docker's grammar (Decisions 5)."""
    if not TAG.match(tag):
        msg = (
            f"invalid tag {tag!r}: a tag is 1-128 letters, digits, '_', '.' or '-' "
            "and cannot start with '.' or '-'"
        )
        raise ImageReferenceError(msg)


def target_repository(domain: str, prefix: str, image_name: str) -> str:
    """`domain/prefix/image_name` without doubled slashes or a repeated prefix.

    Decisions 8: the integration's prefix is not added again when
    `image_name` already starts with it.
    """
    name = image_name.strip("/")
    image_domain, rest = split_domain(name)
    if image_domain is not None:
        name = rest  # a full reference as image_name: keep only its path
    parts = [p for p in prefix.strip("/").split("/") if p]
    if parts and name.split("/")[: len(parts)] != parts:
        name = "/".join([*parts, name])
    if domain == DOCKER_HUB and "/" not in name:
        name = f"library/{name}"
    check_path(name)
    return f"{domain}/{name}"


def repository_path(reference: str) -> str:
    """The repository path of a reference, without registry, tag or digest."""
    name = reference.partition("@")[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name.rsplit(":", 1)[0]
    domain, path = split_domain(name)
    if domain in (None, DOCKER_HUB) and path.startswith("library/"):
        return path.removeprefix("library/")
    return path
