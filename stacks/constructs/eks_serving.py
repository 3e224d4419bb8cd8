"""Optional EKS serving for an environment (`eks.enabled` in its file): a private cluster for
model servers, with IRSA for the model-serving service account.

- Network: the given private subnets, or a private network (stacks/constructs/private_network.py:
  one private subnet per availability zone, no internet route at all). Nodes reach AWS through
  VPC endpoints (S3 gateway; ECR, STS, EC2 and CloudWatch Logs interface endpoints), the layout
  AWS documents for private clusters.
- Cluster: private API endpoint always, a public one only when configured (and then only for the
  listed networks); Kubernetes secrets envelope-encrypted with the platform key; every
  control-plane log type, into a log group with retention and KMS; access entries (API
  authentication mode), the creator as first admin.
- Nodes: a managed node group from a launch template that requires IMDSv2 with a hop limit of 1
  (pods cannot borrow the node's role; they use IRSA) and encrypts the root volume.
- IRSA: the cluster's OIDC provider and a role only the serving service account
  (system:serviceaccount:<namespace>:<account>) may assume, allowed to read the model artifacts
  under one prefix of the artifacts bucket.

The cluster and node roles hold AWS managed policies and no permissions boundary: EKS needs EC2
network actions the environment's boundary does not allow, and only AWS services assume them.
The serving role, which runs our code, carries the boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

from stacks import moto_gaps
from stacks.binding import Construct, aws, cdktf
from stacks.config import LOG_RETENTION_DAYS, Eks
from stacks.constructs.private_network import PrivateNetwork, PrivateNetworkProps
from stacks.policy import document, statement

LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")
INTERFACE_ENDPOINTS = ("ec2", "ecr.api", "ecr.dkr", "sts", "logs")
MANAGED = "arn:aws:iam::aws:policy/"
CLUSTER_POLICIES = ("AmazonEKSClusterPolicy",)
NODE_POLICIES = ("AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy",
                 "AmazonEC2ContainerRegistryReadOnly")
STS_AUDIENCE = "sts.amazonaws.com"


@dataclass(frozen=True)
class EksServingProps:
    name: str  # the cluster; other resources are named after it
    settings: Eks
    region: str
    kms_key_arn: str
    role_path: str
    boundary_arn: str  # for the serving (IRSA) role
    artifacts_bucket_arn: str
    artifacts_prefix: str = "models/"
    log_retention_days: int = 30
    gaps: moto_gaps.MotoGaps = moto_gaps.AWS

    def __post_init__(self) -> None:
        if not self.settings.enabled:
            raise ValueError(f"cluster {self.name}: EKS is not enabled for this environment")
        if self.log_retention_days not in LOG_RETENTION_DAYS:
            raise ValueError(f"cluster {self.name}: log_retention_days must be one of "
                             f"{LOG_RETENTION_DAYS}")
        if self.artifacts_prefix.startswith("/"):
            raise ValueError(f"cluster {self.name}: artifacts_prefix has no leading /")

    @property
    def service_account_subject(self) -> str:
        s = self.settings
        return f"system:serviceaccount:{s.serving_namespace}:{s.serving_service_account}"


class EksServing(Construct):
    def __init__(self, scope: Construct, id_: str, props: EksServingProps):
        super().__init__(scope, id_)
        self.props = props
        s, gaps = props.settings, props.gaps
        self.vpc_id: str | None = None
        self.subnet_ids = list(s.subnet_ids) or self._network()

        cluster_role, cluster_policies = self._service_role(
            "cluster_role", f"{props.name}-cluster", "eks.amazonaws.com", CLUSTER_POLICIES)
        node_role, node_policies = self._service_role(
            "node_role", f"{props.name}-node", "ec2.amazonaws.com", NODE_POLICIES)
        # Created first: otherwise EKS creates it, unencrypted and kept forever.
        self.log_group = aws.cloudwatch_log_group.CloudwatchLogGroup(
            self,
            "logs",
            name=f"/aws/eks/{props.name}/cluster",
            retention_in_days=props.log_retention_days,
            kms_key_id=props.kms_key_arn,
        )
        eks = aws.eks_cluster
        self.cluster = eks.EksCluster(
            self,
            "cluster",
            name=props.name,
            role_arn=cluster_role.arn,
            version=s.kubernetes_version,
            enabled_cluster_log_types=list(LOG_TYPES),
            vpc_config=eks.EksClusterVpcConfig(
                subnet_ids=self.subnet_ids,
                endpoint_private_access=True,
                endpoint_public_access=s.public_endpoint,
                public_access_cidrs=list(s.public_access_cidrs) or None,
            ),
            encryption_config=eks.EksClusterEncryptionConfig(
                resources=["secrets"],
                provider=eks.EksClusterEncryptionConfigProvider(key_arn=props.kms_key_arn),
            ),
            access_config=eks.EksClusterAccessConfig(
                authentication_mode="API", bootstrap_cluster_creator_admin_permissions=True
            ),
            depends_on=[self.log_group, *cluster_policies],
            lifecycle=_lifecycle(gaps, "aws_eks_cluster"),
        )
        self._nodes(node_role, node_policies)
        self._irsa()

    # Network.
    def _network(self) -> list[str]:
        p, s = self.props, self.props.settings
        self.network = PrivateNetwork(self, "network", PrivateNetworkProps(
            name=p.name, cidr=s.vpc_cidr, availability_zones=tuple(s.availability_zones),
            region=p.region, interface_endpoints=INTERFACE_ENDPOINTS,
            subnet_tags={"kubernetes.io/role/internal-elb": "1"},
        ))
        self.network.moved_from_parent()
        self.vpc_id = self.network.vpc_id
        return self.network.subnet_ids

    # Roles.
    def _service_role(
        self, id_: str, name: str, service: str, managed: tuple[str, ...]
    ) -> tuple[aws.iam_role.IamRole, list[cdktf.TerraformResource]]:
        role = aws.iam_role.IamRole(
            self,
            id_,
            name=name,
            path=self.props.role_path,
            assume_role_policy=document([statement(
                "TrustService", ["sts:AssumeRole"], principals={"Service": service})]),
        )
        attachments = [
            aws.iam_role_policy_attachment.IamRolePolicyAttachment(
                self, f"{id_}_{policy.lower()}", role=role.name, policy_arn=MANAGED + policy
            )
            for policy in (managed if self.props.gaps.aws_managed_policies else ())
        ]
        return role, attachments

    def _nodes(
        self, node_role: aws.iam_role.IamRole, policies: list[cdktf.TerraformResource]
    ) -> None:
        p, s = self.props, self.props.settings
        lt = aws.launch_template
        template = lt.LaunchTemplate(
            self,
            "node_template",
            name=f"{p.name}-nodes",
            update_default_version=True,
            metadata_options=lt.LaunchTemplateMetadataOptions(
                http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=1
            ),
            block_device_mappings=[lt.LaunchTemplateBlockDeviceMappings(
                device_name="/dev/xvda",
                # The AWS-managed EBS key: the platform key's policy does not admit the Auto
                # Scaling service-linked role that launches the nodes.
                ebs=lt.LaunchTemplateBlockDeviceMappingsEbs(
                    volume_size=s.nodes.disk_gb, volume_type="gp3", encrypted="true",
                    delete_on_termination="true",
                ),
            )],
            lifecycle=_lifecycle(p.gaps, "aws_launch_template"),
        )
        ng = aws.eks_node_group
        self.node_group = ng.EksNodeGroup(
            self,
            "nodes",
            cluster_name=self.cluster.name,
            node_group_name="serving",
            node_role_arn=node_role.arn,
            subnet_ids=self.subnet_ids,
            instance_types=list(s.nodes.instance_types),
            ami_type="AL2023_x86_64_STANDARD",
            capacity_type="ON_DEMAND",
            scaling_config=ng.EksNodeGroupScalingConfig(
                min_size=s.nodes.min_size, desired_size=s.nodes.desired_size,
                max_size=s.nodes.max_size,
            ),
            update_config=ng.EksNodeGroupUpdateConfig(max_unavailable=1),
            launch_template=ng.EksNodeGroupLaunchTemplate(
                id=template.id, version=cdktf.Token.as_string(template.latest_version)
            ),
            depends_on=policies,
            # A cluster autoscaler moves desired_size; Terraform keeps min and max.
            lifecycle=_lifecycle(p.gaps, "aws_eks_node_group", "scaling_config[0].desired_size"),
        )

    def _irsa(self) -> None:
        p, s = self.props, self.props.settings
        self.oidc_provider = aws.iam_openid_connect_provider.IamOpenidConnectProvider(
            self,
            "oidc",
            url=self.cluster.identity.get(0).oidc.get(0).issuer,
            client_id_list=[STS_AUDIENCE],
            thumbprint_list=[s.oidc_thumbprint],
        )
        issuer = self.oidc_provider.url  # the issuer without https://, as IAM keys conditions
        bucket = p.artifacts_bucket_arn
        self.serving_role = aws.iam_role.IamRole(
            self,
            "serving_role",
            name=f"{p.name}-model-server",
            path=p.role_path,
            description=f"IRSA role of {p.service_account_subject} on {p.name}",
            permissions_boundary=p.boundary_arn,
            assume_role_policy=document([statement(
                "TrustServingServiceAccount",
                ["sts:AssumeRoleWithWebIdentity"],
                principals={"Federated": self.oidc_provider.arn},
                conditions={"StringEquals": {
                    f"{issuer}:sub": p.service_account_subject,
                    f"{issuer}:aud": STS_AUDIENCE,
                }},
            )]),
        )
        aws.iam_role_policy.IamRolePolicy(
            self,
            "serving_policy",
            name=f"{p.name}-model-server-permissions",
            role=self.serving_role.name,
            policy=document([
                statement("ReadModelArtifacts", ["s3:GetObject", "s3:GetObjectVersion"],
                          [f"{bucket}/{p.artifacts_prefix}*"]),
                statement("ListModelArtifacts", ["s3:ListBucket"], [bucket],
                          conditions={"StringLike": {"s3:prefix": f"{p.artifacts_prefix}*"}}),
                # Only as S3 decrypts the artifacts for this role, not for arbitrary ciphertext.
                statement("DecryptModelArtifacts", ["kms:Decrypt"], [p.kms_key_arn],
                          conditions={"StringEquals": {
                              "kms:ViaService": f"s3.{p.region}.amazonaws.com"}}),
            ]),
        )

    # What others need.
    @property
    def cluster_name(self) -> str:
        return self.cluster.name

    @property
    def cluster_arn(self) -> str:
        return self.cluster.arn

    @property
    def oidc_provider_arn(self) -> str:
        return self.oidc_provider.arn

    @property
    def serving_role_arn(self) -> str:
        """Annotate the service account with eks.amazonaws.com/role-arn: <this>."""
        return self.serving_role.arn


def _lifecycle(
    gaps: moto_gaps.MotoGaps, resource_type: str, *always: str
) -> cdktf.TerraformResourceLifecycle | None:
    ignored = gaps.ignore_changes(resource_type, *always)
    return cdktf.TerraformResourceLifecycle(ignore_changes=ignored) if ignored else None
