"""SageMaker Studio: a VPC-only domain per environment and a user profile per persona principal,
each running as its persona's role; the project's pipeline, model group and endpoint carry the
SageMaker project tags Studio groups by. (Synthesized JSON, shared `synth_all`.)"""

from __future__ import annotations

import json
import re

import pytest

from stacks import moto_gaps, personas
from stacks.config import ConfigError, load_environment
from stacks.naming import Naming

ENVS = ("local", "dev", "staging", "prod")
PROFILE_PATTERN = r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
STUDIO_ENDPOINTS = {"sagemaker.api", "sagemaker.runtime", "sts", "logs"}


def resources(doc: dict, rtype: str) -> dict[str, dict]:
    return doc.get("resource", {}).get(rtype, {})


def ref(rtype: str, rid: str, attr: str = "id") -> str:
    return f"${{{rtype}.{rid}.{attr}}}"


def listed(value):  # a single action or resource is written as a plain string
    return [value] if isinstance(value, str) else value


def studio_env(environments) -> list[str]:
    return [e for e in ENVS if environments[e].studio.enabled
            and moto_gaps.for_environment(environments[e].is_local).studio]


def test_every_aws_environment_has_studio_and_the_local_one_follows_its_gap(environments):
    assert studio_env(environments) == ["dev", "staging", "prod"]
    assert moto_gaps.LOCAL.studio is False and moto_gaps.AWS.studio is True


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_one_vpc_only_iam_domain_in_its_own_private_subnets(synth_all, environments, env):
    doc = synth_all.json(f"platform-{env}")
    (domain,) = resources(doc, "aws_sagemaker_domain").values()
    (key_id,) = resources(doc, "aws_kms_key")
    roles = {r["name"]: k for k, r in resources(doc, "aws_iam_role").items()}
    assert domain["depends_on"] == [f"aws_iam_role.{roles[f'mlops-{env}-data-scientist']}"]
    assert domain["domain_name"] == f"mlops-{env}-studio"
    assert domain["auth_mode"] == "IAM"
    assert domain["app_network_access_type"] == "VpcOnly"
    assert domain["kms_key_id"] == ref("aws_kms_key", key_id, "arn")
    protected = environments[env].data_protection.prevent_destroy
    assert domain["retention_policy"] == {"home_efs_file_system": "Retain" if protected else "Delete"}
    assert domain["default_user_settings"]["sharing_settings"] == {"notebook_output_option": "Disabled"}

    # Its own subnets: private (no public IPs) in a VPC of their own, routed nowhere but the
    # S3 gateway, zones as the file says.
    subnets = {k: s for k, s in resources(doc, "aws_subnet").items() if k.startswith("studio_")}
    assert domain["subnet_ids"] == [ref("aws_subnet", k) for k in subnets]
    zones = environments[env].studio.availability_zones
    assert {s["availability_zone"] for s in subnets.values()} == set(zones)
    assert all(s["map_public_ip_on_launch"] is False for s in subnets.values())
    (vpc_id,) = [k for k in resources(doc, "aws_vpc") if k.startswith("studio_")]
    assert domain["vpc_id"] == ref("aws_vpc", vpc_id)
    assert {s["vpc_id"] for s in subnets.values()} == {ref("aws_vpc", vpc_id)}
    assert not resources(doc, "aws_internet_gateway") and not resources(doc, "aws_nat_gateway")
    assert not resources(doc, "aws_route")
    endpoints = [e for k, e in resources(doc, "aws_vpc_endpoint").items() if k.startswith("studio_")]
    region = environments[env].region
    interface = {e["service_name"].removeprefix(f"com.amazonaws.{region}.") for e in endpoints
                 if e["vpc_endpoint_type"] == "Interface"}
    assert interface == STUDIO_ENDPOINTS
    assert all(e["private_dns_enabled"] for e in endpoints if e["vpc_endpoint_type"] == "Interface")
    assert [e["service_name"] for e in endpoints if e["vpc_endpoint_type"] == "Gateway"] == [
        f"com.amazonaws.{region}.s3"]


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_the_apps_group_admits_only_its_own_members(synth_all, env):
    doc = synth_all.json(f"platform-{env}")
    (domain,) = resources(doc, "aws_sagemaker_domain").values()
    (sg_ref,) = domain["default_user_settings"]["security_groups"]
    sg_id = re.fullmatch(r"\$\{aws_security_group\.([^.]+)\.id\}", sg_ref).group(1)
    sg = resources(doc, "aws_security_group")[sg_id]
    assert {(r["from_port"], r["to_port"]) for r in sg["ingress"]} == {(2049, 2049), (8192, 65535)}
    assert all(r["self"] is True and not r["cidr_blocks"] for r in sg["ingress"])
    out = [r for r in sg["egress"] if not r["self"]]
    assert {(r["from_port"], r["to_port"], r["protocol"]) for r in out} == {(443, 443, "tcp")}
    assert all(not r["cidr_blocks"] for r in sg["egress"]), "no egress to an address range"


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_a_profile_per_persona_principal_running_as_its_persona_role(synth_all, environments, env):
    doc = synth_all.json(f"platform-{env}")
    (domain_id,) = resources(doc, "aws_sagemaker_domain")
    n = Naming.of(environments[env])
    expected = {
        Naming.studio_profile(persona, principal): (persona, n.persona_role_arn(persona))
        for persona in personas.PERSONAS for principal in getattr(environments[env].personas, persona)
    }
    profiles = resources(doc, "aws_sagemaker_user_profile").values()
    assert len(profiles) == len(expected) == sum(
        len(getattr(environments[env].personas, p)) for p in personas.PERSONAS)
    roles = {r["name"]: k for k, r in resources(doc, "aws_iam_role").items()}
    for profile in profiles:
        name = profile["user_profile_name"]
        persona, role_arn = expected[name]
        assert re.fullmatch(PROFILE_PATTERN, name)
        assert profile["domain_id"] == ref("aws_sagemaker_domain", domain_id)
        assert profile["user_settings"]["execution_role"] == role_arn
        assert profile["tags"] == {personas.STUDIO_USER_TAG: name, "persona": persona}
        assert profile["depends_on"] == [f"aws_iam_role.{roles[n.persona_role_name(persona)]}"]


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_persona_roles_run_studio_apps_and_open_only_their_own_profile(synth_all, environments, env):
    doc = synth_all.json(f"platform-{env}")
    e = environments[env]
    (domain_id,) = resources(doc, "aws_sagemaker_domain")
    domain = ref("aws_sagemaker_domain", domain_id)
    roles = {r["name"]: r for r in resources(doc, "aws_iam_role").values()}
    policies = {p["name"]: json.loads(p["policy"]) for p in resources(doc, "aws_iam_role_policy").values()}
    for persona in personas.PERSONAS:
        role_name = Naming.of(e).persona_role_name(persona)
        trust = {s["Sid"]: s for s in json.loads(roles[role_name]["assume_role_policy"])["Statement"]}
        # SageMaker runs the apps as the persona's role, for this account only.
        assert trust["TrustService"]["Principal"] == {"Service": "sagemaker.amazonaws.com"}
        assert trust["TrustService"]["Condition"] == {"StringEquals": {"aws:SourceAccount": e.account_id}}
        # People assume it as before; each tags its session only with its own profile's name.
        assert listed(trust["TrustPersonas"]["Action"]) == ["sts:AssumeRole", "sts:SetSourceIdentity"]
        principals = getattr(e.personas, persona)
        tagging = [s for sid, s in trust.items() if sid.startswith("OwnSessionTags")]
        assert sorted(listed(s["Principal"]["AWS"])[0] for s in tagging) == sorted(principals)
        for s in tagging:
            own = Naming.studio_profile(persona, s["Principal"]["AWS"])
            assert s["Condition"]["StringEquals"] == {"aws:RequestTag/studiouserid": own}
            assert s["Condition"]["ForAllValues:StringEquals"] == {"aws:TagKeys": ["studiouserid"]}
            assert ("Bool" in s["Condition"]) == e.personas.require_mfa

        statements = {s["Sid"]: s for s in policies[f"{role_name}-permissions"]["Statement"]}
        opener = statements["OpenOwnStudioProfile"]
        assert opener["Action"] == "sagemaker:CreatePresignedDomainUrl"
        prefix = Naming.studio_profile_prefix(persona)
        assert opener["Resource"] == (f"arn:aws:sagemaker:{e.region}:{e.account_id}:user-profile/"
                                      f"{domain}/{prefix}*")
        # `$${` is Terraform's escape: IAM receives the policy variable ${aws:PrincipalTag/...}.
        assert opener["Condition"] == {"StringEquals": {
            "sagemaker:ResourceTag/studiouserid": "$${aws:PrincipalTag/studiouserid}"}}
        # ...and find the runs in the environment's MLflow, read-only.
        experiments = statements["ReadExperiments"]
        assert experiments["Resource"] == (f"arn:aws:sagemaker:{e.region}:{e.account_id}:"
                                           f"mlflow-tracking-server/mlops-{env}-mlflow")
        assert "sagemaker:CreatePresignedMlflowTrackingServerUrl" in experiments["Action"]
        assert all(a.split(":")[1].startswith(("Get", "Search", "List", "AccessUI", "CreatePresigned"))
                   for a in experiments["Action"])
        runs_apps = "AppsInOwnPrivateSpaces" in statements
        assert runs_apps == (persona not in personas.READ_ONLY_PERSONAS)
        if runs_apps:
            owner = statements["AppsInOwnPrivateSpaces"]["Condition"]
            assert owner["ArnLike"]["sagemaker:OwnerUserProfileArn"].endswith(f"{domain}/{prefix}*")
            assert owner["StringEquals"] == {"sagemaker:SpaceSharingType": "Private"}


