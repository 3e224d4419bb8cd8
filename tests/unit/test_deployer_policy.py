"""The deployer policy (`mlops deployer-policy --env ENV`): derived from the synthesized stacks."""

from __future__ import annotations

import json

import pytest

from mlops.aws_calls import known_actions
from stacks.deployer_policy import (
    DATA_SOURCE_ACTIONS,
    IMAGE_PUSH,
    MANAGED_POLICY_CHARACTERS,
    PROVIDER_READS,
    RESOURCE_ACTIONS,
    attached_policies,
    deployer_statements,
    managed_policies,
    types_of,
)
from stacks.policy import listed, matches

ENVS = ("local", "dev", "staging", "prod")
# IAM actions that are no API operation (botocore cannot confirm them); S3's IAM names differ
# from its operations' throughout (GetBucketEncryption is s3:GetEncryptionConfiguration).
NOT_OPERATIONS = {"iam:PassRole", "budgets:ModifyBudget", "budgets:ViewBudget"}


def deployed_stacks(synth_all, env: str) -> list[dict]:
    return [synth_all.json(name) for name in synth_all.stacks
            if name.endswith(f"-{env}") and not name.startswith("bootstrap-")]


def test_the_map_covers_every_type_of_every_synthesized_stack(synth_all):
    resources, data = types_of(synth_all.json(name) for name in synth_all.stacks)
    assert not set(resources) - set(RESOURCE_ACTIONS), "add them to stacks/deployer_policy.py"
    assert not set(data) - set(DATA_SOURCE_ACTIONS), "add them to stacks/deployer_policy.py"
    stale = set(RESOURCE_ACTIONS) - set(resources)
    assert not stale, f"types no stack has any more: {stale}"


def test_every_action_the_map_names_exists():
    actions = {a for needs in [*RESOURCE_ACTIONS.values(), *DATA_SOURCE_ACTIONS.values()]
               for need in needs for a in need.actions} | set(PROVIDER_READS) | set(IMAGE_PUSH)
    unknown = sorted(a for a in actions if not a.startswith("s3:") and a not in NOT_OPERATIONS
                     and not known_actions(a))
    assert not unknown, unknown


@pytest.mark.parametrize("env", ENVS)
def test_the_deployer_policy_of_an_environment(synth_all, environments, env):
    resources, data = types_of(deployed_stacks(synth_all, env))
    statements = deployer_statements(environments[env], resources, data)
    prefix = environments[env].prefix
    for st in statements:
        actions = listed(st["Action"])
        assert not any(a == "*" or a.endswith(":*") for a in actions), st["Sid"]
        resources_of = listed(st.get("Resource") or st.get("NotResource"))
        # (KMS keys, EC2 networking, Studio domains, code-signing configs and signing jobs have
        # ARNs of ids, not names.)
        unnamed = st["Sid"].endswith(("Keys", "Ec2", "Studio", "CodeSigningConfigs", "SigningJobs"))
        if st["Effect"] == "Allow" and resources_of != ["*"] and not unnamed:
            # Scoped to the environment's names where the ARN carries one.
            # (A Signer profile's name has no hyphen: the prefix's are underscores there.)
            assert all(prefix in r or prefix.replace("-", "_") in r or ":aws:policy/" in r
                       or "oidc-provider" in r or "aws-service-role" in r
                       or "key/*" in r or "state" in st["Sid"].lower() for r in resources_of), st
    policies = managed_policies(statements)
    assert all(len(p) <= MANAGED_POLICY_CHARACTERS for p in policies)
    assert sorted(s["Sid"] for p in policies for s in json.loads(p)["Statement"]) == \
        sorted(s["Sid"] for s in statements)
    if env != "local":
        assert {"ListState", "ReadWriteStateAndLock", "UseStateKey"} <= {s["Sid"] for s in statements}
    # Actions without resource-level permissions match only "*" (EC2's Describe*).
    for st in statements:
        if any(a.startswith("ec2:Describe") for a in listed(st["Action"])):
            assert listed(st["Resource"]) == ["*"], st["Sid"]
    # Terraform's uploads into the SSE-KMS buckets need a data key.
    assert any("kms:GenerateDataKey" in listed(st["Action"]) for st in statements)


