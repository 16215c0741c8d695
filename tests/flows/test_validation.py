"""Invalid pipelines: each gives its exact message at its exact place."""

from __future__ import annotations

import textwrap

import pytest

from flows.errors import PipelineFileError
from flows.integrations import Catalog, IntegrationInfo
from flows.loader import load_pipeline_text
from flows.validation import check

CATALOG = Catalog(
    (
        IntegrationInfo("local", "docker", "127.0.0.1:5000", default=True),
        IntegrationInfo("other", "docker", "127.0.0.1:5001"),
        IntegrationInfo(
            "ecr",
            "ecr",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com",
            region="us-east-1",
        ),
    )
)

HEAD = "version: '1.0'\nsteps:\n"


def problems(text: str, catalog: Catalog = CATALOG) -> list[str]:
    """Every problem of `text`, as the CLI prints them."""
    try:
        pipeline, source = load_pipeline_text(textwrap.dedent(text), "c.yml")
    except PipelineFileError as exc:
        return [str(p) for p in exc.problems]
    return [str(p) for p in check(pipeline, source, catalog)]


def push(body: str) -> str:
    lines = "\n".join(
        "    " + line for line in textwrap.dedent(body).strip().splitlines()
    )
    return HEAD + "  p:\n    type: push\n" + lines + "\n"


