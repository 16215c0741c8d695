"""ECR fields of push and build steps: what `validate` says, and where.

Complements tests/flows/test_validation.py, which has the basic cases for an
ECR integration (bad role_arn, duration 899 and 3601, duration without
role_arn, region on a Docker integration).  The resolve tests at the end show
where a valid step pushes (pure: no AWS, no Prefect).
"""

from __future__ import annotations

import textwrap

import pytest

from flows.errors import PipelineFileError
from flows.integrations import Catalog, IntegrationInfo
from flows.loader import load_pipeline_text
from flows.model import PushStep
from flows.resolve import Destination, resolve_push
from flows.validation import check
from flows.variables import Scope

ECR_HOST = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
CATALOG = Catalog(
    (
        IntegrationInfo("local", "docker", "127.0.0.1:5000", default=True),
        IntegrationInfo("ecr", "ecr", ECR_HOST, region="us-east-1"),
        IntegrationInfo(
            "ecr-any",
            "ecr",
            "unknown-account.dkr.ecr.eu-west-1.amazonaws.com",
            prefix="team",
            region="eu-west-1",
        ),
    )
)
ROLE = "arn:aws:iam::123456789012:role/pusher"


def problems(text: str) -> list[str]:
    """Every problem of `text`, as `freshflow validate` prints them."""
    try:
        pipeline, source = load_pipeline_text(text, "c.yml")
    except PipelineFileError as exc:
        return [str(p) for p in exc.problems]
    return [str(p) for p in check(pipeline, source, CATALOG)]


def push(body: str) -> str:
    """A pipeline whose only step `p` is a push with `body` after `type`."""
    lines = textwrap.indent(textwrap.dedent(body).strip(), "    ")
    return f"version: '1.0'\nsteps:\n  p:\n    type: push\n{lines}\n"


def build(body: str) -> str:
    """A pipeline whose only step `b` is a build with `body` after `type`."""
    lines = textwrap.indent(textwrap.dedent(body).strip(), "    ")
    return f"version: '1.0'\nsteps:\n  b:\n    type: build\n{lines}\n"


NOT_A_ROLE = "is not an IAM role ARN; write arn:aws:iam::<12-digit account>:role/<name>"
NOT_ECR = "`region` is only for Amazon ECR registries (cross-region pushes are supported only for ECR); remove it or push to an ECR integration"
NO_ROLE = (
    "aws_duration_seconds only applies when assuming a role; add role_arn or remove it"
)

