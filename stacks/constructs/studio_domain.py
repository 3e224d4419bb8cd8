"""A SageMaker Studio domain for one environment, and a user profile per persona principal.

- Network: VPC only (`AppNetworkAccessType=VpcOnly`: SageMaker gives the apps no internet) in a
  private network of its own (stacks/constructs/private_network.py), which reaches AWS through
  the endpoints Studio needs in VPC-only mode: SageMaker API and runtime (the SDK, starting
  pipelines, invoking endpoints), STS and CloudWatch Logs interface endpoints, an S3 gateway.
- Security group of the apps: NFS (2049) within the group, for the home EFS volume; TCP
  8192-65535 within the group, between a Studio app and its kernels; HTTPS out to the VPC
  endpoints and S3 only. Nothing from outside the group.
- IAM authentication: a person opens Studio as a persona (console, or CreatePresignedDomainUrl
  with the persona's credentials, stacks/personas.py `studio`).
- Storage (the home EFS volume, the spaces' EBS volumes) encrypted with the platform key; home
  folders kept when the domain is deleted where data is protected (`retain_home`).
- Notebook sharing (snapshots to S3) off.
- One user profile per (persona, principal), named `Naming.studio_profile`, running as that
  persona's role, tagged `studiouserid` = its name (who may open it: the persona role, for the
  principal whose session carries the same tag).
"""

from __future__ import annotations

from dataclasses import dataclass

from stacks.binding import Construct, aws
from stacks.config import Studio
from stacks.constructs.private_network import FlowLogs, PrivateNetwork, PrivateNetworkProps
from stacks.naming import Naming
from stacks.personas import STUDIO_USER_TAG

# What Studio needs in VPC-only mode besides S3 (AWS's "Requirements to use VPC only mode").
INTERFACE_ENDPOINTS = ("sagemaker.api", "sagemaker.runtime", "sts", "logs")
NFS_PORT = 2049
# Between a Studio app and its kernel gateways.
APP_PORTS = (8192, 65535)


@dataclass(frozen=True)
class StudioUser:
    persona: str
    principal_arn: str
    role_arn: str  # the persona's role: the profile's apps run as it

    @property
    def profile_name(self) -> str:
        return Naming.studio_profile(self.persona, self.principal_arn)


@dataclass(frozen=True)
class StudioDomainProps:
    name: str
    settings: Studio
    region: str
    kms_key_arn: str
    # A domain needs one; every profile here sets its own. The least-privileged persona that
    # works in Studio (the data scientist).
    default_execution_role_arn: str
    users: tuple[StudioUser, ...]
    retain_home: bool = True
    flow_logs: FlowLogs | None = None  # the network's (stacks/constructs/private_network.py)

    def __post_init__(self) -> None:
        if not self.settings.enabled:
            raise ValueError(f"domain {self.name}: Studio is not enabled for this environment")
        if not self.users:
            raise ValueError(f"domain {self.name}: a domain without user profiles serves no one")
        names = [u.profile_name for u in self.users]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"domain {self.name}: principals map to the same profile {twice}; "
                             "their names (after the last /) must differ within a persona")


class StudioDomain(Construct):
    def __init__(self, scope: Construct, id_: str, props: StudioDomainProps):
        super().__init__(scope, id_)
        p = self.props = props
        self.network = PrivateNetwork(self, "network", PrivateNetworkProps(
            name=p.name, cidr=p.settings.vpc_cidr, availability_zones=tuple(p.settings.availability_zones),
            region=p.region, interface_endpoints=INTERFACE_ENDPOINTS, flow_logs=p.flow_logs,
        ))
        self.security_group = self._security_group()
        dom = aws.sagemaker_domain
        self.domain = dom.SagemakerDomain(
            self,
            "domain",
            domain_name=p.name,
            auth_mode="IAM",
            app_network_access_type="VpcOnly",
            vpc_id=self.network.vpc_id,
            subnet_ids=self.network.subnet_ids,
            kms_key_id=p.kms_key_arn,
            default_user_settings=self._user_settings(
                dom.SagemakerDomainDefaultUserSettings, dom.SagemakerDomainDefaultUserSettingsSharingSettings,
                p.default_execution_role_arn),
            retention_policy=dom.SagemakerDomainRetentionPolicy(
                home_efs_file_system="Retain" if p.retain_home else "Delete"),
        )
        prof = aws.sagemaker_user_profile
        self.profiles = {
            user: prof.SagemakerUserProfile(
                self,
                f"profile_{i}",
                domain_id=self.domain.id,
                user_profile_name=user.profile_name,
                user_settings=self._user_settings(
                    prof.SagemakerUserProfileUserSettings,
                    prof.SagemakerUserProfileUserSettingsSharingSettings, user.role_arn),
                tags={STUDIO_USER_TAG: user.profile_name, "persona": user.persona},
            )
            for i, user in enumerate(p.users)
        }

    def _user_settings(self, settings: type, sharing: type, role_arn: str) -> object:
        """A profile's settings (the domain's defaults have the same shape): its apps run as
        `role_arn` in the apps' group; notebooks are never shared (snapshots to S3)."""
        return settings(execution_role=role_arn, security_groups=[self.security_group.id],
                        sharing_settings=sharing(notebook_output_option="Disabled"))

    def _security_group(self) -> aws.security_group.SecurityGroup:
        sg = aws.security_group
        net = self.network
        within = [
            ("NFS to the home EFS volume", NFS_PORT, NFS_PORT),
            ("Studio apps and their kernels", *APP_PORTS),
        ]
        return sg.SecurityGroup(
            self,
            "apps_sg",
            name=f"{self.props.name}-apps",
            description="Studio apps: EFS and app traffic within the group, HTTPS to AWS endpoints",
            vpc_id=net.vpc_id,
            ingress=[sg.SecurityGroupIngress(description=d, protocol="tcp", from_port=lo, to_port=hi,
                                             self_attribute=True) for d, lo, hi in within],
            egress=[
                *[sg.SecurityGroupEgress(description=d, protocol="tcp", from_port=lo, to_port=hi,
                                         self_attribute=True) for d, lo, hi in within],
                sg.SecurityGroupEgress(description="HTTPS to the VPC endpoints", protocol="tcp",
                                       from_port=443, to_port=443,
                                       security_groups=[net.endpoints_sg.id]),
                sg.SecurityGroupEgress(description="HTTPS to S3 (gateway endpoint)", protocol="tcp",
                                       from_port=443, to_port=443,
                                       prefix_list_ids=[net.s3_prefix_list_id]),
            ],
        )

    # What others need.
    @property
    def domain_id(self) -> str:
        return self.domain.id

    @property
    def domain_arn(self) -> str:
        return self.domain.arn

    def profile_names(self) -> list[str]:
        return [u.profile_name for u in self.props.users]
