"""A control-loop function deployed to a local AWS as the project stack deploys it: the package
stacks/lambda_package.py builds, the layers its handler needs (the built layer zips, published
through S3 as the stack uploads them) and the functions' runtime. The local control plane then
runs exactly that (local_aws/lambda_code.py), as in the environments Terraform deploys."""

from __future__ import annotations

from typing import Any

from stacks.lambda_package import LAMBDAS_DIR, build_package
from stacks.layers import RUNTIME, built_layer, layers_for


def published_layer(server: Any, bucket: str, spec_name: str, path) -> str:
    """The layer's version ARN, published once per local AWS (its zip uploaded to `bucket`)."""
    lam, name = server.client("lambda"), f"mlops-tests-{spec_name}"
    versions = lam.list_layer_versions(LayerName=name).get("LayerVersions", [])
    if versions:
        return versions[0]["LayerVersionArn"]
    key = f"layers/{path.name}"
    server.client("s3").upload_file(str(path), bucket, key)
    return lam.publish_layer_version(LayerName=name, CompatibleRuntimes=[RUNTIME],
                                     Content={"S3Bucket": bucket, "S3Key": key})["LayerVersionArn"]


def deploy_function(server: Any, *, name: str, handler: str, role_arn: str, bucket: str,
                    environment: dict[str, str], timeout: int = 60, memory_mb: int = 256) -> str:
    """Creates the function; returns its ARN."""
    layers = [published_layer(server, bucket, spec.name, built_layer(spec)) for spec in layers_for(handler)]
    return server.client("lambda").create_function(
        FunctionName=name, Runtime=RUNTIME, Role=role_arn, Handler=f"lambdas.{handler}.handler.handler",
        Code={"ZipFile": build_package(LAMBDAS_DIR, handler)}, Layers=layers, Timeout=timeout,
        MemorySize=memory_mb, Environment={"Variables": environment},
    )["FunctionArn"]