def test_no_persona_opens_another_personas_profiles():
    prefixes = [Naming.studio_profile_prefix(p) for p in personas.PERSONAS]
    for a in prefixes:
        assert [b for b in prefixes if b.startswith(a)] == [a], "a persona's prefix covers another's"


def test_the_local_platform_stack_has_no_studio(synth_all, environments):
    doc = synth_all.json("platform-local")
    assert not resources(doc, "aws_sagemaker_domain")
    assert not resources(doc, "aws_sagemaker_user_profile")
    assert not resources(doc, "aws_vpc"), "no private network for a Studio that is not there"
    for role in resources(doc, "aws_iam_role").values():
        trust = json.loads(role["assume_role_policy"])["Statement"]
        assert len(trust) == 1, "no SageMaker trust and no session-tag rule without Studio"
    text = json.dumps(doc)
    assert "CreatePresignedDomainUrl" not in text
    assert "ReadExperiments" not in text, "no MLflow server locally (it runs embedded)"


@pytest.mark.parametrize("env", ENVS)
def test_the_projects_pipeline_group_and_endpoint_carry_the_project_tags(synth_all, environments, env):
    doc = synth_all.json(f"project-demo-{env}")
    tags = {"sagemaker:project-name": "demo", "sagemaker:project-id": f"{environments[env].prefix}-demo"}
    tagged = [
        *resources(doc, "aws_sagemaker_pipeline").values(),
        *resources(doc, "aws_sagemaker_model_package_group").values(),
        *resources(doc, "aws_sagemaker_endpoint").values(),
    ]
    assert len(tagged) == 4  # training and explainability pipelines, the group, the endpoint
    for resource in tagged:
        assert resource["tags"] == tags


