"""What an endpoint serves, walked as SageMaker records it: DescribeEndpoint -> its endpoint
config -> the first production variant's model -> the model package that model was created from.

The scheduled checks compare against the served model, not the newest approved one: after a
rollback, or while a newer package waits for its deployment, those differ.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError


class NothingServed(LookupError):
    """The endpoint does not exist, or serves a model made from no package (the bootstrap model)."""


def served_package(sagemaker: Any, endpoint: str) -> dict[str, Any]:
    """DescribeModelPackage of the package the endpoint serves; NothingServed says why not."""
    try:
        config = sagemaker.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
    except ClientError as exc:
        if "could not find endpoint" in str(exc).lower():
            raise NothingServed(f"endpoint {endpoint} does not exist") from None
        raise
    variants = sagemaker.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]
    model = variants[0]["ModelName"]
    container = sagemaker.describe_model(ModelName=model).get("PrimaryContainer") or {}
    arn = container.get("ModelPackageName")
    if not arn:
        raise NothingServed(f"endpoint {endpoint} serves {model}, made from no model package "
                            "(its bootstrap model)")
    return sagemaker.describe_model_package(ModelPackageName=arn)
