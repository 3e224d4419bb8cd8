"""Who may do what, proven by calls: `mlops local credentials PERSONA` and `mlops rbac check`.

`mlops local credentials PERSONA [--json]`: an access key of the persona's local IAM user (the
principal environments/local.yaml lets assume the persona's role; made once per local AWS, with
a policy that lets it assume that role and nothing else) and the role to assume:
`{"AccessKeyId", "SecretAccessKey", "RoleArn"}`.

`mlops rbac check --env local [--project P] [--json]`: each persona assumes its role with those
credentials and makes one real API call per row of MATRIX against the local AWS, which must
enforce IAM (`mlops local up --enforce-iam`); a call is `denied` when the service answers
AccessDenied, else `allowed` (authorized, whatever it then answered). The calls are probes with
no lasting effect: a write is removed (its version), a registration is made Rejected (a version
in the group's history, no review), an update names a config that does not exist, a pipeline
start an undefined parameter, an invocation a row the model refuses. Exit 0 when every persona got what
EXPECTED says (the README's RBAC table), 1 when any did not, 2 when the check cannot run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from mlops.aws_clients import source_identity
from mlops.project import Project
from stacks.config import Environment
from stacks.naming import Naming, ProjectNames

PERSONAS = ("data_scientist", "ml_engineer", "platform_admin", "auditor")
DENIED_CODES = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError"}
PROBE_PREFIX = "rbac-check"
PROBE_MARK = "mlops_rbac_probe"
OTHER_ACCOUNT_ROOT = "arn:aws:iam::210987654321:root"
NOBODY: frozenset[str] = frozenset()

# Row -> the personas allowed (outside prod; the README's "Who may do what").
EXPECTED: dict[str, frozenset[str]] = {
    "read datasets": frozenset({"data_scientist", "ml_engineer", "platform_admin"}),
    "write datasets": frozenset({"data_scientist", "platform_admin"}),
    "start the pipeline": frozenset({"data_scientist", "ml_engineer", "platform_admin"}),
    "register a package": frozenset({"ml_engineer"}),
    "approve a package": frozenset({"ml_engineer"}),
    "update the endpoint": frozenset({"ml_engineer"}),
    "invoke the endpoint": frozenset({"data_scientist", "ml_engineer", "platform_admin"}),
    "read the MLflow secret": frozenset({"platform_admin"}),
    "delete an audit object": NOBODY,
    "put a policy on a persona role": NOBODY,
    "stop the trail": NOBODY,
    "create a role trusted by another account": NOBODY,
}


class RbacError(RuntimeError):
    """The check cannot run (exit 2); the message says why."""


@dataclass(frozen=True)
class Target:
    """What the probes touch: one environment's resources and one project's."""

    naming: Naming
    names: ProjectNames
    probe_package_arn: str

    @property
    def audit_bucket(self) -> str:
        return self.naming.bucket("audit")


Clients = Callable[[str], Any]


def persona_credentials(server: Any, env: Environment, persona: str, cache_dir: Path) -> dict[str, str]:
    """The persona's local IAM user's access key (made once per local AWS, kept in cache_dir)
    and its role."""
    if persona not in PERSONAS:
        raise RbacError(f"unknown persona {persona!r}; one of {', '.join(PERSONAS)}")
    users = [p for p in getattr(env.personas, persona) if f":{env.account_id}:user/" in p]
    if not users:
        raise RbacError(f"environments/{env.name}.yaml: personas.{persona} names no IAM user of the "
                        f"account {env.account_id} to make an access key for")
    path, _, user = users[0].split(":user", 1)[1].rpartition("/")
    role_arn = Naming.of(env).persona_role_arn(persona)
    # One per environment: personas of two local environments are users of two accounts.
    cache = cache_dir / (f"{persona}.json" if env.name == "local" else f"{env.name}-{persona}.json")
    server_id = f"{server.pid}@{server.started_at}"
    with contextlib.suppress(OSError, ValueError, KeyError):
        cached = json.loads(cache.read_text())
        if cached["server"] == server_id:
            return {k: cached[k] for k in ("AccessKeyId", "SecretAccessKey", "RoleArn")}
    iam = server.account_client("iam", env.account_id)  # the persona's user is in its account
    with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
        iam.create_user(UserName=user, Path=f"{path}/")
    iam.put_user_policy(UserName=user, PolicyName="assume-persona-role", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        # With the person it stands for (production's persona roles require a source identity).
        "Statement": [{"Sid": "AssumePersonaRole", "Effect": "Allow",
                       "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"], "Resource": role_arn}]}))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    credentials = {"AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"],
                   "RoleArn": role_arn}
    cache.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(cache, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # a secret: the owner's only
    with os.fdopen(fd, "w") as out:
        json.dump({**credentials, "server": server_id}, out)
    return credentials


def _server(checkout: Project) -> Any:
    from mlops.deploy import Deployer

    return Deployer(checkout).local.require()


def _cache_dir(checkout: Project) -> Path:
    return checkout.local_dir / "personas"


def persona_clients(server: Any, credentials: dict[str, str], persona: str) -> Clients:
    """Clients calling as a session of the persona's role, assumed with its user's key."""
    user = {"AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"]}
    try:
        return server.session_client_factory(credentials["RoleArn"], f"rbac-check-{persona}",
                                             assumed_with=user, source_identity=source_identity())
    except ClientError as exc:
        raise RbacError(f"{persona}: cannot assume {credentials['RoleArn']}: {exc}") from None


# --- the probes: the persona's one call each; what it changed, the deployer (`admin`) undoes ----
Undo = Callable[[Callable[[Clients], Any]], None]
Probe = Callable[[Clients, Target, str, Undo], Any]


def _read_datasets(me: Clients, t: Target, persona: str, undo: Undo) -> Any:
    return me("s3").get_object(Bucket=t.names.datasets_bucket, Key=f"{PROBE_PREFIX}/probe.txt")


def _write_datasets(me: Clients, t: Target, persona: str, undo: Undo) -> Any:
    bucket, key = t.names.datasets_bucket, f"{PROBE_PREFIX}/{persona}.txt"
    answer = me("s3").put_object(Bucket=bucket, Key=key, Body=b"rbac check probe")
    version = answer.get("VersionId")  # the bucket is versioned: the version itself goes
    undo(lambda admin: admin("s3").delete_object(Bucket=bucket, Key=key,
                                                 **({"VersionId": version} if version else {})))
    return answer


def _start_pipeline(me: Clients, t: Target, persona: str, undo: Undo) -> Any:
    # An undefined parameter: SageMaker authorizes the call, then refuses it (no execution).
    return me("sagemaker").start_pipeline_execution(
        PipelineName=t.names.pipeline, PipelineParameters=[{"Name": "MlopsRbacCheckProbe", "Value": "x"}])


def _register(me: Clients, t: Target, persona: str, undo: Undo) -> Any:
    # Registered Rejected: no gate review, no deployment, only a version in the group's history.
    return me("sagemaker").create_model_package(
        ModelPackageGroupName=t.names.model_package_group, ModelApprovalStatus="Rejected",
        ModelPackageDescription="mlops rbac check: a probe, not a model",
        InferenceSpecification=_probe_inference(t), CustomerMetadataProperties={PROBE_MARK: persona})


def _approve(me: Clients, t: Target, persona: str, undo: Undo) -> Any:
    # The probe package stays Rejected: the call is the approver's, its effect none.
    return me("sagemaker").update_model_package(
        ModelPackageArn=t.probe_package_arn, ModelApprovalStatus="Rejected",
        ApprovalDescription=f"mlops rbac check: {persona} may decide on packages")


def _update_endpoint(me: Clients, t: Target, persona: str, undo: Undo) -> Any:
    return me("sagemaker").update_endpoint(EndpointName=t.names.endpoint,
                                           EndpointConfigName=f"{t.names.endpoint}-rbac-check-none")


def _invoke(me: Clients, t: Target, persona: str, undo: Undo) -> Any:
    # Not a row of the model's schema: the container answers 4xx, which data capture skips.
    return me("sagemaker-runtime").invoke_endpoint(EndpointName=t.names.endpoint, ContentType="text/csv",
                                                   Body=b"rbac check probe")


def _read_secret(me: Clients, t: Target, persona: str, undo: Undo) -> Any:
    return me("secretsmanager").get_secret_value(SecretId=f"{t.naming.prefix}/mlflow/database")


def _delete_audit_object(me: Clients, t: Target, persona: str, undo: Undo) -> Any:
    return me("s3").delete_object(Bucket=t.audit_bucket, Key=f"{PROBE_PREFIX}/probe")


def _put_role_policy(me: Clients, t: Target, persona: str, undo: Undo) -> Any:
    role = t.naming.persona_role_name("data_scientist")
    document = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::rbac-check-probe/*"}]}
    answer = me("iam").put_role_policy(RoleName=role, PolicyName="rbac-check-probe",
                                       PolicyDocument=json.dumps(document))
    undo(lambda admin: admin("iam").delete_role_policy(RoleName=role, PolicyName="rbac-check-probe"))
    return answer


def _stop_trail(me: Clients, t: Target, persona: str, undo: Undo) -> Any:
    trail = t.naming.name("audit")
    answer = me("cloudtrail").stop_logging(Name=trail)
    undo(lambda admin: admin("cloudtrail").start_logging(Name=trail))
    return answer


def _create_trusted_role(me: Clients, t: Target, persona: str, undo: Undo) -> Any:
    name = t.naming.name(f"rbac-check-{persona.replace('_', '-')}")
    answer = me("iam").create_role(
        RoleName=name, Path=t.naming.role_path, PermissionsBoundary=t.naming.boundary_arn,
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": OTHER_ACCOUNT_ROOT}}]}))
    undo(lambda admin: admin("iam").delete_role(RoleName=name))
    return answer


MATRIX: tuple[tuple[str, str, Probe], ...] = (
    ("read datasets", "s3:GetObject", _read_datasets),
    ("write datasets", "s3:PutObject", _write_datasets),
    ("start the pipeline", "sagemaker:StartPipelineExecution", _start_pipeline),
    ("register a package", "sagemaker:CreateModelPackage", _register),
    ("approve a package", "sagemaker:UpdateModelPackage", _approve),
    ("update the endpoint", "sagemaker:UpdateEndpoint", _update_endpoint),
    ("invoke the endpoint", "sagemaker:InvokeEndpoint", _invoke),
    ("read the MLflow secret", "secretsmanager:GetSecretValue", _read_secret),
    ("delete an audit object", "s3:DeleteObject", _delete_audit_object),
    ("put a policy on a persona role", "iam:PutRolePolicy", _put_role_policy),
    ("stop the trail", "cloudtrail:StopLogging", _stop_trail),
    ("create a role trusted by another account", "iam:CreateRole", _create_trusted_role),
)
assert {row for row, _, _ in MATRIX} == set(EXPECTED)


def _probe_inference(t: Target) -> dict[str, Any]:
    return {"Containers": [{"Image": f"{t.names.repository_url('inference')}:rbac-check",
                            "ModelDataUrl": f"s3://{t.names.artifacts_bucket}/{PROBE_PREFIX}/model.tar.gz"}],
            "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]}


def _setup(admin: Clients, naming: Naming, names: ProjectNames) -> Target:
    """The deployer's part: the object to read, the package to decide on (reused across runs)."""
    admin("s3").put_object(Bucket=names.datasets_bucket, Key=f"{PROBE_PREFIX}/probe.txt", Body=b"probe")
    sagemaker = admin("sagemaker")
    target = Target(naming, names, "")
    for page in sagemaker.get_paginator("list_model_packages").paginate(
            ModelPackageGroupName=names.model_package_group, ModelApprovalStatus="Rejected"):
        for summary in page["ModelPackageSummaryList"]:
            described = sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
            if (described.get("CustomerMetadataProperties") or {}).get(PROBE_MARK) == "deployer":
                return Target(naming, names, summary["ModelPackageArn"])
    arn = sagemaker.create_model_package(
        ModelPackageGroupName=names.model_package_group, ModelApprovalStatus="Rejected",
        ModelPackageDescription="mlops rbac check: a probe, not a model",
        InferenceSpecification=_probe_inference(target), CustomerMetadataProperties={PROBE_MARK: "deployer"},
    )["ModelPackageArn"]
    return Target(naming, names, arn)


