"""Where a model package came from and who approved it: the checks that keep an ungated model
off the endpoint, whoever managed to write into the registry.

DescribeModelPackage names the IAM identity that created a package (CreatedBy.IamIdentity.Arn)
and the one that last changed it (LastModifiedBy.IamIdentity.Arn: after an approval, the
approver). A session of a role is `arn:<partition>:sts::<account>:assumed-role/<role name>/<session>`;
its session name is the caller's choice, so one person may hold two sessions of one role. The
person is the session's STS source identity (IamIdentity.SourceIdentity): set when the role was
assumed, by the identity provider or the caller, kept through role chaining and never changed;
production's persona roles are assumed only with one (their trust policies require
sts:SourceIdentity).

A package may be served only if
1. it was created by a pipeline execution of the project: a session of the pipeline's role (the
   project's execution role, which the pipeline passes to its jobs and no persona may pass), with
   the execution named in its metadata (`pipeline_run_id`, where the gate finds its evaluation)
   and its model among that execution's outputs (`<runs>/<execution id>/`); or by the approver
   persona (a drill's copy of a served package: the approver may approve any
   package anyway);
2. it was approved by the gate (a session of its function's role) or by the approver persona,
   and an approver's own package by someone else (another approver's session, or the gate);
3. in a production environment: approved by the approver persona only, created and approved by
   two persons (both sessions carry a source identity, and they differ), and promoted from a
   package of the source environment's group (`promoted_from`, that package's ARN, kept for the
   audit). The group is named by its ARN: a group of the same name in another account (the
   production account's own, say) is not the source.
IAM is what stops anyone else (stacks/project_permissions.py, stacks/personas.py); these checks
refuse a deployment when that guard was bypassed or misconfigured, and say why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# partition, region, account, group name (and version).
PACKAGE_ARN = re.compile(r"^arn:(aws[a-z-]*):sagemaker:([a-z0-9-]+):(\d{12}):model-package/([^/]+)/(\d+)$")
GROUP_ARN = re.compile(r"^arn:(aws[a-z-]*):sagemaker:([a-z0-9-]+):(\d{12}):model-package-group/([^/]+)$")
ROLE_ARN = re.compile(r"^arn:(aws[a-z-]*):iam::(\d{12}):role/(?:.*/)?([^/]+)$")
# A pipeline execution id (the last part of its ARN): one path segment, never `..`.
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,127}$")


@dataclass(frozen=True)
class Trust:
    """Whose packages and approvals count, and where the pipeline's executions write."""

    pipeline: str  # creates packages (its jobs' sessions)
    gate: str  # approves them outside production
    approver: str  # the approver persona: approves anywhere, may create drill copies
    runs_uri: str  # s3://<artifacts>/<project>/runs/: each execution's outputs under its id

    def run_uri(self, run_id: str) -> str:
        """Where the execution wrote its outputs (pipelines/definition.py run_uri)."""
        if not RUN_ID.match(run_id):
            raise ValueError(f"{run_id!r} is not a pipeline execution id")
        return f"{self.runs_uri.rstrip('/')}/{run_id}/"

    def promoted_uri(self, source_group: str, version: str) -> str:
        """Where `mlops model promote` puts a promoted package's files: beside the runs,
        `<artifacts>/<project>/promoted/<source group>/<version>/`."""
        return f"{self.runs_uri.rstrip('/').rsplit('/', 1)[0]}/promoted/{source_group}/{version}/"

    def report_uri(self, run_id: str) -> str:
        """Where the execution's Evaluate step wrote its report."""
        return f"{self.run_uri(run_id)}evaluation/evaluation.json"


def is_session_of(identity_arn: str | None, role_arn: str) -> bool:
    """The identity is the role itself or one of its sessions (sts assumed-role ARN)."""
    role = ROLE_ARN.match(role_arn)
    if not role or not identity_arn:
        return False
    partition, account, name = role.groups()
    return identity_arn == role_arn or identity_arn.startswith(
        f"arn:{partition}:sts::{account}:assumed-role/{name}/"
    )


