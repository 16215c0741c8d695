"""The pure core imports neither Prefect, nor Docker, nor boto3 (DESIGN.md)."""

from __future__ import annotations

import subprocess
import sys

PURE = [
    "flows.loader",
    "flows.validation",
    "flows.plan",
    "flows.resolve",
    "flows.when",
    "flows.expressions",
    "flows.post_steps",
    "flows.preview",
]


def test_pure_core_imports_no_outside_system() -> None:
    code = (
        f"import {', '.join(PURE)}, sys; "
        "print(sorted(m for m in ('prefect', 'docker', 'boto3') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