def outcome(probe: Probe, me: Clients, admin: Clients, target: Target, persona: str) -> tuple[str, str]:
    """("allowed" | "denied", what the service answered the persona's call); whatever the call
    changed is undone by the deployer, and an undo that fails is an error, never an outcome."""
    undos: list[Callable[[Clients], Any]] = []
    try:
        probe(me, target, persona, undos.append)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        return ("denied" if code in DENIED_CODES else "allowed"), code
    finally:
        for undo in undos:
            try:
                undo(admin)
            except ClientError as exc:
                raise RbacError(f"{persona}: could not undo what the probe changed: {exc}") from exc
    return "allowed", "ok"


def run_check(server: Any, env: Environment, project: str, cache_dir: Path,
              report: Callable[[str], None] = lambda line: None) -> list[dict[str, Any]]:
    """One row per persona and probe: {"persona", "check", "action", "expected", "got", "answer", "ok"}."""
    if not server.iam_enforced():
        raise RbacError("the local AWS does not enforce IAM, so every call would be allowed: run "
                        "`mlops local up --enforce-iam` first")
    naming = Naming.of(env)
    admin = server.client
    target = _setup(admin, naming, ProjectNames(naming, project))
    rows = []
    for persona in PERSONAS:
        me = persona_clients(server, persona_credentials(server, env, persona, cache_dir), persona)
        for check, action, probe in MATRIX:
            got, answer = outcome(probe, me, admin, target, persona)
            expected = "allowed" if persona in EXPECTED[check] else "denied"
            rows.append({"persona": persona, "check": check, "action": action, "expected": expected,
                         "got": got, "answer": answer, "ok": got == expected})
        matched = sum(r["ok"] for r in rows if r["persona"] == persona)
        report(f"{persona}: {matched}/{len(MATRIX)} as expected")
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """Checks down, personas across: `allowed`/`denied`, `!` where it is not what is expected."""
    cells = {(r["check"], r["persona"]): r["got"] + ("" if r["ok"] else f" (expected {r['expected']})")
             for r in rows}
    width = max(len(check) for check, _, _ in MATRIX)
    lines = [f"{'':{width}}  " + "  ".join(f"{p:<26}" for p in PERSONAS)]
    for check, _, _ in MATRIX:
        lines.append(f"{check:{width}}  " + "  ".join(f"{cells.get((check, p), '-'):<26}" for p in PERSONAS))
    return "\n".join(line.rstrip() for line in lines)


