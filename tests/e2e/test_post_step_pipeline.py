"""Post-step operations in a real pipeline run, read back by a later command."""

from __future__ import annotations

import json

PIPELINE = """\
version: '1.0'
steps:
  build:
    type: build
    image_name: app
    disable_push: true
    on_success:
      metadata:
        set:
          - '${{build.imageId}}':
              - qa: pending
              - is_main:
                  evaluate: "'${{CF_BRANCH}}' == 'main'"
      annotations:
        set:
          - entity_type: pipeline
            annotations:
              - last_branch: ${{CF_BRANCH}}
              - coverage: 70
            display: coverage
  push:
    type: push
    candidate: ${{build}}
    registry: down
    fail_fast: false
    on_fail:
      annotations:
        set:
          - annotations:
              - push_failed
    on_finish:
      annotations:
        set:
          - entity_type: pipeline
            annotations:
              - push_result: ${{push.result}}
"""


def test_operations_are_stored_and_readable_after_the_run(
    freshflow, workspace, registry_factory, integrations
) -> None:
    registry = registry_factory()
    integrations("down", registry)
    registry.stop()
    path = workspace(PIPELINE)
    result = freshflow("run", str(path), "--branch", "main", "--json")
    assert result.exit_code == 0, result.stderr  # fail_fast: false
    report = result.json()
    image_id = report["steps"]["build"]["imageId"]  # type: ignore[index]

    image = freshflow("annotations", "get", "image", str(image_id), "--json").json()
    pipeline = freshflow(
        "annotations", "get", "pipeline", path.parent.name, "--json"
    ).json()
    build = freshflow(
        "annotations", "get", "build", str(report["flow_run_id"]), "--json"
    ).json()

    text = json.dumps([image, pipeline, build])
    assert '"qa"' in text
    assert '"pending"' in text
    assert '"is_main"' in text
    assert '"last_branch"' in text
    assert '"coverage"' in text
    assert '"push_failed"' in text
    assert '"push_result"' in text
    assert '"failure"' in text
