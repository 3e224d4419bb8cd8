"""IAM policy documents as plain dicts, rendered compactly.

Compact, key-ordered JSON is what `jsonencode` produces: a whitespace difference in a policy string
would otherwise show up as a change on every plan.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Statement = dict[str, Any]


def statement(
    sid: str,
    actions: Sequence[str],
    resources: Sequence[str] | None = None,
    *,
    effect: str = "Allow",
    principals: Mapping[str, str | Sequence[str]] | None = None,
    conditions: Mapping[str, Mapping[str, Any]] | None = None,
) -> Statement:
    if not actions:
        raise ValueError(f"statement {sid} has no actions")
    out: Statement = {"Sid": sid, "Effect": effect}
    if principals is not None:
        out["Principal"] = {k: _one_or_list(v) for k, v in principals.items()}
    out["Action"] = _one_or_list(actions)
    if resources is not None:
        out["Resource"] = _one_or_list(resources)
    if conditions:
        out["Condition"] = {op: dict(values) for op, values in conditions.items()}
    return out


def policy_variable(name: str) -> str:
    """An IAM policy variable (`${aws:PrincipalTag/x}`) as it must stand in Terraform JSON, where
    a bare `${` would be read as Terraform's own interpolation (`$${` is its escape)."""
    return "$${" + name + "}"


def document(statements: Iterable[Statement]) -> str:
    stmts = list(statements)
    sids = [s["Sid"] for s in stmts]
    duplicates = {s for s in sids if sids.count(s) > 1}
    if duplicates:
        raise ValueError(f"duplicate statement ids: {sorted(duplicates)}")
    return json.dumps({"Version": "2012-10-17", "Statement": stmts}, separators=(",", ":"))


def deny_insecure_transport(bucket_arn: str) -> Statement:
    """TLS-only: refuse every request to the bucket or its objects made over plain HTTP."""
    return statement(
        "DenyInsecureTransport",
        ["s3:*"],
        [bucket_arn, f"{bucket_arn}/*"],
        effect="Deny",
        principals={"AWS": "*"},
        conditions={"Bool": {"aws:SecureTransport": "false"}},
    )


def listed(value: str | Sequence[str] | None) -> list[str]:
    """A policy's Action or Resource as a list (one is written as a plain string)."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def matches(pattern: str, name: str) -> bool:
    """IAM's wildcard match (`*` any run, `?` one character); actions compare case-insensitively."""
    return fnmatch.fnmatchcase(name.lower(), pattern.lower())


def _one_or_list(value: str | Sequence[str]) -> str | list[str]:
    if isinstance(value, str):
        return value
    items = list(dict.fromkeys(value))
    return items[0] if len(items) == 1 else items