def expected_markdown() -> str:
    """The README's table of what `mlops rbac check` expects (tests keep the two the same)."""
    lines = ["| call | action | " + " | ".join(p.replace("_", " ") for p in PERSONAS) + " |",
             "| --- | --- |" + " --- |" * len(PERSONAS)]
    for check, action, _ in MATRIX:
        cells = ["allowed" if p in EXPECTED[check] else "denied" for p in PERSONAS]
        lines.append(f"| {check} | `{action}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --- the commands ------------------------------------------------------------------------------
def add_credentials_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("persona", choices=PERSONAS)
    parser.add_argument("--env", default="local",
                        help="a local environment whose persona it is (default: local)")
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")


def run_credentials_command(args: argparse.Namespace, checkout: Project) -> int:
    env = checkout.environment(args.env)
    if not env.is_local:
        print(f"error: --env {args.env}: only a local environment's personas have access keys the "
              "local AWS hands out", file=sys.stderr)
        return 2
    try:
        credentials = persona_credentials(_server(checkout), env, args.persona, _cache_dir(checkout))
    except RbacError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(credentials, indent=2))
    else:
        print(f"export AWS_ACCESS_KEY_ID={credentials['AccessKeyId']}\n"
              f"export AWS_SECRET_ACCESS_KEY={credentials['SecretAccessKey']}\n"
              f"# then: aws sts assume-role --role-arn {credentials['RoleArn']} --role-session-name me "
              f"--source-identity {source_identity()}")
    return 0


