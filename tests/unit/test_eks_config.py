"""The EKS settings of an environment file: off by default, validated like every other setting."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from stacks.config import EKS_OIDC_THUMBPRINT, ConfigError, Eks, load_environment, load_environments

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_files_keep_eks_off_except_dev():
    envs = load_environments(ROOT)
    assert {name for name, env in envs.items() if env.eks.enabled} == {"dev"}
    dev = envs["dev"].eks
    assert dev.public_endpoint is False and len(dev.availability_zones) >= 2
    assert Eks().enabled is False and Eks().oidc_thumbprint == EKS_OIDC_THUMBPRINT


def _load(tmp_path: Path, eks: dict, env: str = "dev") -> None:
    data = yaml.safe_load((ROOT / "environments" / f"{env}.yaml").read_text())
    data["eks"] = eks
    path = tmp_path / f"{env}.yaml"
    path.write_text(yaml.safe_dump(data))
    load_environment(path, tmp_path)


ZONES = ["eu-west-1a", "eu-west-1b"]
CASES = [
    ("one zone", {"enabled": True, "availability_zones": ["eu-west-1a"]}, "eks",
     "at least 2 availability zones"),
    ("no network", {"enabled": True}, "eks", "at least 2 availability zones"),
    ("zone of another region", {"enabled": True, "availability_zones": ["us-east-1a", "us-east-1b"]},
     "eks", "not in the region eu-west-1"),
    ("public without networks", {"enabled": True, "availability_zones": ZONES,
                                 "public_endpoint": True}, "eks", "needs public_access_cidrs"),
    ("public to the world", {"enabled": True, "availability_zones": ZONES, "public_endpoint": True,
                             "public_access_cidrs": ["0.0.0.0/0"]},
     "eks.public_access_cidrs", "name your networks"),
    ("cidrs without public", {"enabled": True, "availability_zones": ZONES,
                              "public_access_cidrs": ["203.0.113.0/24"]}, "eks", "public_endpoint"),
    ("host bits set", {"vpc_cidr": "10.40.1.0/16"}, "eks.vpc_cidr", "not a network address"),
    ("vpc too small", {"vpc_cidr": "10.40.0.0/28"}, "eks.vpc_cidr", "between /16 and /24"),
    ("subnets and zones", {"enabled": True, "availability_zones": ZONES,
                           "subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]},
     "eks", "not both"),
    ("bad subnet id", {"subnet_ids": ["sn-1"]}, "eks.subnet_ids[0]", "does not match"),
    ("node sizes", {"nodes": {"min_size": 3, "desired_size": 2, "max_size": 4}}, "eks.nodes",
     "min_size <= desired_size <= max_size"),
    ("bad namespace", {"serving_namespace": "Model_Serving"}, "eks.serving_namespace",
     "does not match"),
    ("bad thumbprint", {"oidc_thumbprint": "abc"}, "eks.oidc_thumbprint", "does not match"),
    ("typo", {"enabeld": True}, "eks.enabeld", "unknown setting"),
    ("version as number", {"kubernetes_version": 1.33}, "eks.kubernetes_version", "string"),
]


@pytest.mark.parametrize(("case", "eks", "field", "reason"), CASES, ids=[c[0] for c in CASES])
def test_bad_eks_settings_name_the_field(tmp_path, case, eks, field, reason):
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, eks)
    problems = {(f, r) for _, f, r in err.value.problems}
    assert any(f == field and reason in r for f, r in problems), problems


def test_existing_private_subnets_instead_of_a_vpc(tmp_path):
    _load(tmp_path, {"enabled": True, "subnet_ids": ["subnet-0123456789abcdef0",
                                                      "subnet-0123456789abcdef1"]})
