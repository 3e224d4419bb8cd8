"""An IAM role with a permissions boundary and one inline least-privilege policy."""

from __future__ import annotations

from dataclasses import dataclass, field

from stacks.binding import Construct, aws
from stacks.policy import Statement, document, statement

# IAM's largest role trust policy (the quota's default is 2048: raise it for more principals).
TRUST_POLICY_MAX = 4096


@dataclass(frozen=True)
class ScopedRoleProps:
    name: str
    description: str
    path: str
    # None only for a role made before the environment's boundary exists (the bootstrap stack's
    # state replication role: the platform stack makes the boundary).
    boundary_arn: str | None
    statements: tuple[Statement, ...]
    # Exactly one kind of principal: people (IAM user/role ARNs) or an AWS service.
    assumed_by_principals: tuple[str, ...] = ()
    assumed_by_service: str | None = None
    require_mfa: bool = False
    # A people's role only: every session must carry an STS source identity (the person, set by
    # the identity provider or the caller, kept through role chaining and recorded by the services
    # it calls), so two sessions of one person read as one person (production's four eyes).
    # Without it a source identity may still be set.
    require_source_identity: bool = False
    max_session_seconds: int = 3600
    # Conditions on a service's trust (aws:SourceArn: only this rule or job may act as the role).
    service_conditions: dict | None = None
    # A people's role only: per principal, the one value of each session tag it may set when
    # assuming the role ({principal: {key: value}}; no other tag). A policy that trusts the tag
    # (aws:PrincipalTag) then trusts who assumed the role, not what the caller chose to say.
    # Without it, principals may tag their sessions freely.
    session_tags: dict[str, dict[str, str]] = field(default_factory=dict)
    # A people's role only: an AWS service that may act as the role too (SageMaker runs a
    # persona's Studio apps as the persona), with `service_conditions`.
    also_assumed_by_service: str | None = None

    def __post_init__(self) -> None:
        if bool(self.assumed_by_principals) == bool(self.assumed_by_service):
            raise ValueError(f"role {self.name}: give principals or a service, not both or neither")
        if (self.session_tags or self.also_assumed_by_service or self.require_source_identity) \
                and not self.assumed_by_principals:
            raise ValueError(f"role {self.name}: session_tags, also_assumed_by_service and "
                             "require_source_identity are for roles people assume")
        unknown = set(self.session_tags) - set(self.assumed_by_principals)
        if unknown:
            raise ValueError(f"role {self.name}: session_tags for principals that cannot assume "
                             f"it: {sorted(unknown)}")
        if not self.statements:
            raise ValueError(f"role {self.name}: a role without permissions is a mistake")


class ScopedRole(Construct):
    def __init__(self, scope: Construct, id_: str, props: ScopedRoleProps):
        super().__init__(scope, id_)
        self.props = props
        trust = document(self._trust_statements())
        if len(trust) > TRUST_POLICY_MAX:
            raise ValueError(f"role {props.name}: its trust policy ({len(trust)} characters, one "
                             "statement per principal with session tags) exceeds IAM's maximum "
                             f"{TRUST_POLICY_MAX}: fewer principals")
        self.role = aws.iam_role.IamRole(
            self,
            "role",
            name=props.name,
            path=props.path,
            description=props.description,
            assume_role_policy=trust,
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

    def _trust_statements(self) -> list[Statement]:
        p = self.props
        if p.assumed_by_service:
            return [self._service_trust(p.assumed_by_service)]
        mfa = {"Bool": {"aws:MultiFactorAuthPresent": "true"}} if p.require_mfa else {}
        person = {"Null": {"sts:SourceIdentity": "false"}} if p.require_source_identity else {}
        free_tags = [] if p.session_tags else ["sts:TagSession"]
        out = [statement("TrustPersonas", ["sts:AssumeRole", "sts:SetSourceIdentity", *free_tags],
                         principals={"AWS": list(p.assumed_by_principals)}, conditions={**mfa, **person})]
        for i, (principal, tags) in enumerate(sorted(p.session_tags.items())):
            out.append(statement(
                f"OwnSessionTags{i}", ["sts:TagSession"], principals={"AWS": principal},
                conditions={
                    **mfa,
                    "StringEquals": {f"aws:RequestTag/{k}": v for k, v in sorted(tags.items())},
                    "ForAllValues:StringEquals": {"aws:TagKeys": sorted(tags)},
                },
            ))
        if p.also_assumed_by_service:
            out.append(self._service_trust(p.also_assumed_by_service))
        return out

    def _service_trust(self, service: str) -> Statement:
        return statement("TrustService", ["sts:AssumeRole"], principals={"Service": service},
                         conditions=self.props.service_conditions)
