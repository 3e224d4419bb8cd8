"""A create the provider repeated, on the local AWS: the object exists, the state does not know
it (the first response came after the provider's timeout, as CI saw with CreateTable and
CreateFunction on a loaded machine). The local apply adopts it and converges instead of failing
on "already exists" for ever. (That other failures still fail: tests/unit/test_terraform_output.py,
on what repeated_creates picks out of an apply's output.)"""

from __future__ import annotations

import json

import pytest

from mlops.deploy import Deployer
from mlops.terraform import Terraform
from stacks import moto_gaps

pytestmark = pytest.mark.integration


def _stack(tmp_path, url: str, table: dict) -> Terraform:
    (tmp_path / "main.tf.json").write_text(json.dumps({
        "terraform": {"required_providers": {"aws": {"source": "hashicorp/aws", "version": "5.100.0"}}},
        "provider": {"aws": [{
            "region": "us-east-1", "access_key": "test", "secret_key": "test",
            "max_retries": moto_gaps.PROVIDER_MAX_RETRIES,
            "skip_credentials_validation": True, "skip_requesting_account_id": True,
            "skip_metadata_api_check": True, "endpoints": [{"dynamodb": url, "sts": url}]}]},
        "resource": {"aws_dynamodb_table": {"locks": table}},
    }))
    return Terraform(tmp_path, "adoption", tmp_path.parent / "terraformrc", echo=False)


def test_an_object_the_state_lost_is_adopted_and_the_apply_converges(moto_server, tf_cli_config, tmp_path,
                                                                     capsys):
    table = {"name": "mlops-local-adopt-locks", "billing_mode": "PAY_PER_REQUEST", "hash_key": "lock_id",
             "attribute": [{"name": "lock_id", "type": "S"}],
             "ttl": {"attribute_name": "expires_at", "enabled": True}}
    moto_server.client("dynamodb").create_table(
        TableName=table["name"], BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "lock_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "lock_id", "AttributeType": "S"}])
    tf = _stack(tmp_path, moto_server.endpoint_url, table)
    tf.cli_config = tf_cli_config
    tf.init()
    Deployer._apply_local(tf, "adoption")  # its first apply fails on "Table already exists"
    assert "adopting mlops-local-adopt-locks and applying again" in capsys.readouterr().err
    assert tf.resources() == ["aws_dynamodb_table.locks"]
    changes, plan = tf.plan_changes()
    assert not changes, plan
    ttl = moto_server.client("dynamodb").describe_time_to_live(TableName=table["name"])
    assert ttl["TimeToLiveDescription"]["TimeToLiveStatus"] == "ENABLED"  # the config won
