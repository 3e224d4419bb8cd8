"""What the control-loop handlers (gate, deploy, rollback, retrain) share.

Pure decisions (no I/O, tested without AWS):
    gate.py       the approval verdict (thresholds, regression, fairness, latency)
    history.py    deployment history: naming, what to deploy, what to roll back to
    promotion.py  the prod promotion rule
    retrain.py    retrain requests and the cooldown rule
Event and configuration models:
    events.py     Powertools Parser models of the EventBridge events, parse errors per record
    settings.py   environment variables (the table), parsed once per cold start
    tables.py     the DynamoDB table schemas the stack provisions
Acting (boto3):
    shell.py      the Lambda shell: SQS batch, idempotency, logs, metrics, audit + SNS
    dynamo.py     leases, deployment history, audit log
    serving.py    SageMaker registry, models, endpoint configs, endpoint
    errors.py     why a record fails

Imports nothing beyond the standard library, boto3, pydantic and Powertools (checked by
benchmarks/handlers.py).
"""