CASES = [
    pytest.param(
        push("candidate: x\ntagz: [a]"),
        "c.yml:6:5: unknown key 'tagz' in push step 'p'; did you mean 'tag'?",
        id="unknown-key-did-you-mean",
    ),
    pytest.param(
        push("candidate: x\ntag: a\ntags: [b]"),
        "c.yml:7:5: step 'p' sets both `tag` and `tags`; use `tags` for several tags",
        id="tag-and-tags",
    ),
    pytest.param(
        push("candidate: x\ntag: [a]"),
        "c.yml:6:10: `tag` of push step 'p' must be text, not a list",
        id="wrong-type",
    ),
    pytest.param(
        push("tag: a"),
        "c.yml:4:5: push step 'p' needs `candidate`",
        id="missing-candidate",
    ),
    pytest.param(
        push("candidate: x\ntimeout: 10"),
        "c.yml:6:14: step 'p': timeout '10' must be a number followed by s, m or h, like 45m or 1.5h",
        id="timeout-without-unit",
    ),
    pytest.param(
        push("candidate: x\ntimeout: 30d"),
        "c.yml:6:14: step 'p': timeout '30d' must be a number followed by s, m or h, like 45m or 1.5h",
        id="timeout-bad-unit",
    ),
    pytest.param(
        push("candidate: x\ntimeout: 600h"),
        "c.yml:6:14: step 'p': timeout '600h' is longer than the maximum of 2147483647 ms (about 24.8 days)",
        id="timeout-too-long",
    ),
    pytest.param(
        push("candidate: x\nregistry: nope"),
        "c.yml:6:15: step 'p': registry integration 'nope' does not exist (known: ecr, local, other); add it with `freshflow registry add nope --domain HOST`",
        id="unknown-registry",
    ),
    pytest.param(
        push("candidate: x\nregistry: other\nregion: us-west-2"),
        "c.yml:7:5: step 'p': `region` is only for Amazon ECR registries (cross-region pushes are supported only for ECR); remove it or push to an ECR integration",
        id="region-on-docker-registry",
    ),
    pytest.param(
        push(
            "candidate: x\nregistry: ecr\nrole_arn: arn:aws:iam::123456789012:role/r\naws_duration_seconds: 899"
        ),
        "c.yml:8:27: step 'p': aws_duration_seconds is 899; it must be between 900 and 3600",
        id="duration-899",
    ),
    pytest.param(
        push(
            "candidate: x\nregistry: ecr\nrole_arn: arn:aws:iam::123456789012:role/r\naws_duration_seconds: 3601"
        ),
        "c.yml:8:27: step 'p': aws_duration_seconds is 3601; it must be between 900 and 3600",
        id="duration-3601",
    ),
    pytest.param(
        push("candidate: x\nregistry: ecr\naws_duration_seconds: 1000"),
        "c.yml:7:5: step 'p': aws_duration_seconds only applies when assuming a role; add role_arn or remove it",
        id="duration-without-role",
    ),
    pytest.param(
        push("candidate: x\nregistry: ecr\nrole_arn: arn:aws:iam::1234:user/bob"),
        "c.yml:7:15: step 'p': role_arn 'arn:aws:iam::1234:user/bob' is not an IAM role ARN; write arn:aws:iam::<12-digit account>:role/<name>",
        id="bad-role-arn",
    ),
    pytest.param(
        push("candidate: x\nprovider: gcr"),
        "c.yml:6:15: `provider` of push step 'p' must be one of 'standard', 'docker' or 'ecr', not 'gcr'",
        id="bad-provider",
    ),
    pytest.param(
        push("candidate: x\ntag: -bad"),
        "c.yml:6:10: step 'p': invalid tag '-bad': a tag is 1-128 letters, digits, '_', '.' or '-' and cannot start with '.' or '-'",
        id="bad-tag",
    ),
    pytest.param(
        HEAD + "  a.b:\n    type: push\n    candidate: x\n",
        "c.yml:3:3: step name 'a.b' contains '.'; step names may not contain any of . # $ [ ]",
        id="illegal-step-name",
    ),
    pytest.param(
        HEAD
        + "  a:\n    type: push\n    candidate: x\n  par:\n    type: parallel\n    steps:\n      a:\n        type: push\n        candidate: y\n",
        "c.yml:9:7: step name 'a' is used twice (first at c.yml:3:3); step names must be unique across the pipeline, parallel children included",
        id="duplicate-step-name-in-parallel",
    ),
    pytest.param(
        HEAD + "  d:\n    type: deploy\n    kind: kubernetes\n",
        "c.yml:4:5: step 'd' has type 'deploy', which freshflow does not run yet (it runs build, push and parallel); remove it, or pass --skip-unsupported to run without it",
        id="unsupported-type",
    ),
    pytest.param(
        HEAD + "  s:\n    type: slack-notifier:0.0.8\n",
        "c.yml:4:5: step 's' has type 'slack-notifier:0.0.8', a marketplace or unknown step type that freshflow cannot run; remove it, or pass --skip-unsupported to run without it",
        id="marketplace-type",
    ),
    pytest.param(
        HEAD + "  - p:\n      type: push\n",
        "c.yml:3:3: `steps` of the pipeline must be a mapping, not a list; write each step as `name:` followed by its fields",
        id="list-where-map-belongs",
    ),
    pytest.param(
        "version: '1.0'\n",
        "c.yml:1:1: the pipeline needs `steps`: a mapping of step names to steps",
        id="no-steps",
    ),
    pytest.param(
        "",
        "c.yml:1:1: the file is empty; a pipeline needs `version` and `steps`",
        id="empty-file",
    ),
    pytest.param(
        "version: '1.0'\nsteps:\n  p: {type: push, candidate: [x\n",
        "c.yml:4:1: invalid YAML: expected ',' or ']', but got '<stream end>'; check the quoting and indentation",
        id="malformed-yaml",
    ),
    pytest.param(
        "version: '1.0'\nsteps:\n\tp:\n",
        "c.yml:3:1: a tab is used for indentation; YAML allows only spaces, replace the tabs with spaces",
        id="tabs",
    ),
    pytest.param(
        push("candidate: x\nwhen:\n  condition:\n    all:\n      c: \"'a' === 'a'\""),
        None,  # message text comes from the expression checker; location is checked
        id="triple-equals",
    ),
    pytest.param(
        push("candidate: x\nretry:\n  maxAttempts: 0"),
        "c.yml:7:20: `retry.maxAttempts` of push step 'p' must be at least 1, not '0'",
        id="retry-zero",
    ),
    pytest.param(
        push("candidate: ${{other}}\n")
        + "  other:\n    type: push\n    candidate: y\n",
        "c.yml:5:16: candidate of step 'p' refers to step 'other', which is a push step; a candidate must name a build step or an image",
        id="candidate-not-a-build",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_invalid_pipeline_reports_message_and_location(
    text: str, expected: str | None
) -> None:
    found = problems(text)
    if expected is None:
        assert any(
            p.startswith("c.yml:9:14: condition 'c' of step 'p':") and "==" in p
            for p in found
        ), found
    else:
        assert expected in found, found


def test_no_registry_and_no_default_is_an_error() -> None:
    found = problems(push("candidate: x"), Catalog())
    assert found == [
        "c.yml:3:3: push step 'p' has no `registry` and there is no default integration (integrations: none); set `registry`, or mark one default with `freshflow registry add ... --default`"
    ]


def test_stage_missing_from_stages_is_a_warning() -> None:
    text = "version: '1.0'\nstages: [a]\nsteps:\n  p:\n    type: push\n    candidate: x\n    stage: push\n"
    assert problems(text) == [
        "c.yml:7:5: warning: stage 'push' of step 'p' is not in `stages` (a); it is shown after the listed stages"
    ]


def test_every_problem_is_reported_at_once() -> None:
    text = push("candidate: x\ntagz: a\nprovider: gcr\nfail_fast: maybe")
    assert len(problems(text)) == 3


def test_unquoted_variables_in_flow_lists_load() -> None:
    text = push("candidate: x\ntags: [ latest, ${{CF_BRANCH}} ]")
    pipeline, _ = load_pipeline_text(text)
    assert pipeline.steps["p"].tags == ["latest", "${{CF_BRANCH}}"]  # type: ignore[union-attr]


def test_legacy_spellings_and_arguments_are_lifted() -> None:
    text = HEAD + (
        "  b:\n    type: build\n    image-name: app\n    fail-fast: false\n"
        "  p:\n    type: push\n    arguments:\n      candidate: ${{b}}\n      tag: v1\n"
    )
    pipeline, _ = load_pipeline_text(text)
    assert pipeline.steps["b"].image_name == "app"  # type: ignore[union-attr]
    assert pipeline.steps["b"].fail_fast is False  # type: ignore[union-attr]
    assert pipeline.steps["p"].tag == "v1"  # type: ignore[union-attr]


def test_yaml_anchors_and_merge_keys() -> None:
    text = (
        "version: '1.0'\nindicators:\n  - base: &base\n      type: push\n      candidate: x\n"
        "steps:\n  p:\n    <<: *base\n    tag: v1\n"
    )
    pipeline, _ = load_pipeline_text(text)
    assert pipeline.steps["p"].candidate == "x"  # type: ignore[union-attr]