def test_the_deployer_keeps_the_ci_deploy_roles_guards(synth_all, environments):
    """Whoever deploys by hand is held to what the CI deploy role is: every role it makes carries
    the boundary, the boundary is an administrator's, no role is assumed."""
    boot = synth_all.json("bootstrap-dev")["resource"]
    (ci,) = [json.loads(p["policy"])["Statement"] for p in boot["aws_iam_role_policy"].values()
             if p["name"].endswith("deploy-permissions")]
    stacks = deployed_stacks(synth_all, "dev")
    ours = {s["Sid"]: s for s in deployer_statements(environments["dev"], *types_of(stacks),
                                                     attached_policies(stacks))}

    def comparable(value):  # lists in any order
        if isinstance(value, dict):
            return {k: comparable(v) for k, v in value.items()}
        return sorted(value) if isinstance(value, list) else value

    for st in ci:
        if st["Effect"] == "Deny":
            assert st["Sid"] in ours and comparable(ours[st["Sid"]]) == comparable(st), st["Sid"]
    # And it may do what the deploy needs of IAM, on the environment's role path only.
    create = [s for s in ours.values() if s["Effect"] == "Allow"
              and any(matches(a, "iam:CreateRole") for a in listed(s["Action"]))]
    assert create and all(r.endswith(f"role/{environments['dev'].prefix}/*") or "/mlops-dev/" in r
                          for s in create for r in listed(s["Resource"]))


# The ARN of a synthesized resource, from its name: where IAM scopes the deployer by name.
ARNS = {
    "aws_s3_bucket": lambda r, n: f"arn:aws:s3:::{r['bucket']}",
    "aws_sqs_queue": lambda r, n: n.arn("sqs", r["name"]),
    "aws_sns_topic": lambda r, n: n.arn("sns", r["name"]),
    "aws_dynamodb_table": lambda r, n: n.arn("dynamodb", f"table/{r['name']}"),
    "aws_ecr_repository": lambda r, n: n.arn("ecr", f"repository/{r['name']}"),
    "aws_secretsmanager_secret": lambda r, n: n.arn("secretsmanager", f"secret:{r['name']}-AbCdEf"),
    "aws_sagemaker_endpoint": lambda r, n: n.sagemaker_arn("endpoint", r["name"]),
    "aws_sagemaker_model": lambda r, n: n.sagemaker_arn("model", r["name"]),
    "aws_sagemaker_endpoint_configuration": lambda r, n: n.sagemaker_arn("endpoint-config", r["name"]),
    "aws_sagemaker_pipeline": lambda r, n: n.sagemaker_arn("pipeline", r["pipeline_name"]),
    "aws_sagemaker_model_package_group": lambda r, n: n.sagemaker_arn("model-package-group",
                                                                      r["model_package_group_name"]),
    "aws_sagemaker_mlflow_tracking_server": lambda r, n: n.sagemaker_arn("mlflow-tracking-server",
                                                                         r["tracking_server_name"]),
    # A domain's id is SageMaker's (d- and 12 characters): any will do.
    "aws_sagemaker_domain": lambda r, n: n.sagemaker_arn("domain", "d-0a1b2c3d4e5f"),
    "aws_sagemaker_user_profile": lambda r, n: n.sagemaker_arn("user-profile",
                                                               f"d-0a1b2c3d4e5f/{r['user_profile_name']}"),
    "aws_cloudwatch_event_rule": lambda r, n: n.arn("events", f"rule/{r['name']}"),
    "aws_cloudwatch_dashboard": lambda r, n: n.arn("cloudwatch", f"dashboard/{r['dashboard_name']}",
                                                   region=False),
    "aws_cloudwatch_metric_alarm": lambda r, n: n.arn("cloudwatch", f"alarm:{r['alarm_name']}"),
    "aws_cloudwatch_log_group": lambda r, n: n.arn("logs", f"log-group:{r['name']}"),
    "aws_lambda_function": lambda r, n: n.arn("lambda", f"function:{r['function_name']}"),
    "aws_lambda_layer_version": lambda r, n: n.arn("lambda", f"layer:{r['layer_name']}"),
    "aws_cloudtrail": lambda r, n: n.arn("cloudtrail", f"trail/{r['name']}"),
    "aws_budgets_budget": lambda r, n: f"arn:aws:budgets::{n.account_id}:budget/{r['name']}",
    "aws_eks_cluster": lambda r, n: n.arn("eks", f"cluster/{r['name']}"),
    "aws_iam_role": lambda r, n: f"arn:aws:iam::{n.account_id}:role{r['path']}{r['name']}",
    "aws_iam_policy": lambda r, n: f"arn:aws:iam::{n.account_id}:policy{r['path']}{r['name']}",
    "aws_kms_alias": lambda r, n: n.arn("kms", r["name"]),
    "aws_signer_signing_profile": lambda r, n: n.arn("signer", f"/signing-profiles/{r['name']}"),
}


