"""What the control-loop handlers (gate, deploy, rollback, retrain) share.

Pure decisions (no I/O, tested without AWS):
    gate.py       the approval verdict (thresholds, regression, fairness, latency)
    history.py    deployment history: naming, what to deploy, what to roll back to
    provenance.py who created and approved a package: what the deploy handler may serve
    retrain.py    retrain requests and the cooldown rule
Event and configuration models:
    events.py     the EventBridge events as Powertools data classes, checked field by field
    settings.py   environment variables (the table), parsed once per cold start
Acting (boto3):
    shell.py      the Lambda shell: SQS batch, idempotency, logs, metrics, audit + SNS
    dynamo.py     leases, deployment history, audit log
    serving.py    SageMaker registry, models, endpoint configs, endpoint
    latency_baseline.py  the known-good model's p95 over its bake, published for the p95 alarm
    errors.py     why a record fails

Imports nothing beyond the standard library, boto3 and Powertools, and no pydantic: settings and
events are checked by lambdas/shared/checks.py (benchmarks/handlers.py checks the imports and
measures the cold start).
"""
