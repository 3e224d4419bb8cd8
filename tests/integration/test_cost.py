"""`mlops cost`: the inventory of what an environment runs, read from a moto server over HTTPS."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops.cost import inventory
from stacks.config import load_environment

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration

ROLE = "arn:aws:iam::123456789012:role/mlops-local/mlops-local-sagemaker-execution"


def endpoint(sm, name: str, instances: int, instance_type: str = "ml.m5.large") -> None:
    sm.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer={
        "Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops-local-inference:abc",
        "ModelDataUrl": "s3://mlops-local-artifacts/demo/model.tar.gz"})
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
        "VariantName": "primary", "ModelName": name, "InstanceType": instance_type,
        "InitialInstanceCount": instances}])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)


def test_the_inventory_lists_the_environments_endpoints_and_counts_instances(moto_server):
    sm = moto_server.client("sagemaker")
    endpoint(sm, "mlops-local-demo", 2)
    endpoint(sm, "mlops-local-fraud", 1, "ml.c5.xlarge")
    endpoint(sm, "someone-else", 4)  # not this environment's
    env = load_environment(ROOT / "environments" / "local.yaml")
    report = inventory(env, moto_server.client)
    assert [e["endpoint"] for e in report["endpoints"]] == ["mlops-local-demo", "mlops-local-fraud"]
    demo = report["endpoints"][0]["variants"]
    assert demo == [{"variant": "primary", "shadow": False, "instance_type": "ml.m5.large", "instances": 2}]
    assert report["instances_by_type"] == {"ml.c5.xlarge": 1, "ml.m5.large": 2}
    assert report["instances"] == 3 and report["jobs"] == [] and report["node_groups"] == []
