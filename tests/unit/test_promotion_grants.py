"""Promotion across accounts: who promotes from whom, both sides of each grant, and nothing else.

The pure part (stacks/promotion_grants.py) from environments built here, a local pair among them;
the synthesized part from the session's synth of every environment (prod promotes from staging):
S's resource policies grant exactly T's ML engineer exactly the promote command's reads, T's ML
engineer has the matching identity statements and boundary, every request of the production
duties (stacks/permission_table.py) is allowed to exactly the personas the table names, and
environments without a promotion relationship carry no cross-account statement at all.
"""

from __future__ import annotations

import json
import re

import pytest

from mlops.aws_calls import known_actions
from stacks import moto_gaps, personas
from stacks.config import Environment, Promotion
from stacks.naming import Naming
from stacks.permission_table import PRODUCTION_DUTIES
from stacks.policy import listed, matches
from stacks.promotion_grants import TARGET_KEY, PromotionPair, Promotions, Request
from tests.security.iam_documents import KEY_ID, identity_policies

PROJECTS = {"demo": {"local", "localprod", "dev", "staging", "prod"}}
# What crosses from staging to prod: statement -> (actions, resources) of S's resource policies.
STAGING = "222222222222"
PROD_PROMOTER = "arn:aws:iam::333333333333:role/mlops-prod/mlops-prod-ml-engineer"
SOURCE_GRANTS = {
    "PromoteToProdReadModels": (["s3:GetObject", "s3:GetObjectVersion"],
                                ["arn:aws:s3:::mlops-staging-artifacts-222222222222/demo/runs/*/model/*",
                                 "arn:aws:s3:::mlops-staging-artifacts-222222222222/demo/runs/*/evaluation/*",
                                 "arn:aws:s3:::mlops-staging-artifacts-222222222222/demo/shadow/*/report.json"]),
    "PromoteToProdListShadowReports": (["s3:ListBucket"],
                                       ["arn:aws:s3:::mlops-staging-artifacts-222222222222"]),
    "PromoteToProdDecryptModels": (["kms:Decrypt"], ["*"]),
    "PromoteToProdDescribeImages": (["ecr:DescribeImages"], []),
    "PromoteToProdDescribeGroup": (
        ["sagemaker:DescribeModelPackageGroup", "sagemaker:ListModelPackages"],
        ["arn:aws:sagemaker:eu-west-1:222222222222:model-package-group/mlops-staging-demo"]),
    "PromoteToProdReadPackages": (
        ["sagemaker:DescribeModelPackage", "sagemaker:ListModelPackages"],
        ["arn:aws:sagemaker:eu-west-1:222222222222:model-package/mlops-staging-demo/*"]),
}
POLICY_FIELDS = ("policy", "resource_policy")
# IAM actions that are no botocore operation: GetObject of a given version (`VersionId`).
IAM_ONLY = {"s3:GetObjectVersion"}


def local_pair(environments) -> tuple[Environment, Environment]:
    """environments/localprod.yaml's shape: a production environment on the local AWS."""
    local = environments["local"]
    localprod = local.model_copy(update={
        "name": "localprod", "account_id": "111122223333", "prefix": "mlops-localprod",
        "production": True, "promotion": Promotion(source="local")})
    return local, localprod


# The pure part.

def test_the_shipped_environments_have_two_pairs(environments):
    promotions = Promotions.of(environments, PROJECTS)
    assert sorted((p.source.name, p.target.name, p.projects) for p in promotions.pairs) == [
        ("local", "localprod", ("demo",)), ("staging", "prod", ("demo",))]
    assert [p.target.name for p in promotions.targets_of("staging")] == ["prod"]
    assert [p.target.name for p in promotions.targets_of("local")] == ["localprod"]
    assert promotions.source_of("prod").source.name == "staging"
    for name in ("dev", "prod", "localprod"):
        assert not promotions.targets_of(name)
        assert not promotions.bucket_statements(name) and not promotions.key_statements(name)
        assert not promotions.repository_statements(name)
        assert not promotions.group_statements(name, "demo")
    for name in ("local", "dev", "staging"):
        assert promotions.source_of(name) is None
        assert not promotions.promoter_statements(name) and not promotions.boundary_statements(name)


