"""An SNS topic for alerts, KMS-encrypted, that CloudWatch alarms, EventBridge and AWS Budgets
(or the given service principals) may publish to, from this account only."""

from __future__ import annotations

from dataclasses import dataclass

from stacks.binding import Construct, aws
from stacks.policy import Statement, document, statement


@dataclass(frozen=True)
class AlertTopicProps:
    name: str
    kms_key_arn: str
    account_id: str
    # The services that publish; the key's policy must let them use it too (EncryptionKeyProps).
    publishers: tuple[str, ...] = ("cloudwatch.amazonaws.com", "events.amazonaws.com",
                                   "budgets.amazonaws.com")


class AlertTopic(Construct):
    def __init__(self, scope: Construct, id_: str, props: AlertTopicProps):
        super().__init__(scope, id_)
        self.topic = aws.sns_topic.SnsTopic(
            self, "topic", name=props.name, kms_master_key_id=props.kms_key_arn
        )
        self.policy = aws.sns_topic_policy.SnsTopicPolicy(
            self,
            "policy",
            arn=self.topic.arn,
            policy=document(
                [
                    statement(
                        "AllowAccountAlarmsAndEvents",
                        ["sns:Publish"],
                        [self.topic.arn],
                        principals={"Service": list(props.publishers)},
                        conditions={"StringEquals": {"aws:SourceAccount": props.account_id}},
                    ),
                    statement(
                        "DenyInsecureTransport",
                        ["sns:Publish"],
                        [self.topic.arn],
                        effect="Deny",
                        principals={"AWS": "*"},
                        conditions={"Bool": {"aws:SecureTransport": "false"}},
                    ),
                ]
            ),
        )

    @property
    def arn(self) -> str:
        return self.topic.arn

    def publish_statement(self, sid: str) -> Statement:
        return statement(sid, ["sns:Publish"], [self.topic.arn])
