"""Optional EKS serving for an environment (`eks.enabled` in its file): a private cluster for
model servers, and the OIDC provider its service accounts' IAM roles (IRSA) trust.

- Network: the given private subnets, or a private network (stacks/constructs/private_network.py:
  one private subnet per availability zone, no internet route at all). Nodes reach AWS through
  VPC endpoints (S3 gateway; ECR, STS, EC2 and CloudWatch Logs interface endpoints), the layout
  AWS documents for private clusters. Its flow logs (all traffic, accepted and rejected) go to a
  log group with retention and KMS, written by a role only the flow-log service of this account
  may assume.
- Cluster: private API endpoint always, a public one only when configured (and then only for the
  listed networks); Kubernetes secrets envelope-encrypted with the platform key; every
  control-plane log type, into a log group with retention and KMS; access entries (API
  authentication mode), the creator as first admin.
- Nodes: a managed node group from a launch template that requires IMDSv2 with a hop limit of 1
  (pods cannot borrow the node's role; they use IRSA) and encrypts the root volume.
- IRSA: the cluster's OIDC provider. Each project serving on the cluster has its own role
  (stacks/constructs/service_account_role.py, made by the project stack) that only its service
  account may assume and that reads only its own model archives: one shared serving role would
  let every project's pods read every project's models.

The cluster and node roles hold AWS managed policies and no permissions boundary: EKS needs EC2
network actions the environment's boundary does not allow, and only AWS services assume them.
The project roles, which run our code, carry the boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

from stacks import moto_gaps
from stacks.binding import Construct, aws, cdktf
from stacks.config import LOG_RETENTION_DAYS, Eks
from stacks.constructs.private_network import FlowLogs, PrivateNetwork, PrivateNetworkProps
from stacks.constructs.service_account_role import STS_AUDIENCE
from stacks.policy import document, statement

LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")
INTERFACE_ENDPOINTS = ("ec2", "ecr.api", "ecr.dkr", "sts", "logs")
MANAGED = "arn:aws:iam::aws:policy/"
CLUSTER_POLICIES = ("AmazonEKSClusterPolicy",)
NODE_POLICIES = ("AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy",
                 "AmazonEC2ContainerRegistryReadOnly")


@dataclass(frozen=True)
class EksServingProps:
    name: str  # the cluster; other resources are named after it
    settings: Eks
    region: str
    account_id: str
    kms_key_arn: str
    role_path: str
    boundary_arn: str  # for the flow-log role
    log_retention_days: int = 30
    gaps: moto_gaps.MotoGaps = moto_gaps.AWS

    def __post_init__(self) -> None:
        if not self.settings.enabled:
            raise ValueError(f"cluster {self.name}: EKS is not enabled for this environment")
        if self.log_retention_days not in LOG_RETENTION_DAYS:
            raise ValueError(f"cluster {self.name}: log_retention_days must be one of "
                             f"{LOG_RETENTION_DAYS}")


class EksServing(Construct):
    def __init__(self, scope: Construct, id_: str, props: EksServingProps):
        super().__init__(scope, id_)
        self.props = props
        s, gaps = props.settings, props.gaps
        self.vpc_id: str | None = None
        self.network: PrivateNetwork | None = None  # given subnets: the caller's network
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
        self.oidc_provider = aws.iam_openid_connect_provider.IamOpenidConnectProvider(
            self,
            "oidc",
            url=self.cluster.identity.get(0).oidc.get(0).issuer,
            client_id_list=[STS_AUDIENCE],
            thumbprint_list=[s.oidc_thumbprint],
        )

    # Network.
    def _network(self) -> list[str]:
        p, s = self.props, self.props.settings
        self.network = PrivateNetwork(self, "network", PrivateNetworkProps(
            name=p.name, cidr=s.vpc_cidr, availability_zones=tuple(s.availability_zones),
            region=p.region, interface_endpoints=INTERFACE_ENDPOINTS,
            subnet_tags={"kubernetes.io/role/internal-elb": "1"},
            flow_logs=FlowLogs(account_id=p.account_id, kms_key_arn=p.kms_key_arn,
                               retention_days=p.log_retention_days, role_path=p.role_path,
                               boundary_arn=p.boundary_arn),
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
    def oidc_issuer(self) -> str:
        """The issuer without https://, as IAM keys the trust conditions of IRSA roles."""
        return self.oidc_provider.url


def _lifecycle(
    gaps: moto_gaps.MotoGaps, resource_type: str, *always: str
) -> cdktf.TerraformResourceLifecycle | None:
    ignored = gaps.ignore_changes(resource_type, *always)
    return cdktf.TerraformResourceLifecycle(ignore_changes=ignored) if ignored else None