def test_a_target_without_its_source_is_refused(environments):
    with pytest.raises(ValueError, match=r"prod: promotion\.source 'staging' is not among"):
        Promotions.of({"prod": environments["prod"]}, PROJECTS)


def test_projects_not_in_both_environments_grant_nothing(environments):
    promotions = Promotions.of(environments, {"demo": {"staging"}, "other": {"prod"}})
    assert promotions.pairs[0].projects == ()
    assert not promotions.targets_of("staging") and promotions.source_of("prod") is None
    assert not promotions.bucket_statements("staging") and not promotions.promoter_statements("prod")


def test_a_local_pair_is_granted_as_in_aws(environments):
    local, localprod = local_pair(environments)
    promotions = Promotions.of({"local": local, "localprod": localprod}, {"demo": {"local", "localprod"}})
    (pair,) = promotions.pairs
    assert pair.promoter_arn == "arn:aws:iam::111122223333:role/mlops-localprod/mlops-localprod-ml-engineer"
    for st in [*promotions.bucket_statements("local"), *promotions.key_statements("local"),
               *promotions.repository_statements("local"), *promotions.group_statements("local", "demo")]:
        assert st["Principal"] == {"AWS": "arn:aws:iam::111122223333:root"}
        assert st["Condition"]["ArnEquals"] == {"aws:PrincipalArn": pair.promoter_arn}
        assert st["Sid"].startswith("PromoteToLocalprod")
    models, listing = promotions.bucket_statements("local")
    assert models["Resource"] == ["arn:aws:s3:::mlops-local-artifacts-123456789012/demo/runs/*/model/*",
                                  "arn:aws:s3:::mlops-local-artifacts-123456789012/demo/runs/*/evaluation/*",
                                  "arn:aws:s3:::mlops-local-artifacts-123456789012/demo/shadow/*/report.json"]
    assert listing["Condition"]["StringLike"] == {"s3:prefix": ["demo/shadow/*"]}
    sids = [s["Sid"] for s in promotions.promoter_statements("localprod")]
    assert sids == ["ReadSourceModelPackages", "ReadSourceModels", "ListSourceShadowReports",
                    "DecryptSourceModels", "FindInferenceImages"]
    # moto has no model package group policies: the local source's groups skip theirs, nothing else.
    assert not moto_gaps.LOCAL.model_package_group_policy and moto_gaps.AWS.model_package_group_policy


def test_every_action_granted_is_a_real_one(environments):
    local, localprod = local_pair(environments)
    for envs, source, target in (({"staging": environments["staging"], "prod": environments["prod"]},
                                  "staging", "prod"),
                                 ({"local": local, "localprod": localprod}, "local", "localprod")):
        promotions = Promotions.of(envs, PROJECTS | {"demo": set(envs)})
        statements = [*promotions.bucket_statements(source), *promotions.key_statements(source),
                      *promotions.repository_statements(source), *promotions.group_statements(source, "demo"),
                      *promotions.promoter_statements(target), *promotions.boundary_statements(target)]
        assert len(statements) == 14
        for st in statements:
            assert re.fullmatch(r"[A-Za-z0-9]+", st["Sid"]), st["Sid"]  # IAM's Sid alphabet
            assert st["Effect"] == "Allow"
            for action in listed(st["Action"]):
                assert action in IAM_ONLY or known_actions(action) == {action}, action
            for resource in listed(st.get("Resource")):
                assert resource == "*" or resource.startswith("arn:aws:"), resource


# The synthesized part.

def _ref(value: str) -> tuple[str, str]:
    kind, name, _attribute = value.removeprefix("${").removesuffix("}").split(".")
    return kind, name


