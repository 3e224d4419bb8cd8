"""The prod promotion rule, checked by the deploy handler before it touches a prod endpoint.

A package in the prod group is deployed only if
1. its CustomerMetadataProperties carry `promoted_from`: the ARN of a package of the staging
   group (PROMOTION_SOURCE_GROUP) it was promoted from, and
2. DescribeModelPackage's LastModifiedBy names a session of the approver role
   (APPROVER_ROLE_ARN) as the identity that last changed it (the approval).
IAM is what stops anyone else from approving (only the approver role holds
sagemaker:UpdateModelPackage on the prod group); this check refuses a deployment when that
guard was bypassed or misconfigured, and leaves an audit record saying why. Whether the staging
package was itself approved is checked by whoever promotes it (its ARN is kept for the audit).
Outside prod the rule does not apply.
"""

from __future__ import annotations

import re

PACKAGE_ARN = re.compile(r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:model-package/([^/]+)/(\d+)$")
ROLE_ARN = re.compile(r"^arn:(aws[a-z-]*):iam::(\d{12}):role/(?:.*/)?([^/]+)$")


def is_session_of(identity_arn: str, role_arn: str) -> bool:
    """The identity is the role itself or one of its sessions (sts assumed-role ARN)."""
    role = ROLE_ARN.match(role_arn)
    if not role:
        return False
    partition, account, name = role.groups()
    return identity_arn == role_arn or identity_arn.startswith(
        f"arn:{partition}:sts::{account}:assumed-role/{name}/"
    )


def promotion_problems(
    environment: str,
    metadata: dict[str, str],
    approved_by_arn: str | None,
    approver_role_arn: str | None,
    source_group: str | None,
) -> list[str]:
    """Why this package may not be deployed to prod; empty when it may (or outside prod)."""
    if environment != "prod":
        return []
    problems = []
    source = metadata.get("promoted_from")
    match = PACKAGE_ARN.match(source or "")
    if not source:
        problems.append("prod packages must carry metadata promoted_from (the staging package ARN)")
    elif not match:
        problems.append(f"promoted_from {source!r} is not a versioned model package ARN")
    elif source_group and match.group(1).lower() != source_group.lower():
        problems.append(f"promoted_from {source} is not a package of the staging group {source_group}")
    if not approved_by_arn:
        problems.append("the package does not say who approved it (LastModifiedBy has no IAM identity)")
    elif not approver_role_arn or not is_session_of(approved_by_arn, approver_role_arn):
        problems.append(f"approved by {approved_by_arn}, not by the approver role {approver_role_arn}")
    return problems