ERRORS = [
    pytest.param(
        push(
            f"candidate: x\nregistry: ecr\nrole_arn: {ROLE.replace(':role/', ':user/')}"
        ),
        f"c.yml:7:15: step 'p': role_arn 'arn:aws:iam::123456789012:user/pusher' {NOT_A_ROLE}",
        id="role-arn-names-a-user",
    ),
    pytest.param(
        push("candidate: x\nregistry: ecr\nrole_arn: arn:aws:sts::123456789012:role/r"),
        f"c.yml:7:15: step 'p': role_arn 'arn:aws:sts::123456789012:role/r' {NOT_A_ROLE}",
        id="role-arn-of-sts",
    ),
    pytest.param(
        push(
            "candidate: x\nregistry: ecr\nrole_arn: arn:aws:iam::1234567890123:role/r"
        ),
        f"c.yml:7:15: step 'p': role_arn 'arn:aws:iam::1234567890123:role/r' {NOT_A_ROLE}",
        id="role-arn-13-digit-account",
    ),
    pytest.param(
        push("candidate: x\nregistry: ecr\nrole_arn: pusher"),
        f"c.yml:7:15: step 'p': role_arn 'pusher' {NOT_A_ROLE}",
        id="role-arn-bare-name",
    ),
    pytest.param(
        push(
            "candidate: x\nprovider: ecr\nregion: us-east-1\nrole_arn: arn:aws:iam::42:role/r"
        ),
        f"c.yml:8:15: step 'p': role_arn 'arn:aws:iam::42:role/r' {NOT_A_ROLE}",
        id="inline-bad-role-arn",
    ),
    pytest.param(
        push(
            f"candidate: x\nprovider: ecr\nregion: us-east-1\nrole_arn: {ROLE}\naws_duration_seconds: 899"
        ),
        "c.yml:9:27: step 'p': aws_duration_seconds is 899; it must be between 900 and 3600",
        id="inline-duration-899",
    ),
    pytest.param(
        push(
            f"candidate: x\nregistry: {ECR_HOST}\nrole_arn: {ROLE}\naws_duration_seconds: 3601"
        ),
        "c.yml:8:27: step 'p': aws_duration_seconds is 3601; it must be between 900 and 3600",
        id="ecr-host-duration-3601",
    ),
    pytest.param(
        push(
            "candidate: x\nprovider: ecr\nregion: us-east-1\naws_duration_seconds: 900"
        ),
        f"c.yml:8:5: step 'p': {NO_ROLE}",
        id="inline-duration-without-role",
    ),
    pytest.param(
        build(
            f"image_name: app\nregistry: ecr\nrole_arn: {ROLE}\naws_duration_seconds: 899"
        ),
        "c.yml:8:27: step 'b': aws_duration_seconds is 899; it must be between 900 and 3600",
        id="build-duration-899",
    ),
    pytest.param(
        build("image_name: app\nregistry: ecr\naws_duration_seconds: 3600"),
        f"c.yml:7:5: step 'b': {NO_ROLE}",
        id="build-duration-without-role",
    ),
    pytest.param(
        push("candidate: x\nregion: us-west-2"),
        f"c.yml:6:5: step 'p': {NOT_ECR}",
        id="region-on-default-docker-integration",
    ),
    pytest.param(
        push("candidate: x\nregistry: 127.0.0.1:5000\nregion: us-west-2"),
        f"c.yml:7:5: step 'p': {NOT_ECR}",
        id="region-on-inline-docker-host",
    ),
    pytest.param(
        build("image_name: app\nregistry: local\nregion: us-west-2"),
        f"c.yml:7:5: step 'b': {NOT_ECR}",
        id="region-on-build-to-docker-integration",
    ),
    pytest.param(
        push("candidate: x\nregistry: ecr\nregion: us west 2"),
        "c.yml:7:13: step 'p': 'us west 2' is not an AWS region name like us-east-1",
        id="malformed-region",
    ),
    pytest.param(
        push("candidate: x\nprovider: ecr\naccessKeyId: AKID\nsecretAccessKey: s"),
        "c.yml:6:5: step 'p': `provider: ecr` needs `region`, or `registry: <account>.dkr.ecr.<region>.amazonaws.com`",
        id="inline-ecr-without-region",
    ),
    pytest.param(
        push("candidate: x\nregistry: 127.0.0.1:5000\naccessKeyId: AKID"),
        "c.yml:7:5: step 'p': accessKeyId/secretAccessKey are only used with `provider: ecr` or an ECR registry host; add one or remove the keys",
        id="aws-keys-for-docker-host",
    ),
]


@pytest.mark.parametrize(("text", "expected"), ERRORS)
def test_ecr_mistake_is_reported_at_its_place(text: str, expected: str) -> None:
    assert problems(text) == [expected]


VALID = [
    pytest.param(
        push(
            f"""
            candidate: x
            registry: ecr
            region: us-west-2
            role_arn: {ROLE}
            aws_session_name: ci
            aws_duration_seconds: 900
            """
        ),
        id="integration-with-every-field",
    ),
    pytest.param(
        push(
            """
            candidate: x
            provider: ecr
            accessKeyId: ${{AWS_ACCESS_KEY_ID}}
            secretAccessKey: ${{AWS_SECRET_ACCESS_KEY}}
            region: eu-west-1
            """
        ),
        id="inline-provider-ecr",
    ),
    pytest.param(
        # cf-yaml-validator's __tests__/test-yamls/yaml-with-registry-url.yml
        push(
            f"""
            image_name: "codefresh/test"
            registry: "{ECR_HOST.replace("us-east-1", "eu-west-1")}/test-api/web"
            candidate: "${{{{build}}}}"
            accessKeyId: "${{{{AWS_ACCESS_KEY_ID}}}}"
            secretAccessKey: "${{{{AWS_SECRET_ACCESS_KEY}}}}"
            region: "${{{{AWS_REGION}}}}"
            tags:
              - "${{{{CF_BRANCH_TAG_NORMALIZED}}}}"
              - "${{{{CF_REVISION}}}}"
            """
        ),
        id="validator-fixture-registry-url",
    ),
    pytest.param(
        push("candidate: x\nregistry: ${{REGISTRY}}\nregion: ${{REGION}}"),
        id="variable-registry-and-region",
    ),
    pytest.param(
        push(
            "candidate: x\nregistry: ecr\nrole_arn: ${{ROLE}}\naws_duration_seconds: 3600"
        ),
        id="variable-role-arn",
    ),
    pytest.param(
        push("candidate: x\nregistry: ecr-any\nregion: ap-southeast-4"),
        id="any-region-name-of-the-form",
    ),
]


