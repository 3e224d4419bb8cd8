"""The DynamoDB tables the control-loop handlers expect (lambdas/shared/control/dynamo.py reads
and writes these keys), as plain CreateTable-shaped dicts. Here, not in lambdas/: the stacks
provision them and import nothing from the code that runs in AWS.

The stack provisions exactly these (on-demand billing, KMS, point-in-time recovery are the
stack's choice); tests create them with `create_table_request(schema, name)`.

DEPLOYMENTS: one item per deployment or rollback of an endpoint.
    endpoint_name (S, hash), deployment_id (S, range); attributes: kind (deploy|rollback),
    status (STARTING, UPDATING|CREATING, BAKING, SERVING = known-good, ROLLED_BACK, FAILED),
    model_package_arn, model_package_version, previous_endpoint_config,
    previous_model_package_arn, new_endpoint_config, bad_model_package_arn (rollbacks),
    event_time (ISO-8601 UTC of the triggering state change), started_at, traffic_at,
    bake_until, known_good_at, outcome, updated_at.
AUDIT: one item per decision (gate verdict, deploy, rollback, retrain, refusal, no-op).
    subject (S, hash: the model package ARN, endpoint or pipeline), audit_id (S, range:
    "<event time>#<action>#<digest>", chronological and deterministic, so a retried decision
    finds its record and leaves the first one: records are only ever added); GSI by_action:
    action (S) + recorded_at (S).
IDEMPOTENCY: Powertools' DynamoDBPersistenceLayer defaults: id (S, hash); TTL on `expiration`.
LOCKS: endpoint leases ("endpoint#<name>") and the retrain cooldown ("retrain-cooldown#<pipeline>").
    lock_id (S, hash); attributes owner, expires_at (N, epoch seconds; TTL), purpose.
"""

from __future__ import annotations

from typing import Any

DEPLOYMENTS: dict[str, Any] = {
    "KeySchema": [
        {"AttributeName": "endpoint_name", "KeyType": "HASH"},
        {"AttributeName": "deployment_id", "KeyType": "RANGE"},
    ],
    "AttributeDefinitions": [
        {"AttributeName": "endpoint_name", "AttributeType": "S"},
        {"AttributeName": "deployment_id", "AttributeType": "S"},
    ],
    "TimeToLive": None,  # history is kept: rollback needs the last known-good config
}

AUDIT: dict[str, Any] = {
    "KeySchema": [
        {"AttributeName": "subject", "KeyType": "HASH"},
        {"AttributeName": "audit_id", "KeyType": "RANGE"},
    ],
    "AttributeDefinitions": [
        {"AttributeName": "subject", "AttributeType": "S"},
        {"AttributeName": "audit_id", "AttributeType": "S"},
        {"AttributeName": "action", "AttributeType": "S"},
        {"AttributeName": "recorded_at", "AttributeType": "S"},
    ],
    "GlobalSecondaryIndexes": [
        {
            "IndexName": "by_action",
            "KeySchema": [
                {"AttributeName": "action", "KeyType": "HASH"},
                {"AttributeName": "recorded_at", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }
    ],
    "TimeToLive": None,  # audit records are evidence: never expire them
}

IDEMPOTENCY: dict[str, Any] = {
    "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
    "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
    "TimeToLive": "expiration",
}

LOCKS: dict[str, Any] = {
    "KeySchema": [{"AttributeName": "lock_id", "KeyType": "HASH"}],
    "AttributeDefinitions": [{"AttributeName": "lock_id", "AttributeType": "S"}],
    "TimeToLive": "expires_at",
}

# Settings attribute holding each table's name -> its schema.
TABLES: dict[str, dict[str, Any]] = {
    "deployments_table": DEPLOYMENTS,
    "audit_table": AUDIT,
    "idempotency_table": IDEMPOTENCY,
    "locks_table": LOCKS,
}


def create_table_request(schema: dict[str, Any], name: str) -> dict[str, Any]:
    """CreateTable arguments for `schema` (on-demand); the TTL is a separate UpdateTimeToLive."""
    request = {key: value for key, value in schema.items() if key != "TimeToLive"}
    return {"TableName": name, "BillingMode": "PAY_PER_REQUEST", **request}
