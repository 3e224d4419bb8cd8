"""A private network: a VPC with one private subnet per availability zone and no route to the
internet at all. What runs in it reaches AWS through VPC endpoints only: an S3 gateway endpoint
and the given interface endpoints (private DNS on, HTTPS from inside the VPC only). The VPC's
default security group is emptied so nothing lands in an open group by accident. Its flow logs
(all traffic, accepted and rejected) go to a log group with retention and KMS, written by a role
only the flow-log service of this account may assume.

Serves EKS serving (stacks/constructs/eks_serving.py) and the Studio domain
(stacks/constructs/studio_domain.py), each in a network of its own.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass, field

from stacks.binding import Construct, aws, cdktf
from stacks.constructs.scoped_role import ScopedRole, ScopedRoleProps
from stacks.policy import statement


@dataclass(frozen=True)
class FlowLogs:
    """Where the network's flow logs go, and the role that writes them."""

    account_id: str
    kms_key_arn: str
    retention_days: int
    role_path: str
    boundary_arn: str


@dataclass(frozen=True)
class PrivateNetworkProps:
    name: str  # the VPC's Name tag; its subnets and groups are named after it
    cidr: str
    availability_zones: tuple[str, ...]
    region: str
    # Interface endpoints, as the part after `com.amazonaws.<region>.` (`sts`, `sagemaker.api`).
    interface_endpoints: tuple[str, ...]
    subnet_tags: dict[str, str] = field(default_factory=dict)
    flow_logs: FlowLogs | None = None  # secure default where a caller has the key and boundary

    def __post_init__(self) -> None:
        if not self.availability_zones:
            raise ValueError(f"network {self.name}: needs at least one availability zone")
        if len(set(self.availability_zones)) != len(self.availability_zones):
            raise ValueError(f"network {self.name}: an availability zone is listed twice")
        if len(set(self.interface_endpoints)) != len(self.interface_endpoints):
            raise ValueError(f"network {self.name}: an interface endpoint is listed twice")
        self.subnet_cidrs  # noqa: B018 (raises when the range has no room for a subnet per zone)

    @property
    def subnet_cidrs(self) -> list[str]:
        """One block per zone, an eighth of the VPC each (at most /28, AWS's smallest subnet)."""
        net = ipaddress.ip_network(self.cidr)
        blocks = list(net.subnets(new_prefix=min(net.prefixlen + 3, 28)))
        if len(self.availability_zones) > len(blocks):
            raise ValueError(f"network {self.name}: {self.cidr} has room for {len(blocks)} subnets")
        return [str(b) for b in blocks[:len(self.availability_zones)]]


