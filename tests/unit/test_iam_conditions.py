"""local_aws/iam_conditions.py: a statement's Condition evaluated as IAM does (the IAM User Guide's
"Condition operators", "Condition" and "Multivalued context keys" pages). The first four tests are
the review's findings against moto's evaluation (which the local AWS used before): each failed
there and holds here."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from local_aws.iam_conditions import ConditionError, arn_like, condition_holds, context_of, string_like
from stacks import moto_gaps

NAMESPACE = {"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}}


def holds(condition, **values) -> bool:
    return condition_holds(condition, context_of({k.replace("__", ":"): v for k, v in values.items()}))


# --- the review's findings ------------------------------------------------------------------------
def test_a_string_like_condition_that_does_not_match_is_false():
    """Finding 1: moto skipped StringLike (every unknown operator held), so a Deny scoped by it
    denied every request; its condition is false for another namespace, so the Deny does not apply."""
    assert not holds(NAMESPACE, cloudwatch__namespace="MLOps/Drift")
    assert holds(NAMESPACE, cloudwatch__namespace="/aws/sagemaker/TrainingJobs")


def test_each_key_of_a_block_is_checked_against_its_own_values():
    """Finding 2: moto paired the request's values with the policy's by position, counting only
    the keys the request had, so the second key's value was compared with the first key's."""
    condition = {
        "StringEquals": {"aws:PrincipalAccount": "123456789012", "cloudwatch:namespace": "MLOps/Drift"}
    }
    assert holds(condition, aws__PrincipalAccount="123456789012", cloudwatch__namespace="MLOps/Drift")
    # Only the second key in the request: moto compared "MLOps/Drift" with "123456789012".
    assert not holds(condition, cloudwatch__namespace="MLOps/Drift")
    assert not holds(condition, aws__PrincipalAccount="123456789012", cloudwatch__namespace="MLOps/Other")


def test_a_condition_on_a_key_the_request_lacks_is_false():
    """Finding 3: moto skipped a key the request lacked, so the condition held."""
    assert not holds({"StringEquals": {"aws:SourceArn": "arn:aws:cloudtrail:us-east-1:1:trail/t"}})
    assert not holds({"Bool": {"aws:MultiFactorAuthPresent": "true"}})
    assert not holds({"Bool": {"aws:SecureTransport": "false"}})  # a TLS-only Deny does not apply
    # ... but a negated operator, IfExists and Null hold without the key.
    assert holds({"StringNotEquals": {"iam:PermissionsBoundary": "arn:aws:iam::1:policy/b"}})
    assert holds({"StringNotLike": {"s3:prefix": "private/*"}})
    assert holds({"ArnNotLike": {"aws:SourceArn": "arn:aws:s3:::b"}})
    assert holds({"StringEqualsIfExists": {"aws:SourceArn": "arn:aws:s3:::b"}})
    assert holds({"Null": {"aws:TokenIssueTime": "true"}})
    assert not holds({"Null": {"aws:TokenIssueTime": "false"}})


def test_string_like_knows_only_star_and_question_mark():
    """Finding 4: moto's fnmatch read `[...]` as a character class; in IAM it is literal."""
    assert string_like("logs[1]/*", "logs[1]/a")
    assert not string_like("logs[1]/*", "logs1/a")
    assert not string_like("[a-z]", "b")
    assert string_like("a/*", "a/b/c")  # `*` crosses `/`
    assert string_like("a?c", "abc") and not string_like("a?c", "ac")
    assert not string_like("ABC*", "abc")  # case-sensitive
    assert string_like("a.b", "a.b") and not string_like("a.b", "axb")


# --- operators -------------------------------------------------------------------------------------
def test_string_operators():
    assert holds({"StringEquals": {"k:k": "A"}}, k__k="A")
    assert not holds({"StringEquals": {"k:k": "A"}}, k__k="a")
    assert holds({"StringEqualsIgnoreCase": {"k:k": "A"}}, k__k="a")
    assert holds({"StringNotEquals": {"k:k": ["A", "B"]}}, k__k="C")
    assert not holds({"StringNotEquals": {"k:k": ["A", "B"]}}, k__k="B")
    assert not holds({"StringNotEqualsIgnoreCase": {"k:k": "A"}}, k__k="a")
    assert holds({"StringNotLike": {"k:k": "x*"}}, k__k="yx")
    assert not holds({"StringNotLike": {"k:k": ["y*", "x*"]}}, k__k="yx")