def add_rbac_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", required=True, help="the environment (a local one only: `local`)")
    parser.add_argument("--project", help="the project whose pipeline, group and endpoint are probed "
                        "(default: the environment's first)")
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")


def run_rbac_command(args: argparse.Namespace, checkout: Project) -> int:
    env = checkout.environment(args.env)
    if not env.is_local:
        print(f"error: --env {args.env}: the check makes every persona's calls with an access key of "
              "its own, which only the local AWS hands out; run it with a local environment "
              "(local: true)", file=sys.stderr)
        return 2
    projects = sorted(name for name, envs in checkout.projects().items() if env.name in envs)
    project = args.project or (projects[0] if projects else None)
    if project not in projects:
        print(f"error: --project {project}: not a project of {env.name} ({', '.join(projects) or 'none'})",
              file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        rows = run_check(_server(checkout), env, project, _cache_dir(checkout),
                         report=lambda line: print(line, file=sys.stderr))
    except RbacError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failed = [r for r in rows if not r["ok"]]
    if args.json:
        print(json.dumps({"env": env.name, "project": project, "enforced": True, "rows": rows,
                          "failed": len(failed), "seconds": round(time.monotonic() - started, 1)}, indent=2))
    else:
        print(table(rows))
    for row in failed:
        print(f"error: {row['persona']}: {row['check']} ({row['action']}): {row['got']}, expected "
              f"{row['expected']} ({row['answer']})", file=sys.stderr)
    return 1 if failed else 0
