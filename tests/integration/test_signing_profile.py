"""A deploy refuses, before Terraform, an environment whose Signer profile name is held by a
canceled profile (mlops/signing_profile.py), and the next generation names a new profile."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mlops.signing_profile import (
    SigningProfileError,
    after_destroy,
    plan_warning,
    require_usable,
    unusable_status,
)
from stacks.config import Environment
from stacks.constructs.code_signing import PLATFORM
from stacks.naming import Naming


def _generation(env: Environment, generation: int) -> Environment:
    return env.model_copy(update={"lambda_signing_profile_generation": generation})


def test_a_canceled_profile_refuses_the_deploy_and_names_the_next_generation(moto_server, environments):
    dev = environments["dev"]
    signer = moto_server.client("signer")
    name = Naming.of(dev).signing_profile
    assert name == "mlops_dev_lambda"
    require_usable(dev, signer)  # no such profile yet: the platform stack makes it
    signer.put_signing_profile(profileName=name, platformId=PLATFORM)
    require_usable(dev, signer)  # Active: Terraform keeps it
    signer.cancel_signing_profile(profileName=name)  # what `mlops destroy dev` does through Terraform
    assert unusable_status(signer, name) == "Canceled"
    with pytest.raises(SigningProfileError) as refused:
        require_usable(dev, signer)
    message = str(refused.value)
    assert name in message and "Canceled" in message
    assert "lambda_signing_profile_generation: 2" in message and "environments/dev.yaml" in message
    assert "lambda_signing_profile_generation: 2" in after_destroy(dev)
    # `mlops plan` only warns (a plan applies nothing)
    warning = plan_warning(dev, signer)
    assert warning.startswith(f"an apply would be refused: the Lambda signing profile {name}")

    second = _generation(dev, 2)
    assert Naming.of(second).signing_profile == "mlops_dev_lambda_2"
    assert Naming.of(second).signing_profile_arn.endswith("/signing-profiles/mlops_dev_lambda_2")
    require_usable(second, signer)  # a new name: nothing holds it
    assert plan_warning(second, signer) is None

    # An environment that does not sign (the local ones) never asks
    unsigned = dev.model_copy(update={"lambda_code_signing": False})
    require_usable(unsigned, signer)
    assert after_destroy(unsigned) is None


def test_the_generation_is_a_small_positive_number(environments):
    data = environments["dev"].model_dump(mode="json", by_alias=True, exclude_none=True)
    for bad in (0, -1, 100, "two"):
        with pytest.raises(ValidationError, match="lambda_signing_profile_generation"):
            Environment.model_validate({**data, "lambda_signing_profile_generation": bad})
    third = Environment.model_validate({**data, "lambda_signing_profile_generation": 3})
    assert Naming.of(third).signing_profile == "mlops_dev_lambda_3"


def test_mlops_deploy_refuses_before_synth_and_terraform(sdk_to_moto, tmp_path, capsys):
    """The CLI in an AWS environment (its SDK sent to the local AWS, as AWS_ENDPOINT_URL sends
    any SDK): `mlops deploy dev` exits 1 with the reason, before synth and Terraform."""
    from mlops.cli import main

    signer = sdk_to_moto.client("signer", region="eu-west-1")  # dev's region
    signer.put_signing_profile(profileName="mlops_dev_lambda", platformId=PLATFORM)
    signer.cancel_signing_profile(profileName="mlops_dev_lambda")
    assert main(["deploy", "dev"]) == 1
    err = capsys.readouterr().err
    assert "error: the Lambda signing profile mlops_dev_lambda of dev is Canceled" in err
    assert "lambda_signing_profile_generation: 2" in err
    assert not (tmp_path / "cdktf.out").exists()  # nothing synthesized, nothing applied