def test_arn_operators_match_the_six_parts_one_by_one():
    arn = "arn:aws:sagemaker:us-east-1:123456789012:endpoint/mlops-local-demo"
    assert arn_like("arn:aws:sagemaker:*:123456789012:endpoint/mlops-local-*", arn)
    assert arn_like("arn:aws:sagemaker:us-east-?:*:*", arn)
    # A `*` of one part does not reach into the next.
    assert not arn_like("arn:aws:*:123456789012:endpoint/mlops-local-demo", arn)
    assert not arn_like("arn:aws:sagemaker:us-east-1:123456789012:endpoint/other", arn)
    assert arn_like(
        "arn:aws:logs:us-east-1:1:log-group:/x:*", "arn:aws:logs:us-east-1:1:log-group:/x:log-stream:s"
    )
    assert not arn_like("arn:aws:s3:::b", "not-an-arn")
    assert holds(
        {"ArnEquals": {"aws:SourceArn": "arn:aws:s3:::mlops-*"}}, aws__SourceArn="arn:aws:s3:::mlops-x"
    )
    assert holds(
        {"ArnLike": {"aws:SourceArn": "arn:aws:s3:::mlops-*"}}, aws__SourceArn="arn:aws:s3:::mlops-x"
    )
    assert holds(
        {"ArnNotEquals": {"iam:PolicyARN": ["arn:aws:iam::aws:policy/A"]}},
        iam__PolicyARN="arn:aws:iam::aws:policy/B",
    )
    assert not holds(
        {"ArnNotLike": {"aws:SourceArn": "arn:aws:s3:::mlops-*"}}, aws__SourceArn="arn:aws:s3:::mlops-x"
    )