@pytest.mark.parametrize("text", VALID)
def test_valid_ecr_step_has_no_problem(text: str) -> None:
    assert problems(text) == []


def test_credentials_are_ignored_for_an_ecr_host() -> None:
    text = push(
        f"candidate: x\nregistry: {ECR_HOST}\ncredentials:\n  username: u\n  password: p"
    )
    assert problems(text) == [
        "c.yml:7:5: warning: step 'p': `credentials` are ignored for Amazon ECR; use accessKeyId and secretAccessKey"
    ]


def test_session_name_without_role_is_a_warning() -> None:
    text = push("candidate: x\nregistry: ecr\naws_session_name: ci")
    assert problems(text) == [
        "c.yml:7:5: warning: step 'p': aws_session_name only applies when assuming a role; add role_arn or remove it"
    ]


def destination(body: str, variables: dict[str, str] | None = None) -> Destination:
    pipeline, _ = load_pipeline_text(push(body), "c.yml")
    step = pipeline.steps["p"]
    assert isinstance(step, PushStep)
    scope = Scope(dict(variables or {}))
    spec = resolve_push("p", step, scope, CATALOG, {})
    return spec.destination


RESOLVED = [
    pytest.param(
        "candidate: app:1\nregistry: ecr\nregion: us-west-2",
        Destination(
            "ecr",
            integration="ecr",
            host="123456789012.dkr.ecr.us-west-2.amazonaws.com",
            region="us-west-2",
        ),
        id="integration-cross-region",
    ),
    pytest.param(
        f"candidate: app:1\nregistry: ecr\nrole_arn: {ROLE}",
        Destination(
            "ecr", integration="ecr", host=ECR_HOST, region="us-east-1", role_arn=ROLE
        ),
        id="integration-role-defaults",
    ),
    pytest.param(
        "candidate: app:1\nregistry: ecr-any",
        Destination("ecr", integration="ecr-any", prefix="team", region="eu-west-1"),
        id="integration-account-from-the-login",
    ),
    pytest.param(
        f"candidate: app:1\nprovider: ecr\nregion: eu-west-1\nrole_arn: {ROLE}\naws_session_name: ci\naws_duration_seconds: 900",
        Destination(
            "ecr",
            region="eu-west-1",
            role_arn=ROLE,
            session_name="ci",
            duration_seconds=900,
            inline_credentials=True,
        ),
        id="inline-provider-ecr",
    ),
    pytest.param(
        f"candidate: app:1\nregistry: {ECR_HOST}/test-api/web\nregion: ${{{{R}}}}",
        Destination(
            "ecr",
            host="123456789012.dkr.ecr.eu-west-1.amazonaws.com",
            prefix="test-api/web",
            region="eu-west-1",
            inline_credentials=True,
        ),
        id="inline-host-with-prefix-to-another-region",
    ),
    pytest.param(
        f"candidate: app:1\nprovider: ecr\nregistry: {ECR_HOST}",
        Destination("ecr", host=ECR_HOST, region="us-east-1", inline_credentials=True),
        id="inline-region-from-the-host",
    ),
    pytest.param(
        "candidate: app:1\nprovider: ecr\nregistry: local\nregion: us-east-1",
        Destination("ecr", region="us-east-1", inline_credentials=True),
        id="provider-ecr-ignores-an-integration-name",
    ),
]


@pytest.mark.parametrize(("body", "expected"), RESOLVED)
def test_ecr_destination(body: str, expected: Destination) -> None:
    assert destination(body, {"R": "eu-west-1"}) == expected


def test_inline_prefix_is_part_of_the_repository() -> None:
    pipeline, _ = load_pipeline_text(
        push(f"candidate: app:1\nregistry: {ECR_HOST}/test-api/web\nimage_name: x"),
        "c.yml",
    )
    step = pipeline.steps["p"]
    assert isinstance(step, PushStep)
    spec = resolve_push("p", step, Scope(), CATALOG, {})
    assert spec.references() == [f"{ECR_HOST}/test-api/web/x:latest"]