@pytest.mark.parametrize("principal, expected", [
    ("arn:aws:iam::111111111111:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_DataScientist_0123456789abcdef",
     "data-scientist-awsreservedsso-datascientist-0123456789abcdef"),
    ("arn:aws:iam::123456789012:user/local-data-scientist", "data-scientist-local-data-scientist"),
    ("arn:aws:iam::123456789012:user/first.last@example.com", "data-scientist-first-last-example-com"),
])
def test_profile_names_are_the_persona_and_the_principals_name(principal, expected):
    assert Naming.studio_profile("data_scientist", principal) == expected


def test_a_long_principal_name_is_cut_to_fit_and_stays_unique():
    long_a = "arn:aws:iam::111111111111:role/team-a/" + "x" * 90
    long_b = "arn:aws:iam::111111111111:role/team-b/" + "x" * 90
    a, b = (Naming.studio_profile("platform_admin", arn) for arn in (long_a, long_b))
    assert a != b
    for name in (a, b):
        assert len(name) == 63 and re.fullmatch(PROFILE_PATTERN, name)
        assert name.startswith("platform-admin-xxx")
    assert a == Naming.studio_profile("platform_admin", long_a), "the same on every synth"


def test_two_principals_with_one_profile_name_are_refused():
    from stacks.config import Studio
    from stacks.constructs.studio_domain import StudioDomainProps, StudioUser

    same = [StudioUser("data_scientist", f"arn:aws:iam::111111111111:role/{path}/alice", "arn:role")
            for path in ("a", "b")]
    with pytest.raises(ValueError, match="same profile"):
        StudioDomainProps(name="mlops-dev-studio", settings=Studio(availability_zones=["eu-west-1a"]),
                          region="eu-west-1", kms_key_arn="arn:key", default_execution_role_arn="arn:role",
                          users=tuple(same))


