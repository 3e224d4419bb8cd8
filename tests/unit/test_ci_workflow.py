"""The shipped GitHub Actions workflow (.github/) and the CI roles the bootstrap stack makes for it."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stacks.naming import Naming

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
SETUP_ACTION = ROOT / ".github" / "actions" / "setup" / "action.yml"
AWS_ENVIRONMENTS = ("dev", "staging", "prod")


def load(path: Path) -> dict:
    document = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the bare key `on` as True.
    if True in document:
        document["on"] = document.pop(True)
    return document


@pytest.fixture(scope="module")
def main() -> dict:
    return load(WORKFLOWS / "mlops.yml")


@pytest.fixture(scope="module")
def deploy() -> dict:
    return load(WORKFLOWS / "mlops-deploy.yml")


def test_the_workflows_and_the_action_match_githubs_schemas():
    checker = str(Path(sys.executable).with_name("check-jsonschema"))
    for schema, files in (("vendor.github-workflows", sorted(WORKFLOWS.glob("*.yml"))),
                          ("vendor.github-actions", [SETUP_ACTION])):
        proc = subprocess.run([checker, "--builtin-schema", schema, *map(str, files)],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_pull_requests_run_the_readme_test_command_then_plan_every_aws_environment(main):
    assert set(main["on"]) == {"pull_request", "push"}
    assert main["on"]["push"]["branches"] == ["main"]
    checks = main["jobs"]["checks"]
    assert "make test" in [s.get("run") for s in checks["steps"]]
    for documented in (ROOT / "README.md", ROOT / ".ci" / "run"):
        assert "make test" in documented.read_text()
    plan = main["jobs"]["plan"]
    assert plan["needs"] == "checks" and "pull_request" in plan["if"]
    assert plan["strategy"]["matrix"]["environment"] == list(AWS_ENVIRONMENTS)
    runs = [s.get("run", "") for s in plan["steps"]]
    assert any('mlops plan "$MLOPS_ENV"' in r for r in runs)
    assume = next(s for s in plan["steps"] if str(s.get("uses", "")).startswith("aws-actions/"))
    assert "plan_role_arn" in assume["with"]["role-to-assume"]


def test_main_deploys_dev_then_staging_then_prod_each_in_its_github_environment(main, deploy):
    jobs = main["jobs"]
    chain = [("deploy-dev", "checks"), ("deploy-staging", "deploy-dev"), ("deploy-prod", "deploy-staging")]
    for (job, needs), env in zip(chain, AWS_ENVIRONMENTS, strict=True):
        assert jobs[job]["needs"] == needs
        assert jobs[job]["uses"] == "./.github/workflows/mlops-deploy.yml"
        assert jobs[job]["with"] == {"environment": env}
    assert "refs/heads/main" in jobs["deploy-dev"]["if"]
    assert set(deploy["on"]) == {"workflow_call"}
    (job,) = deploy["jobs"].values()
    # The job's GitHub environment is the one the deploy role's trust names (below).
    assert job["environment"] == "${{ inputs.environment }}"
    runs = " ".join(s.get("run", "") for s in job["steps"])
    assert 'mlops image build --env "$MLOPS_ENV"' in runs
    assert 'mlops deploy "$MLOPS_ENV" --push-images' in runs
    assume = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("aws-actions/"))
    assert "deploy_role_arn" in assume["with"]["role-to-assume"]


def test_no_stored_keys_least_permissions_and_no_expression_in_a_script(main, deploy):
    text = "".join(p.read_text() for p in [*WORKFLOWS.glob("*.yml"), SETUP_ACTION])
    assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text
    assert "secrets." not in text
    assert main["permissions"] == deploy["permissions"] == {"contents": "read"}
    for document in (main, deploy):
        for name, job in document["jobs"].items():
            wants_token = name == "plan" or name.startswith("deploy")
            assert job.get("permissions", {}).get("id-token") == ("write" if wants_token else None), name
    # `${{ }}` inside a script is injection-prone: scripts read values from env only.
    scripts = [s.get("run", "") for d in (main, deploy) for j in d["jobs"].values()
               for s in j.get("steps", [])]
    scripts += [s.get("run", "") for s in load(SETUP_ACTION)["runs"]["steps"]]
    assert scripts and not [s for s in scripts if "${{" in s]


def test_the_setup_pins_the_terraform_and_provider_the_project_uses():
    from mlops.terraform import PROVIDER_VERSION

    text = SETUP_ACTION.read_text()
    assert f'version = "{PROVIDER_VERSION}"' in text and f"aws/{PROVIDER_VERSION}/linux_amd64" in text
    version = subprocess.run(["terraform", "version", "-json"], capture_output=True, text=True,
                             timeout=60, check=True)
    local = json.loads(version.stdout)["terraform_version"]
    pinned = re.search(r'terraform_version: "([0-9.]+)"', text).group(1)
    assert pinned.split(".")[:2] == local.split(".")[:2], (pinned, local)


def _statements(policy: str) -> list[dict]:
    return json.loads(policy)["Statement"]


def _inline_policies(stack: dict) -> dict[str, list[dict]]:
    return {p["name"]: _statements(p["policy"]) for p in stack["resource"]["aws_iam_role_policy"].values()}


def test_the_bootstrap_makes_the_oidc_provider_and_ci_roles_trusted_only_as_the_workflow_runs(
        synth_all, environments):
    for env_name in AWS_ENVIRONMENTS:
        env = environments[env_name]
        stack = synth_all.json(f"bootstrap-{env_name}")
        (provider,) = stack["resource"]["aws_iam_openid_connect_provider"].values()
        assert provider["url"] == "https://token.actions.githubusercontent.com"
        assert provider["client_id_list"] == ["sts.amazonaws.com"]
        roles = {r["name"]: r for r in stack["resource"]["aws_iam_role"].values()}
        naming = Naming.of(env)
        repo = env.ci.github_repository
        subjects = {"plan": f"repo:{repo}:pull_request", "deploy": f"repo:{repo}:environment:{env_name}"}
        for kind, subject in subjects.items():
            role = roles[naming.ci_role_name(kind)]
            assert role["path"] == "/ci/"
            arn = f"arn:aws:iam::{env.account_id}:role{role['path']}{role['name']}"
            assert arn == naming.ci_role_arn(kind)
            (trust,) = _statements(role["assume_role_policy"])
            assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
            assert trust["Condition"] == {"StringEquals": {
                "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
                "token.actions.githubusercontent.com:sub": subject}}
        # `mlops ci roles` tells the workflow the same ARNs.
        out = subprocess.run([str(Path(sys.executable).with_name("mlops")), "ci", "roles", "--env", env_name,
                              "--json"], capture_output=True, text=True, timeout=120, check=True)
        told = json.loads(out.stdout)
        assert (told["plan_role_arn"], told["deploy_role_arn"]) == (
            naming.ci_role_arn("plan"), naming.ci_role_arn("deploy"))


def test_the_deploy_role_cannot_reach_its_own_role_and_every_role_it_makes_carries_the_boundary(
        synth_all, environments):
    env = environments["prod"]
    naming = Naming.of(env)
    stack = synth_all.json("bootstrap-prod")
    policies = _inline_policies(stack)
    deploy = {s["Sid"]: s for s in policies[f"{naming.ci_role_name('deploy')}-permissions"]}
    managed = deploy["ManageEnvironmentRoles"]["Resource"]
    for kind in ("plan", "deploy"):
        assert not fnmatch.fnmatch(naming.ci_role_arn(kind), managed)
    boundary = deploy["RolesCarryTheBoundary"]
    assert boundary["Effect"] == "Deny"
    assert boundary["Condition"] == {"StringNotEquals": {"iam:PermissionsBoundary": naming.boundary_arn}}
    # Creating or changing a role's policies needs the boundary on it: no unbounded admin role.
    assert {"iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy"} <= set(boundary["Action"])
    # Nor can it lift the cap for every role at once, or hop into a role it made.
    admin_only = deploy["BoundaryChangesAreAnAdministrators"]
    assert (admin_only["Effect"], admin_only["Resource"]) == ("Deny", naming.boundary_arn)
    assert "iam:CreatePolicyVersion" in admin_only["Action"]
    assert deploy["AssumesNoRole"]["Effect"] == "Deny"
    eks_only = deploy["EksRolesGetOnlyEksPolicies"]["Condition"]["ArnNotEquals"]["iam:PolicyARN"]
    assert "arn:aws:iam::aws:policy/AdministratorAccess" not in eks_only
    # And no role under the boundary reaches the CI roles.
    (boundary_policy,) = [p for p in synth_all.json("platform-prod")["resource"]["aws_iam_policy"].values()
                          if p["name"] == naming.name("permissions-boundary")]
    denies = {st["Sid"]: st for st in _statements(boundary_policy["policy"])}
    assert denies["DenyCiRoles"]["Resource"] == f"arn:aws:iam::{env.account_id}:role/ci/*"
    assert denies["DenyCiRoles"]["Effect"] == "Deny"
    platform = synth_all.json("platform-prod")
    (policy,) = [p for p in platform["resource"]["aws_iam_policy"].values()
                 if p["name"] == naming.name("permissions-boundary")]
    assert f"arn:aws:iam::{env.account_id}:policy{policy['path']}{policy['name']}" == naming.boundary_arn
    # The EKS roles, which carry no boundary, are the only exception, by name.
    platform_roles = {f"arn:aws:iam::{env.account_id}:role{r['path']}{r['name']}": r
                      for r in synth_all.json("platform-dev")["resource"]["aws_iam_role"].values()}
    unbounded = [arn for arn, role in platform_roles.items() if not role.get("permissions_boundary")]
    assert len(unbounded) == 2, unbounded  # dev turns EKS on
    for arn in unbounded:
        assert arn.replace(environments["dev"].account_id, env.account_id).replace(
            "mlops-dev", "mlops-prod") in boundary["NotResource"], arn


def test_the_plan_role_reads_configuration_not_data(synth_all, environments):
    naming = Naming.of(environments["staging"])
    stack = synth_all.json("bootstrap-staging")
    policies = _inline_policies(stack)
    plan = {s["Sid"]: s for s in policies[f"{naming.ci_role_name('plan')}-permissions"]}
    writes = [s for s in plan.values() if s["Effect"] == "Allow" and "s3:PutObject" in s["Action"]]
    assert [s["Resource"] for s in writes] == [
        "arn:aws:s3:::mlops-tfstate-222222222222-eu-west-1/mlops/staging/*.tflock"]
    assert "secretsmanager:GetSecretValue" in plan["NoDataReads"]["Action"]
    assert plan["NoDataReads"]["Effect"] == "Deny"
    assert plan["NoDecryptButState"]["Effect"] == "Deny"
    attached = {a["policy_arn"] for a in stack["resource"]["aws_iam_role_policy_attachment"].values()}
    assert attached == {"arn:aws:iam::aws:policy/ReadOnlyAccess", "arn:aws:iam::aws:policy/PowerUserAccess"}
