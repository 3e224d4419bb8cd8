"""Lambda code signing in the synthesized stacks: in every AWS environment each function runs under
an Enforce code-signing config that allows only the environment's Signer profile, and each function
and layer is created from the signed copy a signing job made of the very zip the stack built.
Local environments (the local AWS cannot sign) deploy unsigned zips and say so in their files."""

from __future__ import annotations

import re

import pytest

from stacks.config import ConfigError, load_environments
from stacks.constructs.code_signing import PLATFORM
from stacks.deployer_policy import deployer_statements, types_of
from stacks.lambda_package import build_package
from stacks.naming import Naming
from stacks.policy import listed, matches
from tests.conftest import ROOT

AWS_ENVIRONMENTS = ("dev", "staging", "prod")
REF = re.compile(r"^\$\{((?:data\.)?[a-z0-9_]+)\.([A-Za-z0-9_]+)\.(.+)\}$")


def ref(value: str) -> tuple[str, str, str]:
    match = REF.match(value)
    assert match, f"not a single Terraform reference: {value!r}"
    return match.group(1), match.group(2), match.group(3)


def signing_job_of(stack: dict, bucket: str, key: str) -> dict:
    """The signing job whose signed object the code (`bucket`, `key`) comes from."""
    (kind, name, attr), (kind2, name2, attr2) = ref(bucket), ref(key)
    assert (kind, attr) == ("aws_signer_signing_job", "signed_object[0].s3[0].bucket")
    assert (kind2, name2, attr2) == (kind, name, "signed_object[0].s3[0].key")
    return stack["resource"]["aws_signer_signing_job"][name]


def unsigned_object(stack: dict, job: dict) -> dict:
    """The uploaded object (that version of it) a signing job signs."""
    source = job["source"]["s3"]
    kind, name, attr = ref(source["version"])
    assert (kind, attr) == ("aws_s3_object", "version_id")
    obj = stack["resource"]["aws_s3_object"][name]
    assert source["bucket"] == f"${{aws_s3_object.{name}.bucket}}"
    assert source["key"] == f"${{aws_s3_object.{name}.key}}"
    return obj


@pytest.mark.parametrize("env_name", AWS_ENVIRONMENTS)
def test_the_platform_holds_the_environments_lambda_signing_profile(synth_all, environments, env_name):
    profiles = synth_all.json(f"platform-{env_name}")["resource"]["aws_signer_signing_profile"]
    (profile,) = profiles.values()
    assert profile["name"] == Naming.of(environments[env_name]).signing_profile
    assert re.fullmatch(r"[A-Za-z0-9_]{2,64}", profile["name"])  # Signer's rule for profile names
    assert profile["platform_id"] == PLATFORM == "AWSLambda-SHA384-ECDSA"
    assert profile["signature_validity_period"]["type"] == "MONTHS"
    assert 1 <= profile["signature_validity_period"]["value"] <= 135  # Signer's maximum


@pytest.mark.parametrize("env_name", AWS_ENVIRONMENTS)
def test_every_function_enforces_signed_code_of_the_environments_profile(synth_all, environments, env_name):
    stack = synth_all.json(f"project-demo-{env_name}")
    resources = stack["resource"]
    (config_id, config), = resources["aws_lambda_code_signing_config"].items()
    assert config["policies"] == {"untrusted_artifact_on_deployment": "Enforce"}
    (arn,) = config["allowed_publishers"]["signing_profile_version_arns"]
    kind, name, attr = ref(arn)
    assert (kind, attr) == ("data.aws_signer_signing_profile", "version_arn")
    profile_name = Naming.of(environments[env_name]).signing_profile
    assert stack["data"]["aws_signer_signing_profile"][name]["name"] == profile_name
    functions = resources["aws_lambda_function"]
    assert len(functions) == 6
    for function in functions.values():
        assert function["code_signing_config_arn"] == f"${{aws_lambda_code_signing_config.{config_id}.arn}}"
        assert "filename" not in function and "source_code_hash" not in function


