"""How pushes run on this worker, from `FRESHFLOW_PUSH_*` environment variables.

    FRESHFLOW_PUSH_VIA                auto (default), registry or engine
    FRESHFLOW_PUSH_CONCURRENCY        layers uploaded at once per push (3)
    FRESHFLOW_PUSH_COMPRESSION_LEVEL  gzip level of uploaded layers, 1-9 (6)
    FRESHFLOW_PUSH_COMPRESSION_THREADS  cores that compress, 1-64 (all of them)
    FRESHFLOW_PUSH_CACHE_DIR          where the layer digest cache lives
    FRESHFLOW_PUSH_SPOOL_DIR          where exported images wait to upload

`registry` has freshflow upload the layers itself through the registry's HTTP
API: a timeout cancels the uploads at the registry, blobs are uploaded once
for all tags, and layers the registry already has are skipped.  `engine` has
the Docker Engine push each tag, as `docker push` does.  `auto` is
`registry`, except that an image copied from a registry that cannot be read
is left to the engine, which keeps its digest (`tasks.pushing`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from flows.errors import EngineError


class PushSettings(BaseSettings):
    """The `FRESHFLOW_PUSH_*` settings of this process."""

    model_config = SettingsConfigDict(env_prefix="FRESHFLOW_PUSH_", frozen=True)

    via: Literal["auto", "registry", "engine"] = "auto"
    concurrency: int = Field(default=3, ge=1, le=16)
    compression_level: int = Field(default=6, ge=1, le=9)
    compression_threads: int = Field(
        default_factory=lambda: min(os.cpu_count() or 1, 64), ge=1, le=64
    )
    cache_dir: Path = Path("~/.cache/freshflow")
    spool_dir: Path = Path(tempfile.gettempdir())


def push_settings() -> PushSettings:
    """The settings, or an error that names the bad variable and its range."""
    try:
        return PushSettings()
    except ValidationError as exc:
        problems = "; ".join(
            f"FRESHFLOW_PUSH_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors()
        )
        msg = f"bad push setting in the environment: {problems}"
        raise EngineError(msg) from None