def resource_statements(doc: dict) -> list[tuple[str, str, dict]]:
    """(resource type, the name of what the policy is on, statement) of every resource policy of a
    stack's resources (`doc`)."""
    out = []
    for rtype, bodies in doc.items():
        for body in bodies.values():
            for field in POLICY_FIELDS:
                text = body.get(field)
                if not (isinstance(text, str) and text.startswith("{")):
                    continue
                on = body.get("repository") or body.get("model_package_group_name") or ""
                if on.startswith("${"):
                    kind, name = _ref(on)
                    target = doc[kind][name]
                    on = target.get("name") or target.get("model_package_group_name")
                out += [(rtype, on, st) for st in json.loads(text).get("Statement", []) if "Principal" in st]
    return out


def foreign_allows(synth_all, env: Environment) -> list[tuple[str, str, dict]]:
    """Allow statements of the environment's resource policies naming another account's principal."""
    own = f"arn:aws:iam::{env.account_id}:"
    out = []
    for stack in synth_all.stacks:
        if stack.rsplit("-", 1)[1] != env.name:
            continue
        for rtype, on, st in resource_statements(synth_all.json(stack)["resource"]):
            aws = listed(st["Principal"].get("AWS")) if isinstance(st["Principal"], dict) else ["*"]
            if st["Effect"] == "Allow" and any(not p.startswith(own) for p in aws):
                out.append((rtype, on, st))
    return out


def test_the_source_grants_exactly_the_targets_promoter_exactly_its_reads(synth_all, environments):
    found = foreign_allows(synth_all, environments["staging"])
    assert {st["Sid"] for _, _, st in found} == set(SOURCE_GRANTS)
    where = {st["Sid"]: (rtype, on) for rtype, on, st in found}
    assert where["PromoteToProdReadModels"][0] == "aws_s3_bucket_policy"
    assert where["PromoteToProdDecryptModels"][0] == "aws_kms_key"
    assert where["PromoteToProdDescribeImages"] == ("aws_ecr_repository_policy", "mlops-staging-inference")
    assert where["PromoteToProdDescribeGroup"] == ("aws_sagemaker_model_package_group_policy",
                                                   "mlops-staging-demo")
    for _, _, st in found:
        actions, resources = SOURCE_GRANTS[st["Sid"]]
        assert listed(st["Action"]) == actions and listed(st.get("Resource")) == resources, st
        assert st["Principal"] == {"AWS": "arn:aws:iam::333333333333:root"}
        assert st["Condition"]["ArnEquals"] == {"aws:PrincipalArn": PROD_PROMOTER}
    (key,) = [st for _, _, st in found if st["Sid"] == "PromoteToProdDecryptModels"]
    assert key["Condition"]["StringEquals"] == {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}
    assert key["Condition"]["StringLike"]["kms:EncryptionContext:aws:s3:arn"][0] == \
        "arn:aws:s3:::mlops-staging-artifacts-222222222222"


@pytest.mark.parametrize("env", ["dev", "prod", "localprod"])
def test_environments_promoted_to_by_none_grant_no_other_account(synth_all, environments, env):
    assert not foreign_allows(synth_all, environments[env])


def _arn_account(resource: str) -> str | None:
    parts = resource.split(":")
    return parts[4] if resource.startswith("arn:") and len(parts) > 5 else None


def identity_documents(synth_all, env: str) -> dict[str, list[dict]]:
    """Policy name -> statements, references resolved, of the environment's platform stack."""
    stack = f"platform-{env}"
    return {doc.name: doc.document["Statement"]
            for doc in identity_policies({stack: synth_all.stacks[stack]})}