def identity(package: dict[str, Any], field: str) -> str | None:
    """`CreatedBy` or `LastModifiedBy`: the IAM identity's ARN, None when the package has none."""
    return ((package.get(field) or {}).get("IamIdentity") or {}).get("Arn")


def source_identity(package: dict[str, Any], field: str) -> str | None:
    """`CreatedBy` or `LastModifiedBy`: the person behind the IAM identity's session (its STS
    source identity), None when the session had none."""
    return ((package.get(field) or {}).get("IamIdentity") or {}).get("SourceIdentity") or None


def pipeline_run_id(package: dict[str, Any]) -> str | None:
    """The pipeline execution that registered the package, when its metadata names a valid one."""
    run_id = (package.get("CustomerMetadataProperties") or {}).get("pipeline_run_id")
    return run_id if run_id and RUN_ID.match(run_id) else None


def creator_problems(package: dict[str, Any], trust: Trust) -> list[str]:
    """Why the package does not count as registered by the project's pipeline (or the approver)."""
    creator = identity(package, "CreatedBy")
    if not creator:
        return ["the package does not say who created it (CreatedBy has no IAM identity)"]
    if is_session_of(creator, trust.approver):
        return []
    if not is_session_of(creator, trust.pipeline):
        return [f"created by {creator}, not by a pipeline execution of the project ({trust.pipeline})"]
    run_id = pipeline_run_id(package)
    if not run_id:
        return ["created by the pipeline's role without a valid pipeline_run_id in its metadata"]
    # The model must be the one that execution trained: the report the gate reads is about it.
    elsewhere = sorted({c.get("ModelDataUrl") or "(none)" for c in model_containers(package)
                        if not (c.get("ModelDataUrl") or "").startswith(trust.run_uri(run_id))})
    if elsewhere:
        return [f"the model data {', '.join(elsewhere)} is not an output of pipeline execution {run_id} "
                f"({trust.run_uri(run_id)})"]
    return []


def model_containers(package: dict[str, Any]) -> list[dict[str, Any]]:
    return list((package.get("InferenceSpecification") or {}).get("Containers") or [])


def pipeline_evaluation_run(package: dict[str, Any], trust: Trust) -> str | None:
    """The execution whose report evaluates this package: only one the pipeline registered (an
    approver's copy names the run of the package it copied, not its own)."""
    if not is_session_of(identity(package, "CreatedBy"), trust.pipeline):
        return None
    return pipeline_run_id(package)


def approval_problems(production: bool, package: dict[str, Any], trust: Trust) -> list[str]:
    """Why the approval does not count: not the gate's (outside production) nor the approver's, or
    the approver's own package approved by the same person (four eyes: another must approve it)."""
    approver = identity(package, "LastModifiedBy")
    if not approver:
        return ["the package does not say who approved it (LastModifiedBy has no IAM identity)"]
    trusted = [trust.approver] if production else [trust.gate, trust.approver]
    if not any(is_session_of(approver, role) for role in trusted):
        return [f"approved by {approver}, not by {' or '.join(trusted)}"]
    creator = identity(package, "CreatedBy")
    persons = {field: source_identity(package, field) for field in ("CreatedBy", "LastModifiedBy")}
    if production:
        # The approver is a person, and so is the creator of a promoted package (the promoter, an
        # approver too): two persons, told apart by source identity (a session name is the
        # caller's choice). A pipeline's package has a workload for creator.
        promoter = is_session_of(creator, trust.approver)
        people = ("CreatedBy", "LastModifiedBy") if promoter else ("LastModifiedBy",)
        missing = [f"its {'creator' if field == 'CreatedBy' else 'approver'} "
                   f"({identity(package, field) or 'unknown'}) has no source identity"
                   for field in people if not persons[field]]
        if missing:
            return [f"{'; '.join(missing)}: production tells persons apart by the STS source "
                    "identity of their sessions (assume the persona role with SourceIdentity)"]
        if len(people) == 2 and persons["CreatedBy"] == persons["LastModifiedBy"]:
            return [f"created and approved by the same person ({persons['CreatedBy']}, sessions "
                    f"{creator} and {approver}): production needs another person to approve"]
        return []
    same_person = approver == creator or (
        persons["CreatedBy"] is not None and persons["CreatedBy"] == persons["LastModifiedBy"])
    if same_person and is_session_of(approver, trust.approver) and is_session_of(creator, trust.approver):
        return [f"created and approved by the same person ({persons['CreatedBy'] or approver}): an "
                "approver's own package needs another approver (or, outside production, the gate)"]
    return []


