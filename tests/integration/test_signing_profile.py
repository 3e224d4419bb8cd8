"""A deploy refuses, before Terraform, an environment whose Signer profile name is held by a
canceled profile (mlops/signing_profile.py), and the next generation names a new profile."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mlops.signing_profile import SigningProfileError, after_destroy, require_usable, unusable_status
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

    second = _generation(dev, 2)
    assert Naming.of(second).signing_profile == "mlops_dev_lambda_2"
    assert Naming.of(second).signing_profile_arn.endswith("/signing-profiles/mlops_dev_lambda_2")
    require_usable(second, signer)  # a new name: nothing holds it

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
