"""A CloudTrail trail with log file validation, KMS-encrypted, into the audit bucket."""

from __future__ import annotations

from dataclasses import dataclass

from stacks.binding import Construct, aws
from stacks.constructs.secure_bucket import SecureBucket
from stacks.policy import Statement, statement


@dataclass(frozen=True)
class AuditTrailProps:
    name: str
    kms_key_arn: str
    account_id: str
    region: str
    multi_region: bool = True
    key_prefix: str = "cloudtrail"
    # Buckets whose object-level reads and writes are recorded (who read the training data).
    data_event_bucket_arns: tuple[str, ...] = ()

    @property
    def arn(self) -> str:
        # Known before the trail exists: the audit bucket's policy and the boundary need it.
        return f"arn:aws:cloudtrail:{self.region}:{self.account_id}:trail/{self.name}"


class AuditTrail(Construct):
    def __init__(
        self, scope: Construct, id_: str, props: AuditTrailProps, bucket: SecureBucket
    ):
        super().__init__(scope, id_)
        ct = aws.cloudtrail
        selectors = (
            [
                ct.CloudtrailEventSelector(
                    read_write_type="All",
                    include_management_events=True,
                    data_resource=[
                        ct.CloudtrailEventSelectorDataResource(
                            type="AWS::S3::Object",
                            values=[f"{arn}/" for arn in props.data_event_bucket_arns],
                        )
                    ],
                )
            ]
            if props.data_event_bucket_arns
            else None
        )
        self.trail = ct.Cloudtrail(
            self,
            "trail",
            name=props.name,
            s3_bucket_name=bucket.name,
            s3_key_prefix=props.key_prefix,
            enable_log_file_validation=True,
            include_global_service_events=True,
            is_multi_region_trail=props.multi_region,
            kms_key_id=props.kms_key_arn,
            event_selector=selectors,
            # CloudTrail checks the bucket policy when the trail is created.
            depends_on=[bucket.policy],
        )

    @property
    def arn(self) -> str:
        return self.trail.arn

    @staticmethod
    def bucket_statements(props: AuditTrailProps, bucket_name: str) -> tuple[Statement, ...]:
        """What the audit bucket's policy must allow for CloudTrail to deliver to it."""
        trail_arn = props.arn
        bucket_arn = f"arn:aws:s3:::{bucket_name}"
        source = {"StringEquals": {"aws:SourceArn": trail_arn}}
        return (
            statement(
                "CloudTrailAclCheck",
                ["s3:GetBucketAcl"],
                [bucket_arn],
                principals={"Service": "cloudtrail.amazonaws.com"},
                conditions=source,
            ),
            statement(
                "CloudTrailWrite",
                ["s3:PutObject"],
                [f"{bucket_arn}/{props.key_prefix}/AWSLogs/{props.account_id}/*"],
                principals={"Service": "cloudtrail.amazonaws.com"},
                conditions={
                    "StringEquals": {
                        "aws:SourceArn": trail_arn,
                        "s3:x-amz-acl": "bucket-owner-full-control",
                    }
                },
            ),
        )
