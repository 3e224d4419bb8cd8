"""An IAM role with a permissions boundary and one inline least-privilege policy."""

from __future__ import annotations

from dataclasses import dataclass

from stacks.binding import Construct, aws
from stacks.policy import Statement, document, statement


@dataclass(frozen=True)
class ScopedRoleProps:
    name: str
    description: str
    path: str
    boundary_arn: str
    statements: tuple[Statement, ...]
    # Exactly one kind of principal: people (IAM user/role ARNs) or an AWS service.
    assumed_by_principals: tuple[str, ...] = ()
    assumed_by_service: str | None = None
    require_mfa: bool = False
    max_session_seconds: int = 3600
    # Conditions on a service's trust (aws:SourceArn: only this rule or job may act as the role).
    service_conditions: dict | None = None

    def __post_init__(self) -> None:
        if bool(self.assumed_by_principals) == bool(self.assumed_by_service):
            raise ValueError(f"role {self.name}: give principals or a service, not both or neither")
        if not self.statements:
            raise ValueError(f"role {self.name}: a role without permissions is a mistake")


class ScopedRole(Construct):
    def __init__(self, scope: Construct, id_: str, props: ScopedRoleProps):
        super().__init__(scope, id_)
        self.props = props
        self.role = aws.iam_role.IamRole(
            self,
            "role",
            name=props.name,
            path=props.path,
            description=props.description,
            assume_role_policy=document([self._trust_statement()]),
            permissions_boundary=props.boundary_arn,
            max_session_duration=props.max_session_seconds,
        )
        self.policy = aws.iam_role_policy.IamRolePolicy(
            self,
            "policy",
            name=f"{props.name}-permissions",
            role=self.role.name,
            policy=document(props.statements),
        )

    @property
    def arn(self) -> str:
        return self.role.arn

    def _trust_statement(self) -> Statement:
        p = self.props
        if p.assumed_by_service:
            return statement(
                "TrustService", ["sts:AssumeRole"], principals={"Service": p.assumed_by_service},
                conditions=p.service_conditions,
            )
        return statement(
            "TrustPersonas",
            ["sts:AssumeRole", "sts:TagSession"],
            principals={"AWS": list(p.assumed_by_principals)},
            conditions={"Bool": {"aws:MultiFactorAuthPresent": "true"}} if p.require_mfa else None,
        )