class PrivateNetwork(Construct):
    def __init__(self, scope: Construct, id_: str, props: PrivateNetworkProps):
        super().__init__(scope, id_)
        p = self.props = props
        self.vpc = aws.vpc.Vpc(
            self, "vpc", cidr_block=p.cidr, enable_dns_support=True, enable_dns_hostnames=True,
            tags={"Name": p.name},
        )
        # No rules: the default group admits nothing and lets nothing out.
        aws.default_security_group.DefaultSecurityGroup(self, "default_sg", vpc_id=self.vpc.id)
        self.flow_logs_role = self._flow_logs(p.flow_logs) if p.flow_logs else None
        self.route_table = aws.route_table.RouteTable(
            self, "private_routes", vpc_id=self.vpc.id, tags={"Name": f"{p.name}-private"})
        self.subnets = []
        for i, (zone, cidr) in enumerate(zip(p.availability_zones, p.subnet_cidrs, strict=True)):
            subnet = aws.subnet.Subnet(
                self,
                f"private_{i}",
                vpc_id=self.vpc.id,
                cidr_block=cidr,
                availability_zone=zone,
                map_public_ip_on_launch=False,
                tags={"Name": f"{p.name}-private-{zone}", **p.subnet_tags},
            )
            aws.route_table_association.RouteTableAssociation(
                self, f"private_{i}_routes", subnet_id=subnet.id, route_table_id=self.route_table.id
            )
            self.subnets.append(subnet)
        self.endpoints_sg = aws.security_group.SecurityGroup(
            self,
            "endpoints_sg",
            name=f"{p.name}-vpc-endpoints",
            description="HTTPS from inside the VPC to the AWS service endpoints",
            vpc_id=self.vpc.id,
            ingress=[aws.security_group.SecurityGroupIngress(
                description="HTTPS from the VPC", protocol="tcp", from_port=443, to_port=443,
                cidr_blocks=[p.cidr],
            )],
        )
        ep = aws.vpc_endpoint
        self.s3_endpoint = ep.VpcEndpoint(
            self, "s3_endpoint", vpc_id=self.vpc.id, vpc_endpoint_type="Gateway",
            service_name=f"com.amazonaws.{p.region}.s3", route_table_ids=[self.route_table.id],
        )
        for service in p.interface_endpoints:
            ep.VpcEndpoint(
                self,
                f"{service.replace('.', '_')}_endpoint",
                vpc_id=self.vpc.id,
                vpc_endpoint_type="Interface",
                service_name=f"com.amazonaws.{p.region}.{service}",
                private_dns_enabled=True,
                subnet_ids=self.subnet_ids,
                security_group_ids=[self.endpoints_sg.id],
            )

    def _flow_logs(self, f: FlowLogs) -> ScopedRole:
        p = self.props
        group = aws.cloudwatch_log_group.CloudwatchLogGroup(
            self,
            "flow_logs",
            name=f"/aws/vpc/{p.name}/flow-logs",
            retention_in_days=f.retention_days,
            kms_key_id=f.kms_key_arn,
        )
        role = ScopedRole(self, "flow_logs_role", ScopedRoleProps(
            name=f"{p.name}-flow-logs",
            description=f"VPC flow logs of {p.name} into CloudWatch Logs",
            path=f.role_path,
            boundary_arn=f.boundary_arn,
            statements=(
                statement("WriteFlowLogs",
                          ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                          [group.arn, f"{group.arn}:*"]),
                statement("FindLogGroups", ["logs:DescribeLogGroups"],
                          [f"arn:aws:logs:{p.region}:{f.account_id}:log-group:*"]),
            ),
            assumed_by_service="vpc-flow-logs.amazonaws.com",
            service_conditions={
                "StringEquals": {"aws:SourceAccount": f.account_id},
                "ArnLike": {"aws:SourceArn": f"arn:aws:ec2:{p.region}:{f.account_id}:vpc-flow-log/*"},
            },
        ))
        aws.flow_log.FlowLog(
            self,
            "flow_log",
            vpc_id=self.vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=group.arn,
            iam_role_arn=role.arn,
            tags={"Name": p.name},
        )
        return role

    def moved_from_parent(self) -> None:
        """For a network whose resources its parent construct used to make itself (EKS serving,
        before this construct): a Terraform `moved` block per resource, from the address it had
        then, so an existing state renames them instead of replacing the network (and with its
        subnets, the cluster in them)."""
        for child in self.node.children:
            if isinstance(child, cdktf.TerraformResource):
                below_stack = child.node.path.split("/")[1:]
                del below_stack[-2]  # this construct's own id
                child.move_from_id(f"{child.terraform_resource_type}.{logical_id(below_stack)}")

    @property
    def vpc_id(self) -> str:
        return self.vpc.id

    @property
    def subnet_ids(self) -> list[str]:
        return [s.id for s in self.subnets]

    @property
    def s3_prefix_list_id(self) -> str:
        """The S3 gateway endpoint's prefix list, for security group rules towards S3."""
        return self.s3_endpoint.prefix_list_id


def logical_id(path: list[str]) -> str:
    """The Terraform name cdktf gives a resource at this construct path below its stack (its
    `makeUniqueId`): the path's parts joined by `_` (a part the kept one before ends with left
    out), then the first 8 hex digits of the MD5 of the path joined by `/`."""
    digest = hashlib.md5("/".join(path).encode(), usedforsecurity=False).hexdigest()[:8].upper()
    parts: list[str] = []
    for part in path:
        if not parts or not parts[-1].endswith(part):
            parts.append(part)
    human = "_".join(re.sub(r"[^A-Za-z0-9_]", "", part) for part in parts)[:255]
    return f"{human}_{digest}"