def _write_env(tmp_path, studio: dict):
    import yaml

    from tests.conftest import ROOT

    data = yaml.safe_load((ROOT / "environments" / "dev.yaml").read_text())
    data["studio"] = studio
    path = tmp_path / "dev.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("studio, field, reason", [
    ({"enabled": True, "availability_zones": []}, "studio", "needs private subnets"),
    ({"availability_zones": ["us-east-1a"]}, "studio", "not in the region"),
    ({"availability_zones": ["eu-west-1a", "eu-west-1a"]}, "studio", "twice"),
    ({"vpc_cidr": "10.0.0.0/8", "availability_zones": ["eu-west-1a"]}, "studio.vpc_cidr", "/16 and /24"),
    ({"subnets": ["x"]}, "studio.subnets", "unknown setting"),
])
def test_bad_studio_settings_name_the_field(tmp_path, studio, field, reason):
    with pytest.raises(ConfigError) as err:
        load_environment(_write_env(tmp_path, studio))
    assert any(f == field and reason in r for _, f, r in err.value.problems), err.value.problems


def test_studio_can_be_switched_off(tmp_path):
    env = load_environment(_write_env(tmp_path, {"enabled": False}))
    assert env.studio.enabled is False


def _role_props(**overrides):
    from stacks.constructs.scoped_role import ScopedRoleProps

    principals = tuple(f"arn:aws:iam::111111111111:role/team/person-{i:02d}" for i in range(3))
    props = {"name": "mlops-dev-data-scientist", "description": "d", "path": "/mlops-dev/",
             "boundary_arn": "arn:b", "statements": ({"Sid": "S", "Effect": "Allow", "Action": "s3:GetObject",
                                                      "Resource": "*"},),
             "assumed_by_principals": principals,
             "session_tags": {p: {"studiouserid": p.rsplit("/", 1)[1]} for p in principals},
             "also_assumed_by_service": "sagemaker.amazonaws.com"}
    return ScopedRoleProps(**{**props, **overrides})


def test_session_tags_and_a_service_are_for_peoples_roles_only():
    with pytest.raises(ValueError, match="cannot assume it"):
        _role_props(session_tags={"arn:aws:iam::111111111111:user/stranger": {"studiouserid": "x"}})
    with pytest.raises(ValueError, match="for roles people assume"):
        _role_props(assumed_by_principals=(), assumed_by_service="sagemaker.amazonaws.com")


def test_a_trust_policy_past_iams_maximum_is_refused_at_synth(synth_all):
    from stacks.binding import cdktf
    from stacks.constructs.scoped_role import ScopedRole

    stack = cdktf.TerraformStack(cdktf.App(), "trust-size")
    ScopedRole(stack, "fits", _role_props())
    many = tuple(f"arn:aws:iam::111111111111:role/team/person-{i:02d}" for i in range(14))
    with pytest.raises(ValueError, match="exceeds IAM's maximum 4096"):
        ScopedRole(stack, "too_many", _role_props(
            assumed_by_principals=many, session_tags={p: {"studiouserid": p[-9:]} for p in many}))