def promotion_problems(production: bool, metadata: dict[str, str], source_group: str | None) -> list[str]:
    """Production only: the package must name the package it was promoted from, a version in the
    source group (its ARN: same partition, region, account and name)."""
    if not production:
        return []
    source = metadata.get("promoted_from")
    if not source:
        return ["production packages must carry metadata promoted_from (the source environment's "
                "package ARN)"]
    package = PACKAGE_ARN.match(source)
    if not package:
        return [f"promoted_from {source!r} is not a versioned model package ARN"]
    group = GROUP_ARN.match(source_group or "")
    if not group:  # settings.py refuses this at cold start; never serve on a broken setting
        return [f"the promotion source group {source_group!r} is not a model package group ARN"]
    # Group names are case-insensitive in SageMaker (ARNs carry them lowercased).
    partition, region, account, name = group.groups()
    if package.groups()[:3] != (partition, region, account) or package.group(4).lower() != name.lower():
        return [f"promoted_from {source} is not a package of the promotion source group {source_group}"]
    return []


def promoted_data_problems(package: dict[str, Any], trust: Trust) -> list[str]:
    """A promoted package serves the archive the promotion copied for it, from the source
    version its `promoted_from` names (`<project>/promoted/<group>/<version>/`): a package that
    names a source but points anywhere else is not that source's model."""
    match = PACKAGE_ARN.match((package.get("CustomerMetadataProperties") or {}).get("promoted_from") or "")
    if not match:
        return []  # promotion_problems says why
    expected = trust.promoted_uri(match.group(4), match.group(5))  # the source's group and version
    elsewhere = sorted({c.get("ModelDataUrl") or "(none)" for c in model_containers(package)
                        if not (c.get("ModelDataUrl") or "").startswith(expected)})
    if elsewhere:
        return [f"the model data {', '.join(elsewhere)} is not the promoted copy of {match.group(0)} "
                f"({expected})"]
    return []


def promoted_report_uri(package: dict[str, Any], trust: Trust) -> str | None:
    """Where `mlops model promote` copied the evaluation report of the source version the
    package's `promoted_from` names (beside the archive, create-only); None for a package that
    names no source version."""
    match = PACKAGE_ARN.match((package.get("CustomerMetadataProperties") or {}).get("promoted_from") or "")
    return f"{trust.promoted_uri(match.group(4), match.group(5))}evaluation.json" if match else None


def provenance_problems(production: bool, package: dict[str, Any], trust: Trust,
                        source_group: str | None) -> list[str]:
    """Every reason the package's origin does not allow serving it; empty when it does."""
    metadata = package.get("CustomerMetadataProperties") or {}
    promoted = promotion_problems(production, metadata, source_group)
    if production and not promoted:
        promoted = promoted_data_problems(package, trust)
    return [*creator_problems(package, trust), *approval_problems(production, package, trust), *promoted]


def servable_problems(production: bool, package: dict[str, Any], trust: Trust,
                      source_group: str | None) -> list[str]:
    """Approved now, and of a trusted origin: what serving a package again (a rollback's rebuild
    from a history record) requires as much as a first deployment."""
    status = package.get("ModelApprovalStatus")
    return ([] if status == "Approved" else [f"status is {status}, not Approved"]) + provenance_problems(
        production, package, trust, source_group)
