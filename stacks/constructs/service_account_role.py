"""An IAM role for a Kubernetes service account (IRSA): one project's model server on EKS.

Only `system:serviceaccount:<namespace>:<account>` of the cluster's OIDC provider, with the STS
audience, may assume it (AssumeRoleWithWebIdentity; the pod identity webhook hands the pod the
token). It may read the listed object patterns of one bucket (the project's model archives, not
every project's) and decrypt them with the platform key only as S3 does so for it. It carries the
environment's permissions boundary like every role that runs our code.
"""

from __future__ import annotations

from dataclasses import dataclass

from stacks.binding import Construct, aws
from stacks.policy import document, statement

STS_AUDIENCE = "sts.amazonaws.com"


@dataclass(frozen=True)
class ServiceAccountRoleProps:
    name: str
    role_path: str
    boundary_arn: str
    oidc_provider_arn: str
    # The issuer without https:// (oidc.eks.<region>.amazonaws.com/id/<id>): IAM's condition keys.
    oidc_issuer: str
    namespace: str
    service_account: str
    bucket_arn: str
    # Object key patterns (no leading /) the role may read, e.g. "demo/runs/*/model/*".
    object_patterns: tuple[str, ...]
    kms_key_arn: str
    region: str

    def __post_init__(self) -> None:
        if not self.object_patterns:
            raise ValueError(f"role {self.name}: no object_patterns to read")
        for pattern in self.object_patterns:
            if pattern.startswith("/") or pattern in ("*", ""):
                raise ValueError(f"role {self.name}: object pattern {pattern!r} must be a key prefix "
                                 "pattern without a leading / (never the whole bucket)")

    @property
    def subject(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"


class ServiceAccountRole(Construct):
    def __init__(self, scope: Construct, id_: str, props: ServiceAccountRoleProps):
        super().__init__(scope, id_)
        p = self.props = props
        self.role = aws.iam_role.IamRole(
            self,
            "role",
            name=p.name,
            path=p.role_path,
            description=f"IRSA role of {p.subject}",
            permissions_boundary=p.boundary_arn,
            assume_role_policy=document([statement(
                "TrustServiceAccount",
                ["sts:AssumeRoleWithWebIdentity"],
                principals={"Federated": p.oidc_provider_arn},
                conditions={"StringEquals": {
                    f"{p.oidc_issuer}:sub": p.subject,
                    f"{p.oidc_issuer}:aud": STS_AUDIENCE,
                }},
            )]),
        )
        self.policy = aws.iam_role_policy.IamRolePolicy(
            self,
            "policy",
            name=f"{p.name}-permissions",
            role=self.role.name,
            policy=document([
                statement("ReadModelArtifacts", ["s3:GetObject"],
                          [f"{p.bucket_arn}/{pattern}" for pattern in p.object_patterns]),
                # Only as S3 decrypts the artifacts for this role, not for arbitrary ciphertext.
                statement("DecryptModelArtifacts", ["kms:Decrypt"], [p.kms_key_arn],
                          conditions={"StringEquals": {
                              "kms:ViaService": f"s3.{p.region}.amazonaws.com"}}),
            ]),
        )

    @property
    def arn(self) -> str:
        """Annotate the service account with eks.amazonaws.com/role-arn: <this>."""
        return self.role.arn
