"""The registry blocks against Prefect's own block standards.

`BlockStandardTestSuite` is what Prefect's integrations run on their blocks:
a description, a documentation URL, a description ending in a period on
every field, and a code example that loads the block by name.  The logo test
in it runs only when Pillow is installed (it downloads the image).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from prefect.blocks.core import Block
from prefect.testing.standard_test_suites import BlockStandardTestSuite
from pydantic import SecretStr

from blocks.registry import INTEGRATION_TYPES, DockerRegistry, EcrRegistry
from tests.support.services import REPO_ROOT


class TestRegistryBlocks(BlockStandardTestSuite):
    @pytest.fixture(params=INTEGRATION_TYPES, ids=lambda b: b.__name__)
    def block(self, request: pytest.FixtureRequest) -> type[Block]:
        block: type[Block] = request.param
        return block


@pytest.mark.parametrize(
    ("block", "secrets"),
    [
        (DockerRegistry, {"password"}),
        (EcrRegistry, {"secret_access_key", "session_token"}),
    ],
)
def test_secrets_are_secret_fields(block: type[Block], secrets: set[str]) -> None:
    schema = block.model_json_schema()
    assert set(schema.get("secret_fields", [])) == secrets
    for name in secrets:
        assert SecretStr in _types(block.model_fields[name].annotation)


def test_slugs_are_stable() -> None:
    assert DockerRegistry.get_block_type_slug() == "freshflow-docker-registry"
    assert EcrRegistry.get_block_type_slug() == "freshflow-ecr-registry"


def test_block_register_finds_both_types(prefect_server: None) -> None:
    """`prefect block register -m blocks.registry` registers both block types."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    env = {"PREFECT_API_URL": str(PREFECT_API_URL.value())}
    result = subprocess.run(
        [sys.executable, "-m", "prefect", "block", "register", "-m", "blocks.registry"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env=os.environ | env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Successfully registered 2 blocks" in result.stdout
    with get_client(sync_client=True) as client:
        for block in INTEGRATION_TYPES:
            block_type = client.read_block_type_by_slug(block.get_block_type_slug())
            assert block_type.description
            assert block_type.documentation_url


def _types(annotation: object) -> set[object]:
    args = getattr(annotation, "__args__", None)
    return set(args) if args else {annotation}