@pytest.mark.parametrize("env_name", AWS_ENVIRONMENTS)
def test_every_function_and_layer_is_created_from_a_signed_copy_of_its_own_zip(synth_all, environments,
                                                                             env_name):
    stack_dir = synth_all.stacks[f"project-demo-{env_name}"]
    stack = synth_all.json(f"project-demo-{env_name}")
    resources = stack["resource"]
    n = Naming.of(environments[env_name])
    profile = n.signing_profile
    artifacts = n.bucket("artifacts")
    jobs_used = set()
    for function in resources["aws_lambda_function"].values():
        job = signing_job_of(stack, function["s3_bucket"], function["s3_key"])
        jobs_used.add(id(job))
        obj = unsigned_object(stack, job)
        handler = function["handler"].split(".")[1]
        # The zip signed is this build of the handler's package, uploaded SSE-KMS.
        assert (stack_dir / obj["source"]).read_bytes() == build_package(ROOT / "lambdas", handler)
        assert obj["key"] == f"demo/lambda-functions/{function['function_name']}.zip"
        assert obj["server_side_encryption"] == "aws:kms"
    for layer in resources["aws_lambda_layer_version"].values():
        assert "source_code_hash" not in layer
        job = signing_job_of(stack, layer["s3_bucket"], layer["s3_key"])
        jobs_used.add(id(job))
        obj = unsigned_object(stack, job)
        assert obj["key"].startswith("demo/lambda-layers/") and (stack_dir / obj["source"]).is_file()
    jobs = resources["aws_signer_signing_job"]
    assert len(jobs_used) == len(jobs) == 6 + 2  # one per function zip and per layer zip
    for job in jobs.values():
        assert job["profile_name"] == profile
        assert job["destination"] == {"s3": {"bucket": artifacts, "prefix": "demo/lambda-signed/"}}
        assert job["ignore_signing_job_failure"] is False
        assert unsigned_object(stack, job)["bucket"] == artifacts  # versioned, as Signer requires


@pytest.mark.parametrize("env_name", ["local", "localprod"])
def test_local_environments_deploy_unsigned_zips(synth_all, environments, env_name):
    assert environments[env_name].lambda_code_signing is False
    assert "aws_signer_signing_profile" not in synth_all.json(f"platform-{env_name}")["resource"]
    stack = synth_all.json(f"project-demo-{env_name}")
    assert "aws_signer_signing_job" not in stack["resource"]
    assert "aws_lambda_code_signing_config" not in stack["resource"]
    for function in stack["resource"]["aws_lambda_function"].values():
        assert "code_signing_config_arn" not in function and function["filename"].endswith(".zip")


def test_aws_environments_sign_and_a_local_one_cannot(environments, tmp_path):
    assert all(environments[name].lambda_code_signing for name in AWS_ENVIRONMENTS)
    folder = tmp_path / "environments"
    folder.mkdir()
    text = (ROOT / "environments" / "local.yaml").read_text()
    signing = text.replace("lambda_code_signing: false", "lambda_code_signing: true")
    (folder / "local.yaml").write_text(signing)
    with pytest.raises(ConfigError, match=r"local\.yaml: lambda_code_signing: .*cannot sign Lambda code"):
        load_environments(tmp_path)


def test_the_deployer_may_sign_with_the_environments_profile_only(synth_all, environments):
    env = environments["dev"]
    types, data = types_of([synth_all.json("platform-dev"), synth_all.json("project-demo-dev")])
    new = {"aws_signer_signing_profile", "aws_signer_signing_job", "aws_lambda_code_signing_config"}
    assert new <= set(types)
    statements = deployer_statements(env, types, data)
    n = Naming.of(env)

    def resources_for(action: str) -> list[str]:
        return [r for s in statements if s["Effect"] == "Allow" and action in listed(s["Action"])
                for r in listed(s["Resource"])]

    # every generation of the profile (lambda_signing_profile_generation), none of another environment
    profiles = [n.signing_profiles_arn_pattern, f"{n.signing_profiles_arn_pattern}/*"]
    assert resources_for("signer:StartSigningJob") == profiles
    assert resources_for("signer:PutSigningProfile") == profiles
    assert matches(profiles[0], n.signing_profile_arn)
    assert matches(profiles[0], Naming(n.prefix, n.account_id, n.region, 2).signing_profile_arn)
    assert not matches(profiles[0], Naming("mlops-devx", n.account_id, n.region).signing_profile_arn)
    assert resources_for("signer:DescribeSigningJob") == [n.arn("signer", "/signing-jobs/*")]
    assert n.arn("lambda", "code-signing-config:*") in resources_for("lambda:PutFunctionCodeSigningConfig")
    assert resources_for("s3:GetObjectVersion") == [f"{n.all_buckets_arn}/*"]
