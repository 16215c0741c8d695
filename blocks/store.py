"""Save, list, load and remove registry integrations on the Prefect server."""

from __future__ import annotations

import logging
import re
from functools import lru_cache

from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

from blocks.registry import DockerRegistry, EcrRegistry, Integration
from flows.errors import IntegrationError
from flows.integrations import Catalog

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


def check_name(name: str) -> None:
    """Integration names are Prefect block names: lowercase, digits, dashes."""
    if not _NAME.match(name):
        msg = (
            f"integration name {name!r} is not allowed: use lowercase letters, digits "
            "and dashes (Prefect block names), and the same name in `registry:`"
        )
        raise IntegrationError(msg)


def save(name: str, integration: Integration, *, overwrite: bool = True) -> None:
    """Store `integration` under `name`; only one integration may be default."""
    check_name(name)
    others = list_integrations()
    if name in others and type(others[name]) is not type(integration):
        old = type(others[name]).__name__
        msg = f"integration {name!r} already exists as a {old}; remove it first"
        raise IntegrationError(msg)
    if integration.default:
        for other_name, other in others.items():
            if other_name != name and other.default:
                other.default = False
                other.save(other_name, overwrite=True)
                log.info("integration %r is no longer the default", other_name)
    integration.save(name, overwrite=overwrite)
    load_integration.cache_clear()


def list_integrations() -> dict[str, Integration]:
    """Every saved integration by name, secrets included (never print them)."""
    found: dict[str, Integration] = {}
    with get_client(sync_client=True) as client:
        for block_type in (DockerRegistry, EcrRegistry):
            try:
                documents = client.read_block_documents_by_type(
                    block_type.get_block_type_slug(), include_secrets=True
                )
            except ObjectNotFound:
                continue
            except PrefectHTTPStatusError as exc:
                if exc.response.status_code == 404:
                    continue  # the block type was never registered: none saved
                raise
            for document in documents:
                if document.name is None or document.is_anonymous:
                    continue
                block = block_type._from_block_document(document)
                found[document.name] = block
    return found


@lru_cache(maxsize=64)
def load_integration(name: str) -> Integration:
    """Load one integration by name (cached for the life of the process)."""
    integration = list_integrations().get(name)
    if integration is None:
        msg = (
            f"registry integration {name!r} does not exist; "
            f"add it with `freshflow registry add {name} --domain HOST`"
        )
        raise IntegrationError(msg)
    return integration


def remove(name: str) -> None:
    """Delete integration `name`."""
    integration = list_integrations().get(name)
    if integration is None:
        msg = f"registry integration {name!r} does not exist"
        raise IntegrationError(msg)
    with get_client(sync_client=True) as client:
        assert integration._block_document_id is not None
        client.delete_block_document(integration._block_document_id)
    load_integration.cache_clear()


def catalog() -> Catalog:
    """A secret-free summary of every integration, for checking and planning."""
    return Catalog(
        tuple(block.info(name) for name, block in sorted(list_integrations().items()))
    )