@pytest.mark.parametrize("env", ENVS)
def test_the_deployer_may_act_on_each_named_resource_of_its_environment(synth_all, environments, env):
    from stacks.naming import Naming

    stacks = deployed_stacks(synth_all, env)
    naming = Naming.of(environments[env])
    statements = deployer_statements(environments[env], *types_of(stacks))
    allows = [s for s in statements if s["Effect"] == "Allow"]
    missing = []
    for doc in stacks:
        for rtype, resources in doc["resource"].items():
            if rtype not in ARNS:
                continue
            for resource in resources.values():
                arn = ARNS[rtype](resource, naming)
                for need in RESOURCE_ACTIONS[rtype]:
                    # (Nor on a service-linked role: the account's, made once, not the resource's.)
                    if need.scope in ("anything", "notebooks_role"):
                        continue
                    for action in need.actions:
                        if not any(any(matches(a, action) for a in listed(s["Action"]))
                                   and any(matches(p, arn) for p in listed(s["Resource"])) for s in allows):
                            missing.append(f"{action} on {arn}")
    assert not missing, "\n".join(missing[:20])


def _synthesized(synth_all, env: str):
    from stacks.stack_info import StackInfo

    def kind(name: str) -> str:
        return name.split("-", 1)[0]

    return [StackInfo(name, env, kind(name), path) for name, path in synth_all.stacks.items()
            if name.endswith(f"-{env}")]


def test_the_command_prints_the_documents_of_the_environments_synthesized_stacks(
        synth_all, monkeypatch, capsys):
    from mlops import cli
    from mlops.project import Project

    monkeypatch.setattr(cli, "synthesize", lambda project, envs: _synthesized(synth_all, "dev"))
    args = cli.build_parser().parse_args(["deployer-policy", "--env", "dev", "--json"])
    assert cli.dispatch(args, Project.discover()) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["environment"] == "dev" and out["stacks"] == ["platform-dev", "project-demo-dev"]
    # (dev serves the demo on EKS too: its project stack finds the cluster by name)
    assert "aws_sagemaker_endpoint" in out["resource_types"]
    assert out["data_sources"] == ["aws_eks_cluster", "aws_kms_alias", "aws_signer_signing_profile"]
    sizes = [len(json.dumps(p, separators=(",", ":"))) for p in out["policies"]]
    assert sizes and max(sizes) <= MANAGED_POLICY_CHARACTERS


def test_a_type_the_map_lacks_fails_the_command(synth_all, monkeypatch, capsys):
    from mlops import cli
    from mlops.project import Project
    from stacks import deployer_policy

    monkeypatch.delitem(deployer_policy.RESOURCE_ACTIONS, "aws_sqs_queue")
    monkeypatch.setattr(cli, "synthesize", lambda project, envs: _synthesized(synth_all, "dev"))
    args = cli.build_parser().parse_args(["deployer-policy", "--env", "dev"])
    assert cli.dispatch(args, Project.discover()) == 1
    assert "no actions for aws_sqs_queue" in capsys.readouterr().err
