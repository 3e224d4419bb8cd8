"""Every identity policy document of the synthesized stacks, with Terraform references resolved.

The stacks write policies as JSON strings holding Terraform references (`${aws_sqs_queue.q.arn}`):
before apply they are not ARNs. An IAM analyser judges a statement by its resources (a `*` is
unconstrained, an ARN is not), so each reference becomes a placeholder ARN of the shape AWS gives
that resource, built from the resource's own name in the same stack. A reference of a kind this
table does not know fails loudly: a new resource type gets its ARN shape here, not a guess.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# A Terraform reference, or an IAM policy variable (`${aws:PrincipalTag/...}`), which Terraform JSON
# escapes as `$${...}` and renders with one `$`.
REFERENCE = re.compile(r"\$(\$\{[^}]+\})|\$\{([^}]+)\}")
# A key id is a UUID only AWS knows: a placeholder of the same shape.
KEY_ID = "00000000-0000-0000-0000-000000000000"

# resource type -> (the argument holding its name, the ARN's shape).
ARN_SHAPES: dict[str, tuple[str, str]] = {
    "aws_cloudwatch_event_rule": ("name", "arn:aws:events:{region}:{account}:rule/{name}"),
    "aws_cloudwatch_log_group": ("name", "arn:aws:logs:{region}:{account}:log-group:{name}"),
    "aws_cloudwatch_metric_alarm": ("alarm_name", "arn:aws:cloudwatch:{region}:{account}:alarm:{name}"),
    "aws_dynamodb_table": ("name", "arn:aws:dynamodb:{region}:{account}:table/{name}"),
    "aws_ecr_repository": ("name", "arn:aws:ecr:{region}:{account}:repository/{name}"),
    "aws_iam_role": ("name", "arn:aws:iam::{account}:role{path}{name}"),
    "aws_kms_key": ("description", "arn:aws:kms:{region}:{account}:key/" + KEY_ID),
    "aws_lambda_function": ("function_name", "arn:aws:lambda:{region}:{account}:function:{name}"),
    "aws_s3_bucket": ("bucket", "arn:aws:s3:::{name}"),
    "aws_sagemaker_pipeline": ("pipeline_name", "arn:aws:sagemaker:{region}:{account}:pipeline/{name}"),
    "aws_sns_topic": ("name", "arn:aws:sns:{region}:{account}:{name}"),
    "aws_sqs_queue": ("name", "arn:aws:sqs:{region}:{account}:{name}"),
}
# Attributes other than `arn` that policies reference.
OTHER_ATTRIBUTES = {
    ("data.aws_kms_alias", "target_key_arn"): "arn:aws:kms:{region}:{account}:key/" + KEY_ID,
    ("aws_iam_openid_connect_provider", "arn"): "arn:aws:iam::{account}:oidc-provider/{url}",
    ("aws_iam_openid_connect_provider", "url"): "{url}",
    # A Studio domain's id is SageMaker's (`d-` and 12 characters): a placeholder of that shape.
    ("aws_sagemaker_domain", "id"): "d-0a1b2c3d4e5f",
}
# Where a stack keeps identity policies: inline role policies and customer managed policies
# (the permissions boundary among them). Resource policies (bucket, key, topic, queue) and trust
# policies are not identity policies.
IDENTITY_POLICY_TYPES = ("aws_iam_role_policy", "aws_iam_policy")


@dataclass(frozen=True)
class PolicyDocument:
    stack: str
    address: str  # e.g. aws_iam_role_policy.control_loop_gate_function_role_policy_1A2B3C4D
    name: str  # the policy's name in AWS, what the accepted findings match
    document: dict


def identity_policies(stacks: dict[str, Path]) -> Iterator[PolicyDocument]:
    for stack, folder in sorted(stacks.items()):
        config = json.loads((folder / "cdk.tf.json").read_text())
        resolve = _Resolver(config)
        resources = config.get("resource", {})
        for rtype in IDENTITY_POLICY_TYPES:
            for rid, body in resources.get(rtype, {}).items():
                text = resolve(body["policy"], f"{stack}: {rtype}.{rid}")
                yield PolicyDocument(stack, f"{rtype}.{rid}", resolve(body["name"], rid), json.loads(text))


class _Resolver:
    def __init__(self, config: dict):
        self.resources = config.get("resource", {})
        self.data = config.get("data", {})
        provider = config["provider"]["aws"][0]
        self.region = provider.get("region", "us-east-1")
        # The local provider names no account: moto's default one, as environments/local.yaml.
        self.account = (provider.get("allowed_account_ids") or ["123456789012"])[0]

    def __call__(self, text: str, where: str) -> str:
        return REFERENCE.sub(lambda m: m.group(1) or self._value(m.group(2), where), text)

    def _value(self, reference: str, where: str) -> str:
        parts = reference.split(".")
        if parts[0] == "data" and len(parts) == 4:
            kind, attribute, body = f"data.{parts[1]}", parts[3], self.data.get(parts[1], {}).get(parts[2])
        elif len(parts) == 3:
            kind, attribute, body = parts[0], parts[2], self.resources.get(parts[0], {}).get(parts[1])
        else:
            raise ValueError(f"{where}: cannot resolve ${{{reference}}}")
        if body is None:
            raise ValueError(f"{where}: ${{{reference}}} names nothing in its stack")
        fields = {"region": self.region, "account": self.account, "path": body.get("path", "/"),
                  "url": str(body.get("url", "")).removeprefix("https://")}
        if (kind, attribute) in OTHER_ATTRIBUTES:
            return OTHER_ATTRIBUTES[kind, attribute].format(**fields)
        if attribute == "arn" and kind in ARN_SHAPES:
            name_field, shape = ARN_SHAPES[kind]
            return shape.format(name=self(str(body.get(name_field, parts[-2])), where), **fields)
        raise ValueError(f"{where}: no placeholder for ${{{reference}}}: add its ARN shape to "
                         f"tests/security/iam_documents.py")
