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


def served_container(sagemaker: Any, endpoint: str) -> tuple[str, dict[str, Any]]:
    """The model the endpoint serves (its first production variant's) and its PrimaryContainer."""
    try:
        config = sagemaker.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
    except ClientError as exc:
        if "could not find endpoint" in str(exc).lower():
            raise NothingServed(f"endpoint {endpoint} does not exist") from None
        raise
    variants = sagemaker.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]
    model = variants[0]["ModelName"]
    return model, sagemaker.describe_model(ModelName=model).get("PrimaryContainer") or {}


def served_package(sagemaker: Any, endpoint: str) -> dict[str, Any]:
    """DescribeModelPackage of the package the endpoint serves; NothingServed says why not."""
    model, container = served_container(sagemaker, endpoint)
    arn = container.get("ModelPackageName")
    if not arn:
        raise NothingServed(f"endpoint {endpoint} serves {model}, made from no model package "
                            "(its bootstrap model)")
    return sagemaker.describe_model_package(ModelPackageName=arn)


def served_model_data_url(sagemaker: Any, endpoint: str) -> str:
    """The S3 URL of the model archive the endpoint serves: its package's, or (the bootstrap
    model, made from no package) the model's own."""
    model, container = served_container(sagemaker, endpoint)
    if container.get("ModelPackageName"):
        package = sagemaker.describe_model_package(ModelPackageName=container["ModelPackageName"])
        containers = (package.get("InferenceSpecification") or {}).get("Containers") or [{}]
        url = containers[0].get("ModelDataUrl")
    else:
        url = container.get("ModelDataUrl")
    if not url:
        raise NothingServed(f"endpoint {endpoint} serves {model}, which names no ModelDataUrl")
    return url


def variant_packages(sagemaker: Any, endpoint: str) -> dict[str, str | None]:
    """{"production": ARN, "shadow": ARN}: the package each variant of the endpoint's current
    config serves (None: no such variant, or a model made from no package). A shadow report
    names them, so a promotion can tell which package the shadow tested."""
    config = sagemaker.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
    described = sagemaker.describe_endpoint_config(EndpointConfigName=config)

    def package(variants: list[dict[str, Any]]) -> str | None:
        if not variants:
            return None
        container = sagemaker.describe_model(ModelName=variants[0]["ModelName"]).get("PrimaryContainer") or {}
        return container.get("ModelPackageName")

    return {"production": package(described.get("ProductionVariants") or []),
            "shadow": package(described.get("ShadowProductionVariants") or [])}
