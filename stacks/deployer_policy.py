"""The permissions whoever deploys an environment needs, as a policy document the project generates.

`mlops deployer-policy --env ENV [--json]` prints it: for every resource type in the environment's
synthesized replica (where it replicates), platform and project stacks, the actions Terraform
(hashicorp/aws 5.100.0) calls to create, read, update, tag and destroy it (RESOURCE_ACTIONS, a
maintained map; a test checks it covers every type any synthesized stack has), scoped to the
environment's names where the resource's ARN carries its name; plus the Terraform state (its
objects under the environment's key prefix, the lock file, the state key) and the image push of
`mlops image push`.

Where an ARN carries no name (KMS keys, EC2 networking, Application Auto Scaling, event source
mappings, Studio domains and their profiles) or an action takes no resource (Describe/List,
CreateKey), the statement is scoped to the account and region or to "*": IAM cannot do better. The
bootstrap stack (state bucket, OIDC provider, CI roles) is an administrator's, once per account,
and is not covered.

Pure (no cdktf): the resource types come from the synthesized JSON.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from stacks.config import Environment
from stacks.naming import Naming
from stacks.policy import Statement, document, statement
from stacks.replication import ReplicaNames

# A customer managed policy holds at most 6,144 characters (whitespace not counted); a role takes
# up to 10 managed policies by default.
MANAGED_POLICY_CHARACTERS = 6144


@dataclass(frozen=True)
class Needs:
    scope: str  # a key of scopes(): whose ARNs the actions are scoped to
    actions: tuple[str, ...]


_S3_BUCKET_READS = ("s3:ListBucket", "s3:GetBucket*", "s3:GetAccelerateConfiguration",
                    "s3:GetLifecycleConfiguration", "s3:GetReplicationConfiguration",
                    "s3:GetEncryptionConfiguration", "s3:GetAnalyticsConfiguration",
                    "s3:GetIntelligentTieringConfiguration", "s3:GetInventoryConfiguration",
                    "s3:GetMetricsConfiguration")
_TAGS = ("TagResource", "UntagResource", "ListTagsForResource")


def _with(service: str, *actions: str) -> tuple[str, ...]:
    return tuple(f"{service}:{a}" for a in actions)


RESOURCE_ACTIONS: dict[str, tuple[Needs, ...]] = {
    # S3: the buckets and their settings, the objects Terraform uploads (step code, layers).
    "aws_s3_bucket": (Needs("buckets", ("s3:CreateBucket", "s3:DeleteBucket", "s3:PutBucketTagging",
                                        "s3:PutBucketObjectLockConfiguration", *_S3_BUCKET_READS)),),
    "aws_s3_bucket_lifecycle_configuration": (Needs("buckets", ("s3:PutLifecycleConfiguration",)),),
    "aws_s3_bucket_logging": (Needs("buckets", ("s3:PutBucketLogging",)),),
    "aws_s3_bucket_object_lock_configuration": (Needs("buckets", ("s3:PutBucketObjectLockConfiguration",)),),
    "aws_s3_bucket_ownership_controls": (Needs("buckets", ("s3:PutBucketOwnershipControls",)),),
    "aws_s3_bucket_policy": (Needs("buckets", ("s3:PutBucketPolicy", "s3:DeleteBucketPolicy")),),
    "aws_s3_bucket_public_access_block": (Needs("buckets", ("s3:PutBucketPublicAccessBlock",)),),
    "aws_s3_bucket_server_side_encryption_configuration": (
        Needs("buckets", ("s3:PutEncryptionConfiguration",)),),
    "aws_s3_bucket_versioning": (Needs("buckets", ("s3:PutBucketVersioning",)),),
    # (PutBucketReplication and DeleteBucketReplication are both this action; reading is the
    # bucket's GetReplicationConfiguration; the role it names is passed: aws_iam_role's PassRole.)
    "aws_s3_bucket_replication_configuration": (Needs("buckets", ("s3:PutReplicationConfiguration",)),),
    # (GetObjectVersion: a signing job reads the uploaded version, as the caller.)
    "aws_s3_object": (Needs("objects", ("s3:PutObject", "s3:GetObject", "s3:GetObjectTagging",
                                        "s3:GetObjectVersion", "s3:PutObjectTagging", "s3:DeleteObject",
                                        "s3:DeleteObjectVersion")),
                      Needs("buckets", ("s3:ListBucketVersions",))),
    # KMS: a key's ARN is its id, so keys are scoped to the account and region.
    "aws_kms_key": (Needs("anything", ("kms:CreateKey",)),
                    Needs("keys", _with("kms", "DescribeKey", "GetKeyPolicy", "GetKeyRotationStatus",
                                        "ListResourceTags", "PutKeyPolicy", "EnableKeyRotation",
                                        "DisableKeyRotation", "TagResource", "UntagResource",
                                        "UpdateKeyDescription", "ScheduleKeyDeletion", "CreateGrant",
                                        # The objects Terraform uploads (step code, layer zips, the
                                        # bootstrap model) land SSE-KMS: a PutObject needs a data
                                        # key, and Lambda reads a layer's zip as the caller.
                                        "GenerateDataKey", "Decrypt"))),
    "aws_kms_alias": (Needs("aliases", _with("kms", "CreateAlias", "DeleteAlias", "UpdateAlias")),
                      Needs("anything", ("kms:ListAliases",))),
    # IAM: the environment's roles and policies live on its role path (the boundary's rules below).
    "aws_iam_role": (Needs("roles", _with("iam", "CreateRole", "GetRole", "DeleteRole", "UpdateRole",
                                          "UpdateRoleDescription", "UpdateAssumeRolePolicy", "TagRole",
                                          "UntagRole", "ListRolePolicies", "ListAttachedRolePolicies",
                                          "ListInstanceProfilesForRole", "PutRolePermissionsBoundary",
                                          "PassRole")),),
    "aws_iam_role_policy": (Needs("roles", _with("iam", "PutRolePolicy", "GetRolePolicy",
                                                 "DeleteRolePolicy")),),
    "aws_iam_role_policy_attachment": (Needs("roles", _with("iam", "AttachRolePolicy", "DetachRolePolicy")),
                                       Needs("managed_policies", ("iam:GetPolicy", "iam:GetPolicyVersion"))),
    "aws_iam_policy": (Needs("policies", _with("iam", "CreatePolicy", "GetPolicy", "GetPolicyVersion",
                                               "ListPolicyVersions", "CreatePolicyVersion",
                                               "DeletePolicyVersion", "DeletePolicy", "TagPolicy",
                                               "UntagPolicy")),),
    "aws_iam_openid_connect_provider": (Needs("oidc_providers", _with(
        "iam", "CreateOpenIDConnectProvider", "GetOpenIDConnectProvider", "DeleteOpenIDConnectProvider",
        "UpdateOpenIDConnectProviderThumbprint", "AddClientIDToOpenIDConnectProvider",
        "RemoveClientIDFromOpenIDConnectProvider", "TagOpenIDConnectProvider",
        "UntagOpenIDConnectProvider")),),
    # Lambda.
    "aws_lambda_function": (Needs("functions", _with(
        "lambda", "CreateFunction", "GetFunction", "GetFunctionConfiguration", "GetFunctionCodeSigningConfig",
        "PutFunctionCodeSigningConfig", "DeleteFunctionCodeSigningConfig",
        "GetFunctionConcurrency", "ListVersionsByFunction", "UpdateFunctionCode",
        "UpdateFunctionConfiguration", "DeleteFunction", "PutFunctionConcurrency",
        "DeleteFunctionConcurrency", "TagResource", "UntagResource", "ListTags")),),
    # Code signing (stacks/constructs/code_signing.py). A config's ARN ends in an id Lambda picks
    # (csc-...): scoped to the account and region's configs. Lambda checks the signatures itself.
    "aws_lambda_code_signing_config": (Needs("anything", ("lambda:CreateCodeSigningConfig",)),
                                       Needs("code_signing_configs", _with(
                                           "lambda", "GetCodeSigningConfig", "UpdateCodeSigningConfig",
                                           "DeleteCodeSigningConfig", "PutFunctionCodeSigningConfig",
                                           "TagResource", "UntagResource", "ListTags"))),
    "aws_signer_signing_profile": (Needs("signing_profiles", _with(
        "signer", "PutSigningProfile", "GetSigningProfile", "CancelSigningProfile", *_TAGS)),),
    # A job's ARN ends in the id Signer picks: started on the profile, described on the account's jobs.
    "aws_signer_signing_job": (
        Needs("signing_profiles", _with("signer", "StartSigningJob", "GetSigningProfile")),
        Needs("signing_jobs", ("signer:DescribeSigningJob",))),
    "aws_lambda_layer_version": (Needs("layers", _with("lambda", "PublishLayerVersion", "GetLayerVersion",
                                                       "DeleteLayerVersion")),),
    # An event source mapping's ARN is a UUID: created and listed on "*", scoped by function.
    "aws_lambda_event_source_mapping": (Needs("anything", _with(
        "lambda", "CreateEventSourceMapping", "GetEventSourceMapping", "UpdateEventSourceMapping",
        "DeleteEventSourceMapping", "ListEventSourceMappings")),),
    # Logs, metrics, alarms, dashboards, rules.
    "aws_cloudwatch_log_group": (Needs("log_groups", _with(
        "logs", "CreateLogGroup", "DeleteLogGroup", "PutRetentionPolicy", "DeleteRetentionPolicy",
        "AssociateKmsKey", "DisassociateKmsKey", "TagResource", "UntagResource", "ListTagsForResource",
        "TagLogGroup", "UntagLogGroup", "ListTagsLogGroup")),
        Needs("anything", ("logs:DescribeLogGroups",))),
    "aws_cloudwatch_metric_alarm": (Needs("alarms", _with("cloudwatch", "PutMetricAlarm", "DeleteAlarms",
                                                          *_TAGS)),
                                    Needs("anything", ("cloudwatch:DescribeAlarms",))),
    "aws_cloudwatch_dashboard": (Needs("dashboards", _with("cloudwatch", "PutDashboard", "GetDashboard",
                                                           "DeleteDashboards")),),
    "aws_cloudwatch_event_rule": (Needs("rules", _with("events", "PutRule", "DescribeRule", "DeleteRule",
                                                       "EnableRule", "DisableRule", *_TAGS)),),
    "aws_cloudwatch_event_target": (Needs("rules", _with("events", "PutTargets", "RemoveTargets",
                                                         "ListTargetsByRule")),),
    # Messaging and tables.
    "aws_sqs_queue": (Needs("queues", _with("sqs", "CreateQueue", "GetQueueAttributes", "SetQueueAttributes",
                                            "DeleteQueue", "TagQueue", "UntagQueue", "ListQueueTags",
                                            "GetQueueUrl")),),
    "aws_sns_topic": (Needs("topics", _with("sns", "CreateTopic", "GetTopicAttributes", "SetTopicAttributes",
                                            "DeleteTopic", *_TAGS)),),
    "aws_sns_topic_policy": (Needs("topics", _with("sns", "SetTopicAttributes", "GetTopicAttributes")),),
    "aws_dynamodb_table": (Needs("tables", _with(
        "dynamodb", "CreateTable", "DescribeTable", "UpdateTable", "DeleteTable", "DescribeContinuousBackups",
        "UpdateContinuousBackups", "DescribeTimeToLive", "UpdateTimeToLive", "TagResource", "UntagResource",
        "ListTagsOfResource")),),
    # Registries and secrets.
    "aws_ecr_repository": (Needs("repositories", _with(
        "ecr", "CreateRepository", "DescribeRepositories", "DeleteRepository", "PutImageTagMutability",
        "PutImageScanningConfiguration", *_TAGS)),),
    "aws_ecr_lifecycle_policy": (Needs("repositories", _with(
        "ecr", "PutLifecyclePolicy", "GetLifecyclePolicy", "DeleteLifecyclePolicy")),),
    # A promotion source's inference repository: the targets' promoters read image digests.
    "aws_ecr_repository_policy": (Needs("repositories", _with(
        "ecr", "SetRepositoryPolicy", "GetRepositoryPolicy", "DeleteRepositoryPolicy")),),
    "aws_secretsmanager_secret": (Needs("secrets", _with(
        "secretsmanager", "CreateSecret", "DescribeSecret", "DeleteSecret", "UpdateSecret", "TagResource",
        "UntagResource", "GetResourcePolicy")),),
    # SageMaker.
    "aws_sagemaker_model": (Needs("sagemaker", _with("sagemaker", "CreateModel", "DescribeModel",
                                                     "DeleteModel", "AddTags", "ListTags", "DeleteTags")),),
    "aws_sagemaker_endpoint_configuration": (Needs("sagemaker", _with(
        "sagemaker", "CreateEndpointConfig", "DescribeEndpointConfig", "DeleteEndpointConfig", "AddTags",
        "ListTags", "DeleteTags")),),
    "aws_sagemaker_endpoint": (Needs("sagemaker", _with("sagemaker", "CreateEndpoint", "DescribeEndpoint",
                                                        "UpdateEndpoint", "DeleteEndpoint", "AddTags",
                                                        "ListTags", "DeleteTags")),),
    "aws_sagemaker_model_package_group": (Needs("sagemaker", _with(
        "sagemaker", "CreateModelPackageGroup", "DescribeModelPackageGroup", "DeleteModelPackageGroup",
        "GetModelPackageGroupPolicy", "AddTags", "ListTags", "DeleteTags")),),
    # A promotion source's project groups: the targets' promoters read their packages.
    "aws_sagemaker_model_package_group_policy": (Needs("sagemaker", _with(
        "sagemaker", "PutModelPackageGroupPolicy", "GetModelPackageGroupPolicy",
        "DeleteModelPackageGroupPolicy")),),
    "aws_sagemaker_pipeline": (Needs("sagemaker", _with("sagemaker", "CreatePipeline", "DescribePipeline",
                                                        "UpdatePipeline", "DeletePipeline", "AddTags",
                                                        "ListTags", "DeleteTags")),),
    "aws_sagemaker_mlflow_tracking_server": (Needs("sagemaker", _with(
        "sagemaker", "CreateMlflowTrackingServer", "DescribeMlflowTrackingServer",
        "UpdateMlflowTrackingServer", "DeleteMlflowTrackingServer", "AddTags", "ListTags", "DeleteTags")),),
    # Studio: a domain's ARN ends in its id (`domain/d-...`, SageMaker's choice, not the name), and
    # a profile's in that id and its name (`user-profile/d-.../data-scientist-...`, no prefix):
    # scoped to the account and region's domains. The domain's home volume (EFS) and its network
    # interfaces are SageMaker's to make, as the notebooks service-linked role (made once per
    # account, at its first domain); the key grant for the volume is aws_kms_key's CreateGrant,
    # the execution roles' PassRole aws_iam_role's, the VPC reads EC2's Describe* on "*".
    "aws_sagemaker_domain": (Needs("studio", _with("sagemaker", "CreateDomain", "DescribeDomain",
                                                   "UpdateDomain", "DeleteDomain", "AddTags", "ListTags",
                                                   "DeleteTags")),
                             Needs("notebooks_role", ("iam:CreateServiceLinkedRole",))),
    "aws_sagemaker_user_profile": (Needs("studio", _with(
        "sagemaker", "CreateUserProfile", "DescribeUserProfile", "UpdateUserProfile", "DeleteUserProfile",
        "AddTags", "ListTags", "DeleteTags")),),
    # Endpoint autoscaling: its targets' ARNs are ids; the service-linked role is made once.
    "aws_appautoscaling_target": (Needs("anything", _with(
        "application-autoscaling", "RegisterScalableTarget", "DescribeScalableTargets",
        "DeregisterScalableTarget", *_TAGS)),
        Needs("autoscaling_role", ("iam:CreateServiceLinkedRole",)),
        Needs("sagemaker", ("sagemaker:DescribeEndpoint", "sagemaker:UpdateEndpointWeightsAndCapacities"))),
    "aws_appautoscaling_policy": (Needs("anything", _with(
        "application-autoscaling", "PutScalingPolicy", "DescribeScalingPolicies", "DeleteScalingPolicy")),),
    "aws_appautoscaling_scheduled_action": (Needs("anything", _with(
        "application-autoscaling", "PutScheduledAction", "DescribeScheduledActions",
        "DeleteScheduledAction")),),
    # Account-level.
    "aws_budgets_budget": (Needs("budgets", _with("budgets", "ModifyBudget", "ViewBudget", "TagResource",
                                                  "UntagResource", "ListTagsForResource")),),
    "aws_cloudtrail": (Needs("trails", _with(
        "cloudtrail", "CreateTrail", "DeleteTrail", "UpdateTrail", "StartLogging", "StopLogging", "GetTrail",
        "GetTrailStatus", "GetEventSelectors", "PutEventSelectors", "GetInsightSelectors", "ListTags",
        "AddTags", "RemoveTags")),
        Needs("anything", ("cloudtrail:DescribeTrails",))),
    # EKS serving and its network: EC2 ids carry no name (scoped to the account and region).
    "aws_eks_cluster": (Needs("eks", _with("eks", "CreateCluster", "DescribeCluster", "UpdateClusterConfig",
                                           "UpdateClusterVersion", "DeleteCluster", *_TAGS)),),
    "aws_eks_node_group": (Needs("eks", _with("eks", "CreateNodegroup", "DescribeNodegroup",
                                              "UpdateNodegroupConfig", "UpdateNodegroupVersion",
                                              "DeleteNodegroup")),),
    "aws_launch_template": (Needs("ec2", _with("ec2", "CreateLaunchTemplate", "CreateLaunchTemplateVersion",
                                               "ModifyLaunchTemplate", "DeleteLaunchTemplate",
                                               "DescribeLaunchTemplates", "DescribeLaunchTemplateVersions",
                                               "CreateTags", "DeleteTags")),),
    "aws_vpc": (Needs("ec2", _with("ec2", "CreateVpc", "DeleteVpc", "ModifyVpcAttribute", "DescribeVpcs",
                                   "DescribeVpcAttribute", "CreateTags", "DeleteTags")),),
    "aws_subnet": (Needs("ec2", _with("ec2", "CreateSubnet", "DeleteSubnet", "ModifySubnetAttribute",
                                      "DescribeSubnets")),),
    "aws_route_table": (Needs("ec2", _with("ec2", "CreateRouteTable", "DeleteRouteTable", "CreateRoute",
                                           "DeleteRoute", "DescribeRouteTables")),),
    "aws_route_table_association": (Needs("ec2", _with("ec2", "AssociateRouteTable",
                                                       "DisassociateRouteTable")),),
    "aws_security_group": (Needs("ec2", _with(
        "ec2", "CreateSecurityGroup", "DeleteSecurityGroup", "DescribeSecurityGroups",
        "DescribeSecurityGroupRules", "AuthorizeSecurityGroupIngress", "AuthorizeSecurityGroupEgress",
        "RevokeSecurityGroupIngress", "RevokeSecurityGroupEgress")),),
    "aws_default_security_group": (Needs("ec2", _with(
        "ec2", "DescribeSecurityGroups", "RevokeSecurityGroupIngress", "RevokeSecurityGroupEgress")),),
    # (The role the flow-log service writes with is passed to it: aws_iam_role's PassRole.)
    "aws_flow_log": (Needs("ec2", _with("ec2", "CreateFlowLogs", "DeleteFlowLogs", "DescribeFlowLogs",
                                        "CreateTags", "DeleteTags")),),
    "aws_vpc_endpoint": (Needs("ec2", _with("ec2", "CreateVpcEndpoint", "DeleteVpcEndpoints",
                                            "ModifyVpcEndpoint", "DescribeVpcEndpoints",
                                            "DescribePrefixLists")),),
}
DATA_SOURCE_ACTIONS: dict[str, tuple[Needs, ...]] = {
    "aws_kms_alias": (Needs("anything", ("kms:ListAliases",)), Needs("keys", ("kms:DescribeKey",))),
    # The project stacks find the platform's EKS cluster by name (its OIDC issuer for IRSA).
    "aws_eks_cluster": (Needs("eks", ("eks:DescribeCluster",)),),
    # The project stacks find the environment's signing profile by name (its version ARN).
    "aws_signer_signing_profile": (Needs("signing_profiles", ("signer:GetSigningProfile",)),),
}
# Reads the provider makes whatever the resources (sts:GetCallerIdentity needs no permission).
PROVIDER_READS = ("ec2:DescribeAvailabilityZones",)
# `mlops image push` (before the project stacks): the images under the tag the stacks reference.
IMAGE_PUSH = ("ecr:BatchCheckLayerAvailability", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart",
              "ecr:CompleteLayerUpload", "ecr:PutImage", "ecr:BatchGetImage", "ecr:DescribeImages")


def scopes(n: Naming) -> dict[str, list[str]]:
    """The ARN patterns of what the environment `n` names (its prefix), per kind of resource."""
    account, region = n.account_id, n.region
    return {
        "anything": ["*"],
        "buckets": [n.all_buckets_arn],
        "objects": [f"{n.all_buckets_arn}/*"],
        "keys": [f"arn:aws:kms:{region}:{account}:key/*"],
        "aliases": [f"arn:aws:kms:{region}:{account}:alias/{n.prefix}*",
                    f"arn:aws:kms:{region}:{account}:key/*"],
        "roles": [f"arn:aws:iam::{account}:role{n.role_path}*"],
        "policies": [f"arn:aws:iam::{account}:policy{n.role_path}*"],
        "managed_policies": ["arn:aws:iam::aws:policy/*"],
        "oidc_providers": [f"arn:aws:iam::{account}:oidc-provider/*"],
        "autoscaling_role": [f"arn:aws:iam::{account}:role/aws-service-role/sagemaker.application-autoscaling"
                             ".amazonaws.com/*"],
        "functions": [n.arn("lambda", f"function:{n.prefix}-*")],
        "layers": [n.arn("lambda", f"layer:{n.prefix}-*"), n.arn("lambda", f"layer:{n.prefix}-*:*")],
        "log_groups": [n.arn("logs", f"log-group:{group}{suffix}")
                       # the functions', the cluster's, its VPC's flow logs, the trail's
                       for group in (f"/aws/lambda/{n.prefix}-*", f"/aws/eks/{n.prefix}-*",
                                     f"/aws/vpc/{n.prefix}-*", f"/{n.prefix}/*")
                       for suffix in ("", ":*")],
        "alarms": [n.arn("cloudwatch", f"alarm:{n.prefix}-*")],
        "dashboards": [n.arn("cloudwatch", f"dashboard/{n.prefix}-*", region=False)],
        "rules": [n.arn("events", f"rule/{n.prefix}-*")],
        "queues": [n.arn("sqs", f"{n.prefix}-*")],
        "topics": [n.arn("sns", f"{n.prefix}-*")],
        "tables": [n.arn("dynamodb", f"table/{n.prefix}-*")],
        "repositories": [n.arn("ecr", f"repository/{n.prefix}-*")],
        "secrets": [n.secrets_arn_pattern],
        "sagemaker": [n.sagemaker_arn("*", f"{n.prefix}-*"),
                      n.sagemaker_arn("model-package", f"{n.prefix}-*/*")],
        "studio": [n.sagemaker_arn("domain", "*"), n.sagemaker_arn("user-profile", "*/*")],
        "notebooks_role": [f"arn:aws:iam::{account}:role/aws-service-role/sagemaker.amazonaws.com/"
                           "AWSServiceRoleForAmazonSageMakerNotebooks"],
        "budgets": [f"arn:aws:budgets::{account}:budget/{n.prefix}-*"],
        "trails": [n.arn("cloudtrail", f"trail/{n.prefix}-*")],
        "eks": [n.arn("eks", f"cluster/{n.prefix}-*"), n.arn("eks", f"nodegroup/{n.prefix}-*/*/*")],
        "ec2": [f"arn:aws:ec2:{region}:{account}:*"],
        "code_signing_configs": [n.arn("lambda", "code-signing-config:*")],
        # The profile and its versions (`/signing-profiles/<name>/<version>`).
        "signing_profiles": [n.signing_profiles_arn_pattern, f"{n.signing_profiles_arn_pattern}/*"],
        "signing_jobs": [n.arn("signer", "/signing-jobs/*")],
    }


def types_of(stacks: Iterable[dict]) -> tuple[list[str], list[str]]:
    """(resource types, data source types) of synthesized stacks (cdk.tf.json documents)."""
    resources = {t for doc in stacks for t in doc.get("resource", {})}
    data = {t for doc in stacks for t in doc.get("data", {})}
    return sorted(resources), sorted(data)


def attached_policies(stacks: Iterable[dict]) -> list[str]:
    """The managed policy ARNs synthesized stacks attach to roles (the EKS service roles')."""
    return sorted({a["policy_arn"] for doc in stacks
                   for a in doc.get("resource", {}).get("aws_iam_role_policy_attachment", {}).values()})


def _sid(scope: str) -> str:
    if scope == "anything":
        return "ActionsWithoutResourceScope"
    return "Manage" + "".join(part.title() for part in scope.split("_"))


def deployer_statements(env: Environment, resource_types: Iterable[str], data_types: Iterable[str] = (),
                        attached: Iterable[str] = ()) -> list[Statement]:
    """The deployer's statements for an environment whose stacks hold `resource_types` (and read
    `data_types`, and attach the managed policies `attached`). Unknown types are an error: the map
    must name what each needs."""
    types, data = sorted(set(resource_types)), sorted(set(data_types))
    unknown = [t for t in types if t not in RESOURCE_ACTIONS] + [f"data.{t}" for t in data
                                                               if t not in DATA_SOURCE_ACTIONS]
    if unknown:
        raise KeyError(f"stacks/deployer_policy.py has no actions for {', '.join(unknown)}")
    n = Naming.of(env)
    patterns = scopes(n)
    replica = ReplicaNames.of(env)
    if replica is not None:  # the replica stack's key and alias, in the replica region
        patterns["keys"] = [*patterns["keys"], replica.keys_arn_pattern]
        patterns["aliases"] = [*patterns["aliases"], replica.key_alias_arn, replica.keys_arn_pattern]
    by_scope: dict[str, dict[str, None]] = {}
    for needs in [*(RESOURCE_ACTIONS[t] for t in types), *(DATA_SOURCE_ACTIONS[t] for t in data)]:
        for need in needs:
            by_scope.setdefault(need.scope, {}).update(dict.fromkeys(need.actions))
    # EC2's Describe* actions take no resource-level permissions: only "*" matches them.
    ec2 = by_scope.get("ec2", {})
    for action in [a for a in ec2 if a.startswith("ec2:Describe")]:
        by_scope.setdefault("anything", {})[action] = ec2.pop(action)
    statements = [statement("ReadAccount", list(PROVIDER_READS), ["*"])]
    statements += [statement(_sid(scope), sorted(actions), patterns[scope])
                   for scope, actions in sorted(by_scope.items()) if actions]
    statements += [*_state(env), statement("PushImages", list(IMAGE_PUSH), patterns["repositories"]),
                   statement("EcrLogin", ["ecr:GetAuthorizationToken"], ["*"])]
    # The EKS roles' policies are the ones the stacks attach (none attached: none allowed).
    statements += deployment_guards(n, sorted(attached))
    return statements


def _state(env: Environment) -> list[Statement]:
    """Terraform's S3 backend with its native lock file (`<key>.tflock`), SSE-KMS with the state key."""
    state = env.state
    if state.kind != "s3":
        return []
    bucket = f"arn:aws:s3:::{state.bucket}"
    prefix = f"{state.key_prefix}/{env.name}/"
    return [
        statement("ListState", ["s3:ListBucket"], [bucket],
                  conditions={"StringLike": {"s3:prefix": [f"{prefix}*"]}}),
        statement("ReadWriteStateAndLock", ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                  [f"{bucket}/{prefix}*"]),
        # The state key: the bootstrap stack's alias `<bucket>-key`.
        statement("UseStateKey", ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
                  [f"arn:aws:kms:{state.region or env.region}:{env.account_id}:key/*"],
                  conditions={"ForAnyValue:StringEquals": {
                      "kms:ResourceAliases": f"alias/{state.bucket}-key"}}),
    ]


def deployment_guards(n: Naming, eks_policy_arns: list[str]) -> list[Statement]:
    """What holds whoever deploys (a person with these documents, or the CI deploy role,
    stacks/constructs/github_ci_roles.py) to the boundary: every role made or changed carries
    it, but EKS's two service roles, which get only `eks_policy_arns`; the boundary itself is an
    administrator's; no role is assumed."""
    roles = f"arn:aws:iam::{n.account_id}:role{n.role_path}*"
    eks_roles = [f"arn:aws:iam::{n.account_id}:role{n.role_path}{n.eks_cluster}-{kind}"
                 for kind in ("cluster", "node")]
    return [
        # Every role it makes or changes carries the boundary (AWS's delegated-administration
        # pattern: iam:PermissionsBoundary is the boundary of the role acted on) ...
        {"Sid": "RolesCarryTheBoundary", "Effect": "Deny",
         "Action": ["iam:CreateRole", "iam:PutRolePermissionsBoundary", "iam:PutRolePolicy",
                    "iam:AttachRolePolicy", "iam:DeleteRolePolicy", "iam:DetachRolePolicy"],
         "NotResource": eks_roles,
         "Condition": {"StringNotEquals": {"iam:PermissionsBoundary": n.boundary_arn}}},
        # ... but the two EKS service roles, which EKS needs without it: they get EKS's own
        # managed policies and nothing else.
        *([{"Sid": "EksRolesGetOnlyEksPolicies", "Effect": "Deny", "Action": "iam:AttachRolePolicy",
            "Resource": eks_roles, "Condition": {"ArnNotEquals": {"iam:PolicyARN": eks_policy_arns}}}]
          if eks_policy_arns else []),
        statement("EksRolesGetNoInlinePolicy", ["iam:PutRolePolicy"], eks_roles, effect="Deny"),
        statement("BoundaryStays", ["iam:DeleteRolePermissionsBoundary"], [roles], effect="Deny"),
        # The boundary itself is changed by an administrator, never by CI: a new default
        # version would lift the cap on every role at once.
        statement("BoundaryChangesAreAnAdministrators",
                  ["iam:CreatePolicyVersion", "iam:DeletePolicyVersion", "iam:SetDefaultPolicyVersion",
                   "iam:DeletePolicy"], [n.boundary_arn], effect="Deny"),
        # Terraform assumes no role: a role it made is never a way to more permissions.
        statement("AssumesNoRole", ["sts:AssumeRole"], [f"arn:aws:iam::{n.account_id}:role/*"],
                  effect="Deny"),
    ]


def managed_policies(statements: list[Statement], limit: int = MANAGED_POLICY_CHARACTERS) -> list[str]:
    """The statements packed into as few managed policy documents as fit IAM's size limit (a
    deny applies from whichever policy of the identity holds it)."""
    packs: list[list[Statement]] = []
    for st in statements:
        for pack in packs:
            if len(document([*pack, st])) <= limit:
                pack.append(st)
                break
        else:
            if len(document([st])) > limit:
                raise ValueError(f"statement {st['Sid']} alone exceeds {limit} characters")
            packs.append([st])
    return [document(pack) for pack in packs]
