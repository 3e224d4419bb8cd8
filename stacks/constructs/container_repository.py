"""An ECR repository: immutable tags, scan on push, KMS encryption, and an image lifecycle policy."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from stacks.binding import Construct, aws
from stacks.policy import Statement, document, statement


@dataclass(frozen=True)
class ContainerRepositoryProps:
    name: str
    kms_key_arn: str
    force_delete: bool = False
    keep_tagged_images: int = 50
    untagged_expire_days: int = 14
    # A repository policy (none by default: same-account access is IAM's alone). ECR repository
    # policy statements name no Resource: the repository is it.
    policy_statements: tuple[Statement, ...] = field(default=())


class ContainerRepository(Construct):
    def __init__(self, scope: Construct, id_: str, props: ContainerRepositoryProps):
        super().__init__(scope, id_)
        ecr = aws.ecr_repository
        self.repository = ecr.EcrRepository(
            self,
            "repository",
            name=props.name,
            # Immutable tags: a deployed image tag always means the same bytes.
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration=ecr.EcrRepositoryImageScanningConfiguration(
                scan_on_push=True
            ),
            encryption_configuration=[
                ecr.EcrRepositoryEncryptionConfiguration(
                    encryption_type="KMS", kms_key=props.kms_key_arn
                )
            ],
            force_delete=props.force_delete,
        )
        self.policy = None
        if props.policy_statements:
            self.policy = aws.ecr_repository_policy.EcrRepositoryPolicy(
                self, "policy", repository=self.repository.name,
                policy=document(props.policy_statements))
        aws.ecr_lifecycle_policy.EcrLifecyclePolicy(
            self,
            "lifecycle",
            repository=self.repository.name,
            policy=json.dumps(
                {
                    "rules": [
                        {
                            "rulePriority": 1,
                            "description": "expire untagged images",
                            "selection": {
                                "tagStatus": "untagged",
                                "countType": "sinceImagePushed",
                                "countUnit": "days",
                                "countNumber": props.untagged_expire_days,
                            },
                            "action": {"type": "expire"},
                        },
                        {
                            "rulePriority": 2,
                            "description": "keep the newest tagged images",
                            "selection": {
                                "tagStatus": "any",
                                "countType": "imageCountMoreThan",
                                "countNumber": props.keep_tagged_images,
                            },
                            "action": {"type": "expire"},
                        },
                    ]
                },
                separators=(",", ":"),
            ),
        )

    @property
    def arn(self) -> str:
        return self.repository.arn

    @property
    def url(self) -> str:
        return self.repository.repository_url

    def pull_statement(self, sid: str) -> Statement:
        return statement(
            sid,
            ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability",
             "ecr:DescribeImages"],
            [self.repository.arn],
        )