def test_bool_numeric_date_ip_and_binary():
    assert holds({"Bool": {"aws:SecureTransport": "false"}}, aws__SecureTransport="false")
    assert holds({"Bool": {"aws:SecureTransport": True}}, aws__SecureTransport="TRUE")
    assert not holds({"Bool": {"aws:SecureTransport": "true"}}, aws__SecureTransport="false")
    context = context_of({"s3:max-keys": "10"})
    for operator, expected in (
        ("NumericEquals", True),
        ("NumericLessThan", False),
        ("NumericLessThanEquals", True),
        ("NumericGreaterThan", False),
        ("NumericGreaterThanEquals", True),
        ("NumericNotEquals", False),
    ):
        assert condition_holds({operator: {"s3:max-keys": "10"}}, context) is expected, operator
    assert not condition_holds({"NumericEquals": {"s3:max-keys": "10"}}, context_of({"s3:max-keys": "ten"}))
    now = {"aws:CurrentTime": "2026-12-06T10:00:00Z"}
    assert condition_holds({"DateLessThan": {"aws:CurrentTime": "2026-12-31T23:59:59Z"}}, context_of(now))
    assert not condition_holds(
        {"DateGreaterThan": {"aws:CurrentTime": "2026-12-31T00:00:00Z"}}, context_of(now)
    )
    assert condition_holds({"DateGreaterThanEquals": {"aws:CurrentTime": "1796551200"}}, context_of(now))
    assert holds({"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}, aws__SourceIp="127.0.0.1")
    assert holds({"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, aws__SourceIp="127.0.0.1")
    assert holds({"BinaryEquals": {"k:b": "aGk="}}, k__b="aGk=")


def test_if_exists_checks_a_present_key():
    assert holds({"StringLikeIfExists": {"k:k": "a*"}}, k__k="ab")
    assert not holds({"StringLikeIfExists": {"k:k": "a*"}}, k__k="b")
    assert holds({"StringLikeIfExists": {"k:k": "a*"}})
    assert holds({"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}})


def test_set_operators_over_multivalued_keys():
    allowed = {"ForAllValues:StringEquals": {"aws:TagKeys": ["studiouserid", "team"]}}
    assert holds(allowed, aws__TagKeys=["studiouserid"])
    assert holds(allowed, aws__TagKeys=["studiouserid", "team"])
    assert not holds(allowed, aws__TagKeys=["studiouserid", "owner"])
    assert holds(allowed)  # ForAllValues holds without the key, as AWS warns
    assert holds(allowed, aws__TagKeys=[])
    any_of = {"ForAnyValue:StringLike": {"aws:TagKeys": "cost-*"}}
    assert holds(any_of, aws__TagKeys=["owner", "cost-center"])
    assert not holds(any_of, aws__TagKeys=["owner"])
    assert not holds(any_of)
    assert holds({"ForAllValues:StringNotLike": {"aws:TagKeys": "aws:*"}}, aws__TagKeys=["a", "b"])
    assert not holds({"ForAllValues:StringNotLike": {"aws:TagKeys": "aws:*"}}, aws__TagKeys=["a", "aws:x"])
    assert holds({"ForAnyValue:StringEqualsIfExists": {"aws:TagKeys": "a"}})


def test_values_of_a_key_are_or_ed_keys_and_operators_and_ed():
    assert holds(
        {"StringEquals": {"cloudwatch:namespace": ["MLOps/Drift", "MLOps/ModelQuality"]}},
        cloudwatch__namespace="MLOps/ModelQuality",
    )
    both = {"StringEquals": {"aws:SourceAccount": "1"}, "ArnLike": {"aws:SourceArn": "arn:aws:s3:::m-*"}}
    assert holds(both, aws__SourceAccount="1", aws__SourceArn="arn:aws:s3:::m-x")
    assert not holds(both, aws__SourceAccount="2", aws__SourceArn="arn:aws:s3:::m-x")
    assert not holds(both, aws__SourceAccount="1", aws__SourceArn="arn:aws:s3:::n-x")
    assert not holds(both, aws__SourceAccount="1")


def test_key_names_are_case_insensitive_values_are_not():
    assert holds({"StringEquals": {"AWS:SOURCEACCOUNT": "1"}}, aws__sourceaccount="1")
    assert holds({"Null": {"Aws:TokenIssueTime": "false"}}, aws__TokenIssueTime="t")
    assert not holds({"StringEquals": {"k:k": "Value"}}, K__K="value")


def test_policy_variables_take_the_request_values():
    mine = {"StringEquals": {"sagemaker:ResourceTag/studiouserid": "${aws:PrincipalTag/studiouserid}"}}
    assert holds(
        mine, **{"aws__PrincipalTag/studiouserid": "ds-1", "sagemaker__ResourceTag/studiouserid": "ds-1"}
    )
    assert not holds(
        mine, **{"aws__PrincipalTag/studiouserid": "ds-1", "sagemaker__ResourceTag/studiouserid": "ds-2"}
    )
    # No value and no default: the statement is invalid, so it does not apply (even negated).
    assert not holds(mine, **{"sagemaker__ResourceTag/studiouserid": "ds-1"})
    assert not holds({"StringNotEquals": {"k:k": "${aws:username}"}}, k__k="x")
    assert holds({"StringEquals": {"k:k": "${aws:username, 'nobody'}"}}, k__k="nobody")
    # A variable's value is literal in a pattern; ${*} is a literal star.
    assert holds(
        {"StringLike": {"s3:prefix": "home/${aws:username}/*"}}, s3__prefix="home/a*b/x", aws__username="a*b"
    )
    assert not holds(
        {"StringLike": {"s3:prefix": "home/${aws:username}/*"}}, s3__prefix="home/ab/x", aws__username="a*b"
    )
    assert holds({"StringLike": {"k:k": "a${*}"}}, k__k="a*") and not holds(
        {"StringLike": {"k:k": "a${*}"}}, k__k="ab"
    )


def test_a_condition_aws_would_refuse_raises_instead_of_holding():
    for condition in (
        {"StringEqualz": {"k:k": "a"}},
        {"NullIfExists": {"k:k": "true"}},
        {"ForSomeValues:StringEquals": {"k:k": "a"}},
    ):
        with pytest.raises(ConditionError, match="unknown condition operator"):
            holds(condition, k__k="a")
    # Even after an operator that is false already.
    with pytest.raises(ConditionError):
        holds({"StringEquals": {"k:k": "b"}, "Stringequals": {"k:k": "a"}}, k__k="a")
    with pytest.raises(ConditionError):
        holds({"Bool": {"k:k": "yes"}}, k__k="true")
    with pytest.raises(ConditionError):
        holds({"NumericLessThan": {"k:k": "ten"}}, k__k="1")
    assert holds(None) and holds({})


# --- the wildcard matcher against a reference translation -------------------------------------------
def reference(pattern: str) -> re.Pattern[str]:
    return re.compile(
        "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.DOTALL
    )


ALPHABET = st.sampled_from(list("ab/*?[]-.:\\$^"))


@given(st.text(ALPHABET, max_size=8), st.text(ALPHABET, max_size=10))
def test_string_like_agrees_with_a_reference_regex(pattern, value):
    assert string_like(pattern, value) is (reference(pattern).fullmatch(value) is not None)


# --- what `mlops rbac check --env local` exercises ------------------------------------------------
PERSONA_POLICIES = ("data_scientist_role", "ml_engineer_role", "platform_admin_role", "auditor_role")
# The keys local_aws/iam_enforcement.py puts in a person's request context (its docstring), by
# policy kind: a bucket policy is judged with aws:SecureTransport alone (local_aws/moto_server.py).
IDENTITY_KEYS = {
    "aws:securetransport",
    "aws:currenttime",
    "aws:epochtime",
    "aws:requestedregion",
    "aws:viaawsservice",
    "aws:principalarn",
    "aws:principalaccount",
    "aws:principaltype",
    "aws:userid",
    "aws:username",
    "aws:principaltag/*",
    "aws:requesttag/*",
    "aws:tagkeys",
    "cloudwatch:namespace",
    "sagemaker:modelapprovalstatus",
    "iam:permissionsboundary",
    "iam:policyarn",
    "s3:prefix",
    "s3:if-none-match",
    "s3:if-match",
    "s3:objectcreationoperation",
    "sts:externalid",
    "sts:sourceidentity",
    "aws:sourceidentity",
}
BUCKET_POLICY_KEYS = {"aws:securetransport"}


def _statements(document: str) -> list[dict]:
    statements = __import__("json").loads(document)["Statement"]
    return statements if isinstance(statements, list) else [statements]


def _concerns(statement: dict, action: str) -> bool:
    principal = statement.get("Principal")
    if isinstance(principal, dict) and set(principal) == {"Service"}:
        return False  # an AWS service's grant (log delivery, CloudTrail): never a person's call
    if "NotAction" in statement:
        return True  # conservatively: a NotAction may reach it
    actions = statement.get("Action")
    return any(
        string_like(a.lower(), action.lower()) for a in ([actions] if isinstance(actions, str) else actions)
    )


def _unknowable(statement: dict, known: set[str]) -> set[str]:
    keys = {key.lower() for block in (statement.get("Condition") or {}).values() for key in block}
    return {k for k in keys if not any(string_like(pattern, k) for pattern in known)}


def _for_another_account(statement: dict) -> bool:
    """A resource policy statement whose principals are all of accounts other than the local
    environment's (moto's default account, where the RBAC matrix's personas live)."""
    principal = statement.get("Principal")
    principals = principal.get("AWS") if isinstance(principal, dict) else None
    if not principals:
        return False
    principals = [principals] if isinstance(principals, str) else principals
    return all(p.startswith("arn:") and p.split(":")[4] != moto_gaps.DEFAULT_ACCOUNT for p in principals)


def test_the_rbac_checks_calls_meet_only_conditions_the_local_aws_can_judge(synth_all):
    """Every condition on a statement the RBAC matrix's calls reach (the personas' policies and
    trust policies, the buckets' policies) is on a key the local AWS fills: a key it cannot know
    would be absent, and `mlops rbac check` would deny (or, under a Deny, allow) what AWS does not."""
    from mlops.rbac import MATRIX

    actions = {action for _, action, _ in MATRIX} | {"sts:AssumeRole"}
    unknown = []
    for stack in ("platform-local", "project-demo-local"):
        resources = synth_all.json(stack)["resource"]
        documents = [
            (name, r["policy"], IDENTITY_KEYS)
            for name, r in resources.get("aws_iam_role_policy", {}).items()
            if name.startswith(PERSONA_POLICIES)
        ]
        documents += [
            (name, r["assume_role_policy"], IDENTITY_KEYS)
            for name, r in resources.get("aws_iam_role", {}).items()
            if name.startswith(PERSONA_POLICIES)
        ]
        documents += [
            (name, r["policy"], BUCKET_POLICY_KEYS)
            for name, r in resources.get("aws_s3_bucket_policy", {}).items()
        ]
        assert any(name.startswith(PERSONA_POLICIES) for name, _, _ in documents) or stack != "platform-local"
        for name, document, known in documents:
            for statement in _statements(document):
                if _for_another_account(statement):
                    continue  # a grant to another account (a promotion's) is no local persona's call
                if any(_concerns(statement, action) for action in actions) and _unknowable(statement, known):
                    unknown.append((stack, name, statement.get("Sid"), sorted(_unknowable(statement, known))))
    assert not unknown, unknown