@pytest.mark.parametrize("env", ["local", "dev", "staging", "prod"])
def test_only_the_promoter_and_the_boundary_reach_another_account(synth_all, environments, env):
    own = environments[env].account_id
    reaching = {}
    for name, statements in identity_documents(synth_all, env).items():
        for st in statements:
            foreign = {a for r in listed(st.get("Resource")) if (a := _arn_account(r)) not in (None, "", own)}
            if foreign and st["Effect"] == "Allow":
                reaching.setdefault(name, set()).add((st["Sid"], *sorted(foreign)))
    if env != "prod":
        assert reaching == {}
        return
    assert reaching == {
        "mlops-prod-ml-engineer-permissions": {
            ("ReadSourceModelPackages", STAGING), ("DecryptSourceModels", STAGING),
            ("FindInferenceImages", STAGING)},
        "mlops-prod-permissions-boundary": {("AllowPromotionSourceKey", STAGING)},
    }


def _allowed(statements: list[dict], request: Request) -> bool:
    def applies(st: dict) -> bool:
        assert "NotAction" not in st and "NotResource" not in st, st
        return (any(matches(p, request.action) for p in listed(st["Action"]))
                and any(matches(p, request.resource) for p in listed(st.get("Resource", "*"))))
    allowed = any(st["Effect"] == "Allow" and applies(st) for st in statements)
    denied = any(st["Effect"] == "Deny" and "Condition" not in st and applies(st) for st in statements)
    return allowed and not denied


def _source_allows(found: list[tuple[str, str, dict]], pair: PromotionPair, request: Request,
                   principal_arn: str) -> bool:
    """S's resource policies, for a request of `principal_arn` (T's account) through S3 for keys."""
    context = {"aws:PrincipalArn": principal_arn, "kms:ViaService": f"s3.{pair.source.region}.amazonaws.com",
               "kms:EncryptionContext:aws:s3:arn": pair.source_bucket_arn}
    for _rtype, on, st in found:
        if not any(matches(p, request.action) for p in listed(st["Action"])):
            continue
        if "Resource" in st:
            if not any(matches(p, request.resource) for p in listed(st["Resource"])):
                continue
        elif not request.resource.endswith(f"repository/{on}"):  # an ECR policy is its repository's
            continue
        conditions_hold = all(
            any(matches(v, context[key]) for v in listed(values))
            for op, keys in st.get("Condition", {}).items() for key, values in keys.items()
            if op in ("ArnEquals", "StringEquals", "StringLike"))
        assert set(st.get("Condition", {})) <= {"ArnEquals", "StringEquals", "StringLike"}, st
        if conditions_hold:
            return True
    return False


@pytest.mark.parametrize("duty", PRODUCTION_DUTIES, ids=lambda d: d.requests)
def test_production_duties_are_exactly_the_named_personas(synth_all, environments, duty):
    promotions = Promotions.of(environments, PROJECTS)
    target = [e.name for e in environments.values() if e.production]
    assert sorted(target) == ["localprod", "prod"]  # prod's duties, judged in AWS's accounts
    pair = promotions.source_of("prod")
    docs = identity_documents(synth_all, "prod")
    boundary = docs["mlops-prod-permissions-boundary"]
    found = foreign_allows(synth_all, pair.source)
    key = f"arn:aws:kms:eu-west-1:333333333333:key/{KEY_ID}"
    requests = getattr(pair, f"{duty.requests}_requests")("demo")
    outcome = {}
    for persona in personas.PERSONAS:
        role = Naming.of(pair.target).persona_role_name(persona)
        role_arn = Naming.of(pair.target).persona_role_arn(persona)
        own = docs[f"{role}-permissions"]
        refused = []
        for request in requests:
            if request.resource == TARGET_KEY:
                request = Request(request.action, key)
            ok = _allowed(own, request) and _allowed(boundary, request)
            if request.in_source:
                ok = ok and _source_allows(found, pair, request, role_arn)
            if not ok:
                refused.append(request.action)
        outcome[persona] = refused
    allowed = {p for p, refused in outcome.items() if not refused}
    assert allowed == set(duty.personas), outcome


