"""A CloudTrail trail with log file validation, KMS-encrypted, into the audit bucket.

Its events also stream to a CloudWatch Logs group (KMS, retention), written by a role only this
trail may assume, so metric filters and alarms can watch them within minutes; each log file it
delivers is announced on an SNS topic of its own (KMS; only this trail publishes), for whoever
must know when new evidence lands. The S3 copy under Object Lock stays the record.
"""

from __future__ import annotations

from dataclasses import dataclass

from stacks import moto_gaps
from stacks.binding import Construct, aws, cdktf
from stacks.constructs.alert_topic import AlertTopic, AlertTopicProps
from stacks.constructs.scoped_role import ScopedRole, ScopedRoleProps
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
    # The CloudWatch Logs copy of the events.
    log_group_name: str = ""  # default /aws/cloudtrail/<name>
    log_retention_days: int = 365

    @property
    def arn(self) -> str:
        # Known before the trail exists: the audit bucket's policy and the boundary need it.
        return f"arn:aws:cloudtrail:{self.region}:{self.account_id}:trail/{self.name}"


class AuditTrail(Construct):
    def __init__(
        self, scope: Construct, id_: str, props: AuditTrailProps, bucket: SecureBucket, *,
        role_path: str, boundary_arn: str, gaps: moto_gaps.MotoGaps = moto_gaps.AWS,
    ):
        super().__init__(scope, id_)
        ct = aws.cloudtrail
        self.log_group = aws.cloudwatch_log_group.CloudwatchLogGroup(
            self,
            "logs",
            name=props.log_group_name or f"/aws/cloudtrail/{props.name}",
            retention_in_days=props.log_retention_days,
            kms_key_id=props.kms_key_arn,
        )
        self.logs_role = ScopedRole(self, "logs_role", ScopedRoleProps(
            name=f"{props.name}-to-logs",
            description=f"CloudTrail writes the {props.name} trail's events to CloudWatch Logs",
            path=role_path,
            boundary_arn=boundary_arn,
            statements=(statement("WriteTrailEvents", ["logs:CreateLogStream", "logs:PutLogEvents"],
                                  [f"{self.log_group.arn}:log-stream:*"]),),
            assumed_by_service="cloudtrail.amazonaws.com",
            service_conditions={"StringEquals": {"aws:SourceArn": props.arn}},
        ))
        self.topic = AlertTopic(self, "deliveries", AlertTopicProps(
            name=f"{props.name}-deliveries", kms_key_arn=props.kms_key_arn,
            account_id=props.account_id, publishers=("cloudtrail.amazonaws.com",),
        ))
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
            # CloudTrail requires the log stream wildcard on the group's ARN.
            cloud_watch_logs_group_arn=f"{self.log_group.arn}:*",
            cloud_watch_logs_role_arn=self.logs_role.arn,
            sns_topic_name=self.topic.topic.name,
            # CloudTrail checks the bucket policy, the role and the topic's policy when the trail
            # is created.
            depends_on=[bucket.policy, self.logs_role.policy, self.topic.policy],
            lifecycle=_lifecycle(gaps),
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


def _lifecycle(gaps: moto_gaps.MotoGaps) -> cdktf.TerraformResourceLifecycle | None:
    ignored = gaps.ignore_changes("aws_cloudtrail")
    return cdktf.TerraformResourceLifecycle(ignore_changes=ignored) if ignored else None
