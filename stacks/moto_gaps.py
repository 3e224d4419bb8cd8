"""Every place the local AWS (a moto server) differs from AWS, handled here and nowhere else.

Only the local environment uses this module. Each entry says what moto does differently and what
we do about it, so the day moto closes a gap the entry can be deleted.
"""

from __future__ import annotations

# Where AWS would answer a request moto does not implement with a 500, the provider retries for
# over ten minutes before failing (seen with Application Auto Scaling's ListTagsForResource). A low
# retry count makes such a gap fail in seconds with moto's error instead of hanging a deploy.
PROVIDER_MAX_RETRIES = 2

# moto accepts any access key unless IAM enforcement is switched on (INITIAL_NO_AUTH_ACTION_COUNT);
# these are placeholders, not secrets, and are the same on every machine.
PROVIDER_CREDENTIALS = {"access_key": "test", "secret_key": "test"}

# The services the platform's stacks call, all answered by the one moto endpoint.
SERVICES = (
    "appautoscaling", "cloudtrail", "cloudwatch", "dynamodb", "ec2", "ecr", "eks", "events",
    "iam", "kms", "lambda", "logs", "s3", "sagemaker", "secretsmanager", "sns", "sqs", "sts",
)

# Terraform skips the calls that only exist to discover a real account (STS/metadata), because
# moto's answers would be fixed fakes anyway.
PROVIDER_FLAGS = {
    "skip_credentials_validation": True,
    "skip_requesting_account_id": True,
    "skip_metadata_api_check": "true",
    # moto serves every bucket on one host, so virtual-host-style addressing cannot work.
    "s3_use_path_style": True,
}

# moto implements no DeleteModelPackageGroup (NotImplementedError -> HTTP 500), so `terraform
# destroy` of the local environment would fail on the model registry. Before a local destroy these
# resources are dropped from the state instead; the moto server is stopped right after anyway.
UNDELETABLE_RESOURCE_TYPES = ("aws_sagemaker_model_package_group",)


def undeletable(addresses: list[str]) -> list[str]:
    """The state addresses a local destroy must forget instead of deleting."""
    return [a for a in addresses if a.split(".", 1)[0] in UNDELETABLE_RESOURCE_TYPES]
