"""Names and ARNs of an environment's resources, derived from its prefix in one place.

Every name starts with the environment's prefix (which contains the environment name), so names
carry the environment, IAM can be scoped by prefix, and two environments never collide.
"""

from __future__ import annotations

from dataclasses import dataclass

from stacks.config import Environment


@dataclass(frozen=True)
class Naming:
    prefix: str
    account_id: str
    region: str

    @classmethod
    def of(cls, env: Environment) -> Naming:
        return cls(env.prefix, env.account_id, env.region)

    def name(self, suffix: str) -> str:
        return f"{self.prefix}-{suffix}"

    def bucket(self, purpose: str) -> str:
        # Bucket names are global across all AWS accounts: the account id keeps them unique.
        return f"{self.prefix}-{purpose}-{self.account_id}"

    # ARN patterns that cover everything this environment owns, for scoping IAM.
    @property
    def all_buckets_arn(self) -> str:
        return f"arn:aws:s3:::{self.prefix}-*"

    def sagemaker_arn(self, resource_type: str, name: str | None = None) -> str:
        return (
            f"arn:aws:sagemaker:{self.region}:{self.account_id}:{resource_type}/"
            f"{name or self.prefix + '-*'}"
        )

    def arn(self, service: str, resource: str, *, region: bool = True) -> str:
        return f"arn:aws:{service}:{self.region if region else ''}:{self.account_id}:{resource}"

    @property
    def role_path(self) -> str:
        return f"/{self.prefix}/"