def test_the_promoter_is_refused_what_the_source_does_not_grant(synth_all, environments):
    """Identity statements alone do not reach S: another prod persona with the same identity
    statement would still be refused by S's policies (aws:PrincipalArn)."""
    pair = Promotions.of(environments, PROJECTS).source_of("prod")
    found = foreign_allows(synth_all, pair.source)
    scientist = Naming.of(pair.target).persona_role_arn("data_scientist")
    for request in pair.promote_requests("demo"):
        if request.in_source:
            assert _source_allows(found, pair, request, pair.promoter_arn), request
            assert not _source_allows(found, pair, request, scientist), request
    # Nor anything of S beyond the project's models and group.
    assert not _source_allows(found, pair, Request(
        "s3:GetObject", f"{pair.source_bucket_arn}/demo/pipeline/code.tar.gz", True), pair.promoter_arn)
    assert not _source_allows(found, pair, Request(
        "sagemaker:UpdateModelPackage", "arn:aws:sagemaker:eu-west-1:222222222222:model-package/"
        "mlops-staging-demo/1", True), pair.promoter_arn)


def test_the_targets_endpoints_read_promoted_archives(synth_all, environments):
    """The deploy handler's model runs as the project's execution role: it reads what the promoter
    wrote (`<project>/promoted/...` in T's artifacts bucket, under T's key)."""
    pair = Promotions.of(environments, PROJECTS).source_of("prod")
    stack = "project-demo-prod"
    (execution,) = [d.document["Statement"] for d in identity_policies({stack: synth_all.stacks[stack]})
                    if d.name == "mlops-prod-demo-execution-permissions"]
    (put,) = [r for r in pair.promote_requests("demo") if r.action == "s3:PutObject"]
    assert _allowed(execution, Request("s3:GetObject", put.resource))
    assert _allowed(execution, Request("kms:Decrypt", f"arn:aws:kms:eu-west-1:333333333333:key/{KEY_ID}"))


def test_a_local_pair_synthesizes_the_same_grants_but_the_group_policy(synth_all, environments, tmp_path):
    """environments/localprod.yaml's shape: the bucket, key and repository policies are applied on
    the local AWS as in AWS; the group policy, which moto lacks, is left out (stacks/moto_gaps.py)."""
    from stacks.app import synth  # the binding is loaded already (synth_all)
    from stacks.project_config import load_projects
    from tests.conftest import ROOT

    local, localprod = local_pair(environments)
    demo = load_projects(ROOT)["demo"]["local"]
    infos = synth({"local": local, "localprod": localprod}, tmp_path / "out", tmp_path / "state",
                  {"demo": {"local": demo, "localprod": demo}})
    docs = {i.name: json.loads((i.dir / "cdk.tf.json").read_text())["resource"] for i in infos}
    promoter = "arn:aws:iam::111122223333:role/mlops-localprod/mlops-localprod-ml-engineer"
    sids = {(rtype, st["Sid"]) for stack in ("platform-local", "project-demo-local")
            for rtype, _on, st in resource_statements(docs[stack])
            if st.get("Condition", {}).get("ArnEquals", {}).get("aws:PrincipalArn") == promoter}
    assert sids == {("aws_s3_bucket_policy", "PromoteToLocalprodReadModels"),
                    ("aws_s3_bucket_policy", "PromoteToLocalprodListShadowReports"),
                    ("aws_kms_key", "PromoteToLocalprodDecryptModels"),
                    ("aws_ecr_repository_policy", "PromoteToLocalprodDescribeImages")}
    assert "aws_sagemaker_model_package_group_policy" not in docs["project-demo-local"]
    role_policies = docs["platform-localprod"]["aws_iam_role_policy"].values()
    statements = [st["Sid"] for p in role_policies for st in json.loads(p["policy"])["Statement"]]
    assert {"ReadSourceModelPackages", "ReadSourceModels", "ListSourceShadowReports", "DecryptSourceModels",
            "FindInferenceImages"} <= set(statements)
