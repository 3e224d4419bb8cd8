"""A Secrets Manager secret encrypted with the platform key.

Only the secret's container is managed here: its value is put out of band
(`aws secretsmanager put-secret-value`), so no secret value ever appears in configuration,
synthesized JSON or Terraform state.
"""

from __future__ import annotations

from dataclasses import dataclass

from stacks.binding import Construct, aws
from stacks.policy import Statement, statement


@dataclass(frozen=True)
class ManagedSecretProps:
    name: str
    description: str
    kms_key_arn: str
    # 0 deletes at once (throwaway environments); 7-30 lets a deleted secret be restored.
    recovery_window_days: int = 30


class ManagedSecret(Construct):
    def __init__(self, scope: Construct, id_: str, props: ManagedSecretProps):
        super().__init__(scope, id_)
        self.secret = aws.secretsmanager_secret.SecretsmanagerSecret(
            self,
            "secret",
            name=props.name,
            description=props.description,
            kms_key_id=props.kms_key_arn,
            recovery_window_in_days=props.recovery_window_days,
        )

    @property
    def arn(self) -> str:
        return self.secret.arn

    def read_statement(self, sid: str) -> Statement:
        return statement(
            sid, ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
            [self.secret.arn],
        )
