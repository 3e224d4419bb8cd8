"""Gate: decide on every model package registered in the project's group (PendingManualApproval).

Event: "SageMaker Model Package State Change", ModelApprovalStatus PendingManualApproval, our
group (others are ignored). Idempotency key: package ARN + status + the change's time.

1. DescribeModelPackage; a package no longer pending (someone already decided) is left alone.
   One not created by a pipeline execution of the project (or the approver persona: a drill's
   copy) is rejected (provenance.py), whatever its metrics say.
2. Its evaluation: the report the Evaluate step of the execution that registered it wrote in
   that execution's own output (PIPELINE_RUNS_URI/<pipeline_run_id>/evaluation/), never a URI the
   package names; when it cannot be read, the package's metadata (register.py wrote both). A
   promoted package (`promoted_from`): the report `mlops model promote` copied beside its archive
   (`<project>/promoted/<source group>/<version>/evaluation.json`, create-only), checked against
   its `evaluation_sha256`; never its metadata, which the promoter wrote (no usable report:
   nothing measured, the thresholds fail).
3. The production model: the package of the deployment record whose endpoint config the
   endpoint serves now (none: the first model, nothing to regress against), and its evaluation.
4. gate.decide (pure) -> UpdateModelPackage Approved/Rejected with the reasons as
   ApprovalDescription. In a production environment (PRODUCTION) a passing package stays
   PendingManualApproval: approving production packages is the approver role's (see
   provenance.py); the verdict is recorded for them.
5. Audit record with the verdict and every input; summary to the warning topic.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from lambdas.shared.control import events, gate, provenance
from lambdas.shared.control.history import serving_deployment
from lambdas.shared.control.settings import load_settings
from lambdas.shared.control.shell import ControlLoop, Invocation

loop = ControlLoop("gate", load_settings())
settings = loop.settings


def evaluation_of(package: dict[str, Any]) -> tuple[gate.Evaluation, str | None]:
    """The package's evaluation, and why its run's report could not be used (None if it was)."""
    promoted = provenance.promoted_report_uri(package, settings.trust)
    if promoted:
        return promoted_evaluation(package, promoted)
    run_id = provenance.pipeline_evaluation_run(package, settings.trust)
    problem = "the package was not registered by a pipeline execution (no run report)"
    if run_id:
        uri = settings.trust.report_uri(run_id)
        try:
            return gate.evaluation_from_report(loop.read_json(uri)), None
        except Exception as exc:  # any unreadable report: the metadata is the documented fallback
            problem = f"cannot use the evaluation report {uri}: {exc}"
    loop.logger.warning(
        f"{problem}; using the package metadata", extra={"package": package.get("ModelPackageArn")}
    )
    metadata = package.get("CustomerMetadataProperties") or {}
    return gate.evaluation_from_metadata(metadata, set(settings.gate.thresholds)), problem


def promoted_evaluation(package: dict[str, Any], uri: str) -> tuple[gate.Evaluation, str | None]:
    """A promoted package is judged by the report the promotion copied, never by its metadata,
    which the promoter wrote: without a usable report nothing is measured, and the gate's
    thresholds fail."""
    metadata = package.get("CustomerMetadataProperties") or {}
    try:
        return gate.evaluation_from_promoted_report(loop.read_bytes(uri),
                                                    metadata.get(gate.EVALUATION_SHA256)), None
    except Exception as exc:  # any unusable report: nothing measured (fail closed)
        problem = f"cannot use the promoted evaluation report {uri}: {exc}"
    loop.logger.warning(f"{problem}; nothing measured", extra={"package": package.get("ModelPackageArn")})
    return gate.UNMEASURED, problem


def production_package() -> str | None:
    endpoint = loop.sagemaker.endpoint()
    if not endpoint.exists:
        return None
    serving = serving_deployment(loop.history.list(settings.endpoint_name), endpoint.config)
    return serving.model_package_arn if serving else None


def act(event: events.ModelPackageStateChange, invocation: Invocation) -> dict[str, Any]:
    arn = event.package.arn
    common = {
        "action": "gate",
        "subject": arn,
        "changed_at": event.changed_at,
        "identity": events.package_identity(event),
    }
    package = loop.sagemaker.describe_package(arn)
    status = package.get("ModelApprovalStatus")
    if status != "PendingManualApproval":
        return loop.decide(
            **common,
            decision="skipped",
            summary=f"{arn} is {status} now: nothing to gate",
            reasons=[f"status is {status}"],
            inputs={"status": status},
            topic=None,
        )
    untrusted = provenance.creator_problems(package, settings.trust)
    if untrusted:
        description = gate.approval_description(gate.untrusted_verdict(untrusted))
        loop.sagemaker.set_approval(arn, "Rejected", description)
        return loop.decide(
            **common,
            decision="rejected",
            summary=f"{arn}: {description}",
            reasons=untrusted,
            inputs={"created_by": provenance.identity(package, "CreatedBy"), "event_id": event.get_id,
                    "metadata": package.get("CustomerMetadataProperties") or {}},
            topic=settings.critical_topic_arn,
        )

    candidate, candidate_problem = evaluation_of(package)
    production_arn = production_package()
    production = production_problem = None
    if production_arn and production_arn != arn:
        production, production_problem = evaluation_of(loop.sagemaker.describe_package(production_arn))
        if not production.metrics:
            production = None
    verdict = gate.decide(candidate, production, settings.gate, production_arn)
    description = gate.approval_description(verdict)

    if not verdict.approved:
        decision = "rejected"
        loop.sagemaker.set_approval(arn, "Rejected", description)
    elif settings.production:
        decision = "passed"  # the approver persona approves production packages
    else:
        decision = "approved"
        loop.sagemaker.set_approval(arn, "Approved", description)
    return loop.decide(
        **common,
        decision=decision,
        summary=f"{arn}: {description}",
        reasons=list(verdict.reasons),
        inputs={
            "candidate": asdict(candidate),
            "candidate_report_problem": candidate_problem,
            "production_package_arn": production_arn,
            "production": asdict(production) if production else None,
            "production_report_problem": production_problem,
            "gate_config": settings.gate.as_json(),
            "verdict": verdict.as_dict(),
            "metadata": package.get("CustomerMetadataProperties") or {},
            "event_id": event.get_id,
        },
        topic=settings.warning_topic_arn,
    )


handler = loop.lambda_handler(
    accept=lambda message_id, body: events.package_event(
        message_id, body, settings.model_package_group, "PendingManualApproval"
    ),
    identity=events.package_identity,
    act=act,
)
