"""The control-loop handlers' pure decisions and event parsing, without AWS."""

from __future__ import annotations

import hashlib
import importlib
import json
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lambdas.shared.control import events, gate, history, provenance, retrain
from lambdas.shared.control.errors import ConfigurationError, MalformedEventError, RetryLaterError
from lambdas.shared.control.serving import EndpointState
from lambdas.shared.control.settings import GateSettings, dummy_environment, load_settings
from stacks import control_tables as tables

EVENTS = Path(__file__).resolve().parents[1] / "fixtures" / "events"
GROUP = "mlops-dev-demo"
ARN = f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{GROUP}"


def fixture(name: str) -> str:
    return (EVENTS / name).read_text()


def config(**overrides) -> GateSettings:
    values = {
        "thresholds": {"accuracy": 0.90, "recall": 0.90, "mae": 5.0},
        "lower_is_better": ["mae"],
        "max_regression": 0.02,
        "max_fairness_gap": 0.25,
        "max_latency_p95_ms": 50,
    }
    return GateSettings.from_json({**values, **overrides})


def good(**overrides) -> gate.Evaluation:
    values = {
        "metrics": {"accuracy": 0.95, "recall": 0.94, "mae": 3.0},
        "latency_p95_ms": 2.4,
        "fairness_gap": 0.05,
        "fairness_within_bounds": True,
    }
    return gate.Evaluation(**{**values, **overrides})


# gate ---------------------------------------------------------------------------------------------


def test_gate_approves_a_first_model_that_meets_every_bound():
    verdict = gate.decide(good(), None, config())
    assert verdict.approved and verdict.reasons == ()
    assert {c.name for c in verdict.checks} == {
        "threshold:accuracy",
        "threshold:recall",
        "threshold:mae",
        "fairness",
        "latency",
    }
    assert "first deployment" in gate.approval_description(verdict)


def test_gate_thresholds_are_minimums_or_maximums_for_lower_is_better():
    verdict = gate.decide(good(metrics={"accuracy": 0.85, "recall": 0.90, "mae": 6.5}), None, config())
    assert not verdict.approved
    assert verdict.reasons == (
        "accuracy 0.85 is below the minimum 0.9",
        "mae 6.5 is above the maximum 5",
    )  # recall == threshold passes


def test_gate_rejects_a_missing_metric():
    verdict = gate.decide(good(metrics={"accuracy": 0.95, "mae": 1.0}), None, config())
    assert verdict.reasons == ("recall: not in the evaluation",)


def test_gate_regression_against_production_in_the_metrics_own_units():
    production = good(metrics={"accuracy": 0.97, "recall": 0.95, "mae": 2.0})
    candidate = good(metrics={"accuracy": 0.955, "recall": 0.92, "mae": 2.5})
    verdict = gate.decide(candidate, production, config(), f"{ARN}/1")
    assert not verdict.approved
    assert verdict.reasons == (
        "mae 2.5 is 0.5 worse than production's 2 (allowed 0.02)",
        "recall 0.92 is 0.03 worse than production's 0.95 (allowed 0.02)",
    )  # accuracy drops 0.015 <= 0.02: allowed
    assert verdict.baseline_package_arn == f"{ARN}/1"


def test_gate_approves_a_model_no_worse_than_production():
    production = good(metrics={"accuracy": 0.94, "recall": 0.93, "mae": 3.5})
    verdict = gate.decide(good(), production, config(), f"{ARN}/1")
    assert verdict.approved
    assert f"production model {ARN}/1" in gate.approval_description(verdict)


def test_gate_rejects_when_production_cannot_be_compared():
    verdict = gate.decide(good(), None, config(), f"{ARN}/1")
    assert verdict.reasons == (
        f"cannot compare with the production model {ARN}/1: its evaluation is unavailable",
    )


def test_gate_fairness_gap_must_be_measured_and_within_bounds():
    assert gate.decide(good(fairness_gap=0.3), None, config()).reasons == ("fairness gap 0.3 exceeds 0.25",)
    assert gate.decide(good(fairness_gap=None), None, config()).reasons == ("fairness gap not measured",)
    flagged = gate.decide(good(fairness_within_bounds=False), None, config())
    assert flagged.reasons == ("the evaluation flagged the fairness gap as out of bounds",)
    assert gate.decide(good(fairness_gap=None), None, config(max_fairness_gap=None)).approved


def test_gate_latency_bound():
    assert gate.decide(good(latency_p95_ms=80.0), None, config()).reasons == (
        "p95 latency 80 ms exceeds 50 ms",
    )
    assert gate.decide(good(latency_p95_ms=None), None, config()).reasons == ("p95 latency not measured",)
    assert gate.decide(good(latency_p95_ms=None), None, config(max_latency_p95_ms=None)).approved


def test_gate_lists_every_reason_and_truncates_the_description_to_the_api_limit():
    bad = good(metrics={"accuracy": 0.5, "recall": 0.5, "mae": 9.0}, latency_p95_ms=99.0, fairness_gap=0.9)
    verdict = gate.decide(bad, None, config())
    assert len(verdict.reasons) == 5
    text = gate.approval_description(verdict)
    assert text.startswith("gate: rejected: ") and all(r in text for r in verdict.reasons)
    long = gate.decide(
        good(metrics={f"m{i}": 0.0 for i in range(200)}),
        None,
        config(thresholds={f"m{i}": 1.0 for i in range(200)}, lower_is_better=[]),
    )
    cut = gate.approval_description(long)
    assert len(cut) == gate.DESCRIPTION_MAX and cut.endswith(gate.TRUNCATED)


def test_evaluation_from_the_evaluate_step_report_and_from_register_metadata():
    report = {
        "binary_classification_metrics": {"accuracy": {"value": 0.96, "standard_deviation": "NaN"}},
        "task": "classification",
        "metrics": {"accuracy": 0.964912, "recall": 0.953488, "roc_auc": 0.993386},
        "latency_ms": {"p50": 1.2, "p95": 2.41, "n": 200},
        "fairness": {
            "attribute": "mean_radius",
            "metric": "recall",
            "groups": {},
            "gap": 0.046512,
            "max_gap": 0.25,
            "within_bounds": True,
        },
    }
    ev = gate.evaluation_from_report(report)
    assert ev == gate.Evaluation(
        {"accuracy": 0.964912, "recall": 0.953488, "roc_auc": 0.993386}, 2.41, 0.046512, True, "report"
    )
    assert (
        gate.evaluation_from_report({**report, "fairness": None, "latency_ms": {"p95": None}}).fairness_gap
        is None
    )
    with pytest.raises(ValueError, match="metrics"):
        gate.evaluation_from_report({"task": "classification"})
    metadata = json.loads(fixture("model_package_pending.json"))["detail"]["CustomerMetadataProperties"]
    from_metadata = gate.evaluation_from_metadata(
        {**metadata, "metric_mae": "3.5"}, {"accuracy", "recall", "mae"}
    )
    assert from_metadata.metrics == {"accuracy": 0.964912, "recall": 0.953488, "mae": 3.5}
    assert (from_metadata.latency_p95_ms, from_metadata.fairness_gap, from_metadata.source) == (
        2.41,
        0.046512,
        "metadata",
    )


# deployment history -------------------------------------------------------------------------------

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def deployment(
    n: int,
    *,
    previous: str | None,
    minute: int,
    kind: str = "deploy",
    status: str = "UPDATING",
    previous_package: str | None = None,
) -> history.Deployment:
    name = f"ep-v{n}"
    return history.Deployment(
        endpoint_name="ep",
        deployment_id=f"{kind}#{minute}#{name}",
        kind=kind,
        status=status,
        model_package_arn=f"{ARN}/{n}",
        new_endpoint_config=name,
        previous_endpoint_config=previous,
        previous_model_package_arn=previous_package,
        event_time=history.iso(T0.replace(minute=minute)),
        started_at=history.iso(T0.replace(minute=minute, second=5)),
        model_package_version=n,
    )


def test_resource_names_are_deterministic_valid_and_scoped_to_the_endpoint():
    name = history.resource_name("mlops-dev-demo", f"{ARN}/3", 3)
    assert name == history.resource_name("mlops-dev-demo", f"{ARN}/3", 3)
    assert name.startswith("mlops-dev-demo-v3-") and name != history.resource_name(
        "mlops-dev-demo", f"{ARN}/4", 4
    )
    long = history.resource_name("e" * 53, f"{ARN}/123456", 123456)
    assert len(long) <= 63 and long.startswith("e" * 40)
    changed = datetime(2026, 3, 2, 10, 21, 44, tzinfo=UTC)
    assert history.deployment_id("deploy", name, changed) == f"deploy#20260302T102144.000000Z#{name}"


def test_deploy_decision_deploys_reuses_and_refuses_stale_approvals():
    records = [deployment(1, previous="ep-bootstrap", minute=10)]
    at = history.iso(T0.replace(minute=20))
    assert history.deploy_decision(records, "deploy#20#ep-v2", "ep-v2", at, "ep-v1", None).action == "deploy"
    assert history.deploy_decision(records, "x", "ep-v1", at, "ep-v1", None).action == "already-deployed"
    assert history.deploy_decision(records, "x", "ep-v2", at, "ep-v1", "ep-v2").action == "already-deployed"
    # v2 approved at :20 was deployed; v1's approval (:05) arrives late: it must not come back.
    newer = [*records, deployment(2, previous="ep-v1", minute=20)]
    late = history.deploy_decision(
        newer, "deploy#5#ep-v0", "ep-v0", history.iso(T0.replace(minute=5)), "ep-v2", None
    )
    assert late.action == "superseded" and "deploy#20#ep-v2" in late.reason
    # A rollback at :30 supersedes an approval from :25 delivered after it.
    rolled = [*newer, deployment(1, previous="ep-v2", minute=30, kind="rollback")]
    stale = history.deploy_decision(rolled, "d3", "ep-v3", history.iso(T0.replace(minute=25)), "ep-v1", None)
    assert stale.action == "superseded"
    # FAILED records never supersede anything; the retry of the same change finds its own record.
    failed = [*records, deployment(5, previous="ep-v1", minute=40, status="FAILED")]
    retry = history.deploy_decision(
        failed, failed[1].deployment_id, "ep-v5", failed[1].event_time, "ep-v1", None
    )
    assert retry.action == "deploy" and retry.existing == failed[1]


def test_serving_deployment_is_the_newest_record_of_the_served_config():
    records = [deployment(1, previous="ep-bootstrap", minute=10), deployment(2, previous="ep-v1", minute=20)]
    assert history.serving_deployment(records, "ep-v2") == records[1]
    assert history.serving_deployment(records, "ep-v1") == records[0]  # v2's canary rolled back
    assert history.serving_deployment(records, "ep-bootstrap") is None
    assert history.serving_deployment(records, None) is None


def at(minute: int, second: int = 0) -> str:
    return history.iso(T0.replace(minute=minute, second=second))


def baked(record: history.Deployment, minute: int) -> history.Deployment:
    return replace(record, status=history.SERVING, traffic_at=record.started_at, known_good_at=at(minute))


def test_rollback_restores_the_newest_known_good_deployment_never_the_bootstrap():
    v1 = baked(deployment(1, previous="ep-bootstrap", minute=10), 12)
    v2 = replace(deployment(2, previous="ep-v1", minute=20), status=history.ROLLED_BACK)  # canary caught
    v3 = baked(deployment(3, previous="ep-v1", minute=30), 32)
    plan = history.rollback_decision([v1, v2, v3], "ep-v3", at(40))
    assert (plan.action, plan.target_config, plan.target_package_arn) == ("rollback", "ep-v1", f"{ARN}/1")
    assert plan.bad == v3
    # Only v1 deployed, and baked: nothing known-good before it; the bootstrap is never a target.
    only = history.rollback_decision([v1], "ep-v1", at(40))
    assert (only.action, only.target, only.bad) == ("no-known-good", None, v1)
    assert history.rollback_decision([], "ep-bootstrap", at(40)).action == "no-known-good"
    failed = [deployment(1, previous="ep-bootstrap", minute=10, status="FAILED")]
    assert history.rollback_decision(failed, "ep-bootstrap", at(40)).action == "no-known-good"


def test_a_deployment_still_baking_is_no_rollback_target():
    v1 = baked(deployment(1, previous="ep-bootstrap", minute=10), 12)
    v2 = replace(deployment(2, previous="ep-v1", minute=20), status=history.BAKING, traffic_at=at(21))
    v3 = replace(deployment(3, previous="ep-v2", minute=30), status=history.BAKING, traffic_at=at(31))
    assert history.rollback_decision([v1, v2, v3], "ep-v3", at(35)).target == v1
    # A create's bake ends by time: known-good once bake_until has passed before the alarm.
    v2_created = replace(v2, bake_until=at(25))
    assert history.rollback_decision([v1, v2_created, v3], "ep-v3", at(35)).target == v2_created
    assert history.rollback_decision([v1, v2_created], "ep-v2", at(24)).target == v1


def test_rollback_blames_only_a_deployment_that_took_traffic_before_the_alarm():
    v1 = baked(deployment(1, previous="ep-bootstrap", minute=10), 12)
    v2 = replace(deployment(2, previous="ep-v1", minute=20), status=history.BAKING, traffic_at=at(21))
    late = history.rollback_decision([v1, v2], "ep-v2", at(20, 30))
    assert late.action == "not-blamed" and late.target is None
    assert history.rollback_decision([v1, v2], "ep-v2", at(22)).action == "rollback"


def test_an_alarm_sagemaker_already_answered_blames_nobody_else():
    """The alarm fired during v3's canary; SageMaker's auto-rollback put v2 back (v3 ROLLED_BACK)
    before the rollback handler's retry: v2, known-good, must not be blamed for it."""
    v1 = baked(deployment(1, previous="ep-bootstrap", minute=10), 12)
    v2 = baked(deployment(2, previous="ep-v1", minute=20), 22)
    v3 = replace(deployment(3, previous="ep-v2", minute=30), status=history.ROLLED_BACK,
                 traffic_at=at(31), ended_at=at(33))
    plan = history.rollback_decision([v1, v2, v3], "ep-v2", at(32))
    assert plan.action == "already-restored" and plan.bad is None
    # A switch that failed after v3 was blamed: the retry still restores the known-good.
    blamed = replace(v3, ended_at=at(34))
    retry = history.rollback_decision([v1, v2, blamed], "ep-v3", at(32))
    assert (retry.action, retry.target) == ("rollback", v2)


def test_an_alarm_during_a_canary_is_the_guardrails_and_never_blames_what_served_before():
    """v4's canary bakes (the endpoint still names v2's config) when the error-rate alarm fires.
    Whether the handler sees the event during the update or on its retry after SageMaker put v2
    back, v2 (known-good) is not blamed and nothing is rolled back to v1."""
    v1 = baked(deployment(1, previous="ep-bootstrap", minute=10), 12)
    v2 = baked(deployment(2, previous="ep-v1", minute=20), 22)
    v4 = deployment(4, previous="ep-v2", minute=30)  # UPDATING: its Baking event not handled yet
    during = history.rollback_decision([v1, v2, v4], "ep-v2", at(31))
    assert (during.action, during.target, during.bad) == ("left-to-guardrails", None, v4)
    baking = replace(v4, status=history.BAKING, traffic_at=at(30, 20))
    assert history.rollback_decision([v1, v2, baking], "ep-v2", at(31)).action == "left-to-guardrails"
    caught = replace(baking, status=history.ROLLED_BACK, ended_at=at(31, 30))
    after = history.rollback_decision([v1, v2, caught], "ep-v2", at(31))
    assert (after.action, after.target) == ("already-restored", None)
    # An alarm long after the canary ended is about what serves: v2, rolled back to v1.
    assert history.rollback_decision([v1, v2, caught], "ep-v2", at(45)).target == v1
    # An update that started after the alarm is not what the alarm was about.
    assert history.rollback_decision([v1, v2, v4], "ep-v2", at(29)).target == v1
    # An alarm the guardrails do not watch (the accuracy drop) is nobody's to leave: judged on
    # what served when it fired. v4 took traffic then and no longer serves: already answered.
    unwatched = history.rollback_decision([v1, v2, baking], "ep-v2", at(31), guarded=False)
    assert unwatched.action == "already-restored" and v4.deployment_id in unwatched.reason
    # v4 never took traffic: the drop began under v2, which still serves: back to v1.
    assert history.rollback_decision([v1, v2, v4], "ep-v2", at(31), guarded=False).target == v1


def test_an_update_still_launching_its_fleet_serves_nothing():
    v1 = baked(deployment(1, previous="ep-bootstrap", minute=10), 12)
    v2 = deployment(2, previous="ep-v1", minute=20)  # UPDATING, no Baking event yet
    assert history.served_at([v1, v2], at(25)) == v1
    assert history.served_at([v1, replace(v2, traffic_at=at(21))], at(25)).new_endpoint_config == "ep-v2"


def test_after_a_rollback_the_restored_model_is_not_rolled_back_further():
    v1 = baked(deployment(1, previous="ep-bootstrap", minute=10), 12)
    v2 = baked(deployment(2, previous="ep-v1", minute=20), 22)
    v3 = replace(deployment(3, previous="ep-v2", minute=30), status=history.ROLLED_BACK)
    restored = replace(deployment(2, previous="ep-v3", minute=40, kind="rollback"),
                       status=history.SERVING, traffic_at=at(40, 10))
    records = [v1, v2, v3, restored]
    assert history.rollback_decision(records, "ep-v2", at(40, 5)).action == "already-restored"
    assert history.rollback_decision(records, "ep-v2", at(50)).action == "keep-known-good"


def test_an_accuracy_drop_is_the_models_unless_a_whole_window_of_it_was_healthy():
    v1 = baked(deployment(1, previous="ep-bootstrap", minute=10), 12)
    v2 = replace(baked(deployment(2, previous="ep-v1", minute=20), 25), traffic_at=at(21))
    assert history.accuracy_drop_cause([v1, v2], at(50), [], 10).cause == "model-changed"
    # A healthy window that began before v2 took traffic holds v1's predictions: no alibi for v2.
    assert history.accuracy_drop_cause([v1, v2], at(50), [at(28)], 10).cause == "model-changed"
    healthy = history.accuracy_drop_cause([v1, v2], at(50), [at(35)], 10)
    assert healthy.cause == "concept-drift" and healthy.deployment == v2
    # The answer is the same after the rollback handler wrote its record (both handlers agree).
    restored = replace(deployment(1, previous="ep-v2", minute=51, kind="rollback"), status=history.SERVING)
    assert history.accuracy_drop_cause([v1, v2, restored], at(50), [], 10).cause == "model-changed"


def change(status: str, config: str, minute: int, **kw) -> history.EndpointChange:
    return history.EndpointChange(at=at(minute), status=status, config=config, **kw)


def test_a_blue_green_deployment_bakes_then_becomes_known_good():
    v2 = deployment(2, previous="ep-v1", minute=20)  # UPDATING
    baking = change("UPDATING", "ep-v1", 21, pending_config="ep-v2", stage="Baking")
    move = history.track_decision([v2], baking, bake_seconds=0)
    assert (move.status, move.changes) == (history.BAKING, {"traffic_at": at(21)})
    v2 = replace(v2, status=history.BAKING, traffic_at=at(21))
    assert history.track_decision([v2], baking, 0) is None  # a duplicate changes nothing
    done = history.track_decision([v2], change("IN_SERVICE", "ep-v2", 25), 0)
    assert done.status == history.SERVING and done.changes == {"traffic_at": at(21), "known_good_at": at(25)}
    # An event from before the deployment started (a late one of the previous) moves nothing.
    assert history.track_decision([v2], change("IN_SERVICE", "ep-v1", 19), 0) is None


def test_sagemakers_rollback_marks_the_deployment_rolled_back_whatever_the_event_order():
    v2 = replace(deployment(2, previous="ep-v1", minute=20), status=history.BAKING, traffic_at=at(21))
    back = change("IN_SERVICE", "ep-v1", 22, failure_reason="Deployment of ep-v2 rolled back: alarm x")
    move = history.track_decision([v2], back, 0)
    assert move.status == history.ROLLED_BACK and "alarm x" in move.changes["outcome"]
    # The Baking event not seen yet (events come out of order): rolled back all the same.
    never = history.track_decision([deployment(2, previous="ep-v1", minute=20)], back, 0)
    assert never.status == history.ROLLED_BACK and "no Baking event seen" in never.reason


def test_a_created_endpoints_timed_bake_hides_no_later_rollback():
    created = replace(deployment(1, previous=None, minute=10, status=history.BAKING),
                      traffic_at=at(11), bake_until=at(13))
    v2 = replace(deployment(2, previous="ep-v1", minute=20), status=history.BAKING, traffic_at=at(21))
    back = history.track_decision([created, v2], change("IN_SERVICE", "ep-v1", 22), 0)
    assert (back.record, back.status) == (v2, history.ROLLED_BACK)
    # Any later event writes the create's bake down as known-good.
    noted = history.track_decision([created], change("UPDATING", "ep-v1", 14), 0)
    assert (noted.record, noted.status) == (created, history.SERVING)
    assert noted.changes == {"known_good_at": at(13)}


def test_a_create_bakes_for_bake_seconds_and_a_rollback_record_serves_at_once():
    created = deployment(1, previous=None, minute=10, status=history.CREATING)
    move = history.track_decision([created], change("IN_SERVICE", "ep-v1", 11), bake_seconds=120)
    assert move.status == history.BAKING and move.changes["bake_until"] == at(13)
    assert history.track_decision([created], change("IN_SERVICE", "ep-v1", 11), 0).status == history.SERVING
    failed = history.track_decision([created], change("FAILED", "ep-v1", 11, failure_reason="no image"), 0)
    assert (failed.status, failed.changes) == (history.FAILED, {"outcome": "no image", "ended_at": at(11)})
    rollback = deployment(1, previous="ep-v2", minute=30, kind="rollback")
    restored = history.track_decision([rollback], change("IN_SERVICE", "ep-v1", 31), 120)
    assert restored.status == history.SERVING


def test_only_an_in_service_endpoint_is_switched():
    EndpointState(True, "InService", "ep-v1").require_updatable("ep")
    for status in ("Creating", "Updating", "SystemUpdating", "RollingBack", "Failed", "OutOfService"):
        with pytest.raises(RetryLaterError, match=f"endpoint ep is {status}"):
            EndpointState(True, status, "ep-v1", "ep-v2").require_updatable("ep")


# retrain, provenance ------------------------------------------------------------------------------


def test_retrain_cooldown_and_request():
    assert not retrain.cooldown_active(None, 1000.0)
    assert retrain.cooldown_active(1001.0, 1000.0) and not retrain.cooldown_active(1000.0, 1000.0)
    assert retrain.cooldown_expires_at(1000.0, 360) == 1000 + 360 * 60
    assert retrain.cooldown_expires_at(1000.0, 0) == 1060  # still absorbs one burst
    request = retrain.retrain_request(
        "mlops-dev-demo drift/alarm", "2026-03-02T12:30:12.402+0000", "3 features"
    )
    assert request.display_name == "retrain-mlops-dev-demo-drift-alarm"
    assert (
        "mlops-dev-demo drift/alarm went to ALARM at 2026-03-02T12:30:12.402+0000: 3 features"
        in request.description
    )
    assert len(request.client_token) == 32
    assert request == retrain.retrain_request(
        "mlops-dev-demo drift/alarm", "2026-03-02T12:30:12.402+0000", "3 features"
    )
    assert len(retrain.retrain_request("x" * 200, "t", "r").display_name) <= retrain.DISPLAY_NAME_MAX
    assert retrain.cooldown_lock_id("p") == "retrain-cooldown#p"


ACCOUNT_ID = "123456789012"
RUNS = f"s3://mlops-prod-artifacts-{ACCOUNT_ID}/demo/runs/"
ROLES = provenance.Trust(
    pipeline=f"arn:aws:iam::{ACCOUNT_ID}:role/mlops-prod/mlops-prod-demo-execution",
    gate=f"arn:aws:iam::{ACCOUNT_ID}:role/mlops-prod/mlops-prod-demo-gate",
    approver=f"arn:aws:iam::{ACCOUNT_ID}:role/mlops-prod/mlops-prod-ml-engineer",
    runs_uri=RUNS,
)
PIPELINE_JOB = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/mlops-prod-demo-execution/SageMaker"
GATE_SESSION = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/mlops-prod-demo-gate/mlops-prod-demo-gate"
APPROVER_SESSION = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/mlops-prod-ml-engineer/alice"
SCIENTIST = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/mlops-prod-data-scientist/bob"
# The promotion source: staging's group, in staging's own account.
STAGING_ACCOUNT = "210987654321"
STAGING_GROUP = f"arn:aws:sagemaker:us-east-1:{STAGING_ACCOUNT}:model-package-group/mlops-staging-demo"
STAGING = f"arn:aws:sagemaker:us-east-1:{STAGING_ACCOUNT}:model-package/mlops-staging-demo/7"
# Where `mlops model promote` copied version 7's archive in production.
PROMOTED_MODEL = f"s3://mlops-prod-artifacts-{ACCOUNT_ID}/demo/promoted/mlops-staging-demo/7/model.tar.gz"


# The persons behind the sessions (their STS source identities): production's four eyes.
PERSONS = ("alice", "carol")


def package(created_by=PIPELINE_JOB, approved_by=GATE_SESSION, model=f"{RUNS}9tz4xz3wfo0c/model/out.tar.gz",
            persons=(None, None), **metadata):
    described = {"CustomerMetadataProperties": {"pipeline_run_id": "9tz4xz3wfo0c", **metadata},
                 "InferenceSpecification": {"Containers": [{"Image": "x", "ModelDataUrl": model}]}}
    for field, arn, person in zip(("CreatedBy", "LastModifiedBy"), (created_by, approved_by), persons,
                                  strict=True):
        if arn:
            described[field] = {"IamIdentity": {"Arn": arn, "PrincipalId": "AROAEXAMPLE:session"}
                                | ({"SourceIdentity": person} if person else {})}
    return described


def test_outside_production_a_pipeline_package_approved_by_the_gate_or_the_approver_is_served():
    assert provenance.provenance_problems(False, package(), ROLES, None) == []
    assert provenance.provenance_problems(False, package(approved_by=APPROVER_SESSION), ROLES, None) == []
    # A drill's copy: registered and approved by the approver persona.
    drill = package(created_by=APPROVER_SESSION, approved_by=GATE_SESSION)
    assert provenance.provenance_problems(False, drill, ROLES, None) == []


def test_a_package_registered_or_approved_by_anyone_else_is_refused():
    forged = package(created_by=SCIENTIST)
    assert provenance.provenance_problems(False, forged, ROLES, None) == [
        f"created by {SCIENTIST}, not by a pipeline execution of the project ({ROLES.pipeline})"]
    self_approved = package(approved_by=SCIENTIST)
    assert provenance.provenance_problems(False, self_approved, ROLES, None) == [
        f"approved by {SCIENTIST}, not by {ROLES.gate} or {ROLES.approver}"]
    no_run = package()
    no_run["CustomerMetadataProperties"]["pipeline_run_id"] = "../../workspace/forged"
    assert "without a valid pipeline_run_id" in provenance.creator_problems(no_run, ROLES)[0]
    # A good run's id on a model from elsewhere: the run's report is not about this model.
    foreign = package(model="s3://elsewhere/model.tar.gz")
    assert provenance.creator_problems(foreign, ROLES) == [
        "the model data s3://elsewhere/model.tar.gz is not an output of pipeline execution 9tz4xz3wfo0c "
        f"({RUNS}9tz4xz3wfo0c/)"]
    anonymous = package(created_by=None, approved_by=None)
    assert provenance.provenance_problems(False, anonymous, ROLES, None) == [
        "the package does not say who created it (CreatedBy has no IAM identity)",
        "the package does not say who approved it (LastModifiedBy has no IAM identity)"]
    # Another account's role of the same name, a role whose name only starts the same.
    other_account = PIPELINE_JOB.replace(ACCOUNT_ID, "210987654321")
    lookalike = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/mlops-prod-ml-engineer-x/eve"
    assert provenance.creator_problems(package(created_by=other_account), ROLES)
    assert not provenance.is_session_of(lookalike, ROLES.approver)
    assert provenance.is_session_of(ROLES.approver, ROLES.approver)


def test_production_serves_only_promoted_packages_approved_by_the_approver():
    other_approver = APPROVER_SESSION.replace("/alice", "/carol")
    promoted = package(created_by=APPROVER_SESSION, approved_by=other_approver, promoted_from=STAGING,
                       model=PROMOTED_MODEL, persons=PERSONS)
    assert provenance.provenance_problems(True, promoted, ROLES, STAGING_GROUP) == []
    gate_approved = package(created_by=APPROVER_SESSION, approved_by=GATE_SESSION, promoted_from=STAGING,
                            model=PROMOTED_MODEL, persons=PERSONS)
    assert provenance.provenance_problems(True, gate_approved, ROLES, STAGING_GROUP) == [
        f"approved by {GATE_SESSION}, not by {ROLES.approver}"]

    def problems(**metadata):
        return provenance.promotion_problems(True, metadata, STAGING_GROUP)

    assert problems() == [
        "production packages must carry metadata promoted_from (the source environment's package ARN)"]
    assert "not a versioned model package ARN" in problems(promoted_from="staging-7")[0]
    assert "not a versioned model package ARN" in problems(promoted_from=STAGING_GROUP)[0]
    other = STAGING.replace("mlops-staging-demo", "mlops-dev-demo")
    assert problems(promoted_from=other) == [
        f"promoted_from {other} is not a package of the promotion source group {STAGING_GROUP}"]
    assert problems(promoted_from=STAGING.replace("mlops-staging-demo", "MLOps-Staging-Demo")) == []
    assert provenance.promotion_problems(False, {}, None) == []
    # Fail closed: production without a valid source group serves nothing.
    assert "not a model package group ARN" in provenance.promotion_problems(
        True, {"promoted_from": STAGING}, None)[0]


def test_production_four_eyes_compares_persons_not_session_names():
    """The promoter and the approver are both sessions of the ML engineer role, named as the
    caller likes: one person with two session names is one person (their source identity)."""
    carol_session = APPROVER_SESSION.replace("/alice", "/carol")

    def problems(created_by, approved_by, persons):
        promoted = package(created_by=created_by, approved_by=approved_by, promoted_from=STAGING,
                           model=PROMOTED_MODEL, persons=persons)
        return provenance.approval_problems(True, promoted, ROLES)

    assert problems(APPROVER_SESSION, carol_session, ("alice", "carol")) == []
    # Two session names, one person.
    assert problems(APPROVER_SESSION, carol_session, ("alice", "alice")) == [
        f"created and approved by the same person (alice, sessions {APPROVER_SESSION} and {carol_session}): "
        "production needs another person to approve"]
    # The same session too (what the session-name check caught before).
    assert problems(APPROVER_SESSION, APPROVER_SESSION, ("alice", "alice"))[0].startswith(
        "created and approved by the same person (alice")
    # No person known: refused, whoever the sessions are.
    assert problems(APPROVER_SESSION, carol_session, (None, "carol")) == [
        f"its creator ({APPROVER_SESSION}) has no source identity: production tells persons apart by "
        "the STS source identity of their sessions (assume the persona role with SourceIdentity)"]
    assert problems(APPROVER_SESSION, carol_session, (None, None)) == [
        f"its creator ({APPROVER_SESSION}) has no source identity; its approver ({carol_session}) has no "
        "source identity: production tells persons apart by the STS source identity of their sessions "
        "(assume the persona role with SourceIdentity)"]
    # Outside production the session check stays, and a known person counts too.
    drill = package(created_by=APPROVER_SESSION, approved_by=carol_session, persons=("alice", "alice"))
    assert provenance.approval_problems(False, drill, ROLES) == [
        "created and approved by the same person (alice): an approver's own package needs another "
        "approver (or, outside production, the gate)"]
    own = package(created_by=APPROVER_SESSION, approved_by=APPROVER_SESSION)
    assert provenance.approval_problems(False, own, ROLES) == [
        f"created and approved by the same person ({APPROVER_SESSION}): an approver's own package "
        "needs another approver (or, outside production, the gate)"]
    others = package(created_by=APPROVER_SESSION, approved_by=carol_session)
    assert provenance.approval_problems(False, others, ROLES) == []


def test_a_promoted_package_serves_the_copy_the_promotion_made_for_its_source_version():
    """promoted_from names a source version; the model data must be the archive the promotion
    copied for that version, not any archive the package's creator pointed at."""
    carol = APPROVER_SESSION.replace("/alice", "/carol")
    for elsewhere in (f"{RUNS}9tz4xz3wfo0c/model/out.tar.gz",
                      PROMOTED_MODEL.replace("/7/", "/6/"),
                      "s3://attacker-bucket/demo/promoted/mlops-staging-demo/7/model.tar.gz"):
        promoted = package(created_by=APPROVER_SESSION, approved_by=carol, promoted_from=STAGING,
                           model=elsewhere, persons=PERSONS)
        assert provenance.provenance_problems(True, promoted, ROLES, STAGING_GROUP) == [
            f"the model data {elsewhere} is not the promoted copy of {STAGING} "
            f"(s3://mlops-prod-artifacts-{ACCOUNT_ID}/demo/promoted/mlops-staging-demo/7/)"]


def test_a_package_promoted_from_a_same_named_group_elsewhere_is_refused():
    """The source group is its ARN: the production account's own `mlops-staging-demo` group (which
    its approvers could fill), or one in another region or partition, is not the source."""
    for lookalike in (STAGING.replace(STAGING_ACCOUNT, ACCOUNT_ID),
                      STAGING.replace("us-east-1", "eu-west-1"),
                      STAGING.replace("arn:aws:", "arn:aws-cn:")):
        assert provenance.promotion_problems(True, {"promoted_from": lookalike}, STAGING_GROUP) == [
            f"promoted_from {lookalike} is not a package of the promotion source group {STAGING_GROUP}"]
        carol = APPROVER_SESSION.replace("/alice", "/carol")
        promoted = package(created_by=APPROVER_SESSION, approved_by=carol, promoted_from=lookalike,
                           persons=PERSONS)
        assert provenance.servable_problems(True, {**promoted, "ModelApprovalStatus": "Approved"}, ROLES,
                                            STAGING_GROUP) == [
            f"promoted_from {lookalike} is not a package of the promotion source group {STAGING_GROUP}"]


def test_a_promoted_package_is_judged_by_the_report_its_promotion_copied():
    """Not by its metadata (the promoter's): the copy beside its archive, sha256-checked."""
    promoted = package(created_by=APPROVER_SESSION, promoted_from=STAGING)
    assert provenance.promoted_report_uri(promoted, ROLES) == (
        f"s3://mlops-prod-artifacts-{ACCOUNT_ID}/demo/promoted/mlops-staging-demo/7/evaluation.json")
    assert provenance.promoted_report_uri(package(), ROLES) is None
    assert provenance.promoted_report_uri(package(promoted_from="staging-7"), ROLES) is None
    report = json.dumps({"metrics": {"accuracy": 0.91}}).encode()
    digest = hashlib.sha256(report).hexdigest()
    assert gate.evaluation_from_promoted_report(report, digest).metrics == {"accuracy": 0.91}
    assert gate.evaluation_from_promoted_report(report, None).source == "report"
    with pytest.raises(ValueError, match=f"its SHA-256 is {digest}, not the evaluation_sha256 "):
        gate.evaluation_from_promoted_report(report, "0" * 64)
    assert gate.UNMEASURED.metrics == {} and gate.UNMEASURED.source == "none"


def test_the_gate_reads_the_report_of_the_registering_execution_only():
    assert ROLES.report_uri("9tz4xz3wfo0c") == f"{RUNS}9tz4xz3wfo0c/evaluation/evaluation.json"
    for forged in ("../x", "a/b", "", "x" * 129, ".hidden"):
        with pytest.raises(ValueError, match="not a pipeline execution id"):
            ROLES.report_uri(forged)
    assert provenance.pipeline_run_id({"CustomerMetadataProperties": {"pipeline_run_id": "a/../b"}}) is None
    assert provenance.pipeline_evaluation_run(package(), ROLES) == "9tz4xz3wfo0c"
    # An approver's copy names the run of what it copied: that report is not about the copy.
    assert provenance.pipeline_evaluation_run(package(created_by=APPROVER_SESSION), ROLES) is None
    assert gate.untrusted_verdict(["created by x"]).reasons == ("created by x",)


def test_a_retrain_trains_on_the_served_models_data_plus_what_was_labelled_since():
    served = {"CreationTime": datetime(2026, 11, 30, 9, 15, tzinfo=UTC),
              "CustomerMetadataProperties": {"data_uri": "s3://artifacts/demo/datasets/sha256-ab/data.csv"}}
    assert retrain.retrain_parameters(served) == [
        {"Name": "InputDataUri", "Value": "s3://artifacts/demo/datasets/sha256-ab/data.csv"},
        {"Name": "ProductionDataSince", "Value": "2026-11-30T09:15:00Z"}]
    assert retrain.retrain_parameters(None) == []  # the bootstrap model: the pipeline's defaults
    unknown = {**served, "CustomerMetadataProperties": {"data_uri": "unknown"}}
    assert [p["Name"] for p in retrain.retrain_parameters(unknown)] == ["ProductionDataSince"]
    # Where its data's production records ended wins: nothing between the two is lost.
    versioned = {**served, "CustomerMetadataProperties": {"data_until": "2026-11-30T09:05:00Z"}}
    assert retrain.retrain_parameters(versioned) == [
        {"Name": "ProductionDataSince", "Value": "2026-11-30T09:05:00Z"}]


# events -------------------------------------------------------------------------------------------


def test_model_package_state_change_events_parse_with_the_documented_shape():
    pending = events.parse_body("m1", fixture("model_package_pending.json"), events.ModelPackageStateChange)
    assert pending.package.approval_status == "PendingManualApproval"
    assert (
        pending.package.version == 2
        and pending.detail_type == "SageMaker Model Package State Change"
    )
    assert pending.changed_at == datetime(2026, 3, 2, 10, 15, 7, tzinfo=UTC)  # CreationTime (ms)
    assert pending.package["CustomerMetadataProperties"]["pipeline_run_id"] == "7k2m9x4q1z3p"
    approved = events.package_event("m2", fixture("model_package_approved.json"), GROUP, "Approved")
    assert approved is not None and approved.changed_at == datetime(2026, 3, 2, 10, 21, 44, tzinfo=UTC)
    assert events.package_identity(approved) == {
        "package": f"{ARN}/2",
        "status": "Approved",
        "changed_at": "2026-03-02T10:21:44+00:00",
    }
    assert (
        events.package_event("m2", fixture("model_package_approved.json"), "other-group", "Approved") is None
    )
    assert events.package_event("m1", fixture("model_package_pending.json"), GROUP, "Approved") is None


def test_alarm_state_change_events_parse_with_the_documented_shape():
    alarm = events.alarm_event("m3", fixture("alarm_errors_alarm.json"), frozenset({"mlops-dev-demo-errors"}))
    assert alarm is not None and alarm.alarm.previous_state.value == "OK"
    assert alarm.changed_at == datetime(2026, 3, 2, 11, 4, 40, 985000, tzinfo=UTC)
    assert events.alarm_identity(alarm) == {
        "alarm": "mlops-dev-demo-errors",
        "state": "ALARM",
        "timestamp": "2026-03-02T11:04:40.985+0000",
    }
    assert (
        events.alarm_event("m4", fixture("alarm_errors_ok.json"), frozenset({"mlops-dev-demo-errors"}))
        is None
    )
    assert (
        events.alarm_event("m5", fixture("alarm_drift_alarm.json"), frozenset({"mlops-dev-demo-errors"}))
        is None
    )


def test_endpoint_events_parse_with_the_documented_shapes():
    """The samples of the SageMaker EventBridge docs, "time" in epoch milliseconds included."""
    in_service = events.endpoint_event("m6", fixture("endpoint_in_service.json"), "MyEndpoint")
    assert isinstance(in_service, events.EndpointStateChange)
    change = in_service.change(history.iso(in_service.changed_at))
    assert (change.status, change.config, change.pending_config) == ("IN_SERVICE", "MyEndpointConfig", None)
    assert in_service.changed_at == datetime.fromtimestamp(1592411994.287, tz=UTC)  # LastModifiedTime
    assert events.endpoint_event("m6", fixture("endpoint_in_service.json"), "other") is None

    baking = events.endpoint_event("m7", fixture("endpoint_deployment_baking.json"), "sample-endpoint")
    assert isinstance(baking, events.EndpointDeploymentStateChange)
    change = baking.change(history.iso(baking.changed_at))
    assert (change.config, change.pending_config, change.stage) == (
        "sample-endpoint-config-1", "sample-endpoint-config-2", "Baking")
    assert baking.changed_at == datetime.fromtimestamp(1635195269.181, tz=UTC)  # the stage's StartTime
    identity = events.endpoint_identity(baking)
    assert identity["stage"] == "Baking" and identity["pending"] == "sample-endpoint-config-2"

    # A capacity change (autoscaling) has no PendingDeploymentSummary: parsed, moves no record.
    capacity = events.endpoint_event("m8", fixture("endpoint_deployment_capacity.json"), "sample-endpoint")
    change = capacity.change(history.iso(capacity.changed_at))
    assert change.pending_config is None and change.status is None
    record = deployment(2, previous="sample-endpoint-config-1", minute=0)
    assert history.track_decision([record], change, 0) is None

    # Optional in SageMaker's model, so accepted absent: the variants' stages, the config name.
    sparse = json.loads(fixture("endpoint_deployment_baking.json"))
    del sparse["detail"]["PendingDeploymentSummary"]["ProductionVariants"]
    sparse["detail"]["EndpointStatus"] = "Updating"  # DescribeEndpoint's spelling
    quiet = events.endpoint_event("m8", json.dumps(sparse), "sample-endpoint").change("2026-01-01T00:00:00Z")
    assert (quiet.stage, quiet.status) == (None, "UPDATING")

    broken = json.loads(fixture("endpoint_deployment_baking.json"))
    broken["detail"]["PendingDeploymentSummary"]["ProductionVariants"][0]["VariantStatus"] = [{"x": 1}]
    del broken["detail"]["EndpointStatus"]
    with pytest.raises(MalformedEventError) as info:
        events.endpoint_event("m9", json.dumps(broken), "sample-endpoint")
    assert "detail.EndpointStatus: required" in str(info.value)
    assert "ProductionVariants[0].VariantStatus" in str(info.value)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("not json {", "SQS message msg-1: body is not JSON"),
        ("[1, 2]", "SQS message msg-1: body is JSON list, not an EventBridge event"),
        (None, "SQS message msg-1: body is not JSON"),
    ],
)
def test_malformed_bodies_name_the_message(body, expected):
    with pytest.raises(MalformedEventError, match=expected):
        events.parse_body("msg-1", body, events.AlarmStateChange)


def test_malformed_events_name_the_message_and_the_fields():
    event = json.loads(fixture("model_package_approved.json"))
    del event["detail"]["ModelPackageArn"]
    event["detail"]["ModelApprovalStatus"] = "Maybe"
    with pytest.raises(MalformedEventError) as info:
        events.parse_body("msg-2", json.dumps(event), events.ModelPackageStateChange)
    text = str(info.value)
    assert text.startswith("SQS message msg-2: not a valid ModelPackageStateChange event:")
    assert "detail.ModelPackageArn: required" in text and "detail.ModelApprovalStatus" in text
    with pytest.raises(MalformedEventError, match="detail-type"):
        events.parse_body("msg-3", fixture("alarm_errors_alarm.json"), events.ModelPackageStateChange)
    alarm = json.loads(fixture("alarm_errors_alarm.json"))
    alarm["detail"]["alarmName"] = None
    alarm["detail"]["previousState"]["value"] = "SOMETIMES"
    del alarm["account"]
    with pytest.raises(MalformedEventError) as info:
        events.parse_body("msg-5", json.dumps(alarm), events.AlarmStateChange)
    text = str(info.value)
    assert "detail.alarmName: required" in text and "account: required" in text
    assert "detail.previousState.value: must be one of OK, ALARM, INSUFFICIENT_DATA, got 'SOMETIMES'" in text
    alarm = json.loads(fixture("alarm_errors_alarm.json"))
    alarm["detail"]["state"]["timestamp"] = "yesterday"
    with pytest.raises(MalformedEventError, match=r"detail\.state\.timestamp"):
        events.parse_body("msg-4", json.dumps(alarm), events.AlarmStateChange)


# settings, tables ---------------------------------------------------------------------------------


def test_settings_parse_and_name_every_bad_variable():
    settings = load_settings(dummy_environment())
    assert settings.gate.thresholds["recall"] == 0.9 and settings.variant_name == "primary"
    assert "mlops-dev-demo-errors" in settings.rollback_alarms and settings.network_isolation
    env = dummy_environment(GATE_CONFIG='{"thresholds": {}', INITIAL_INSTANCE_COUNT="0")
    del env["LOCKS_TABLE"]
    with pytest.raises(ConfigurationError) as info:
        load_settings(env)
    text = str(info.value)
    assert "LOCKS_TABLE: required" in text and "GATE_CONFIG: invalid JSON" in text
    assert "INITIAL_INSTANCE_COUNT: must be a whole number >= 1" in text
    bad_gate = '{"thresholds": {"auc": "high"}, "max_regression": -1, "max_latency_p95_ms": null, "x": 1}'
    with pytest.raises(ConfigurationError) as info:
        load_settings(
            dummy_environment(GATE_CONFIG=bad_gate, NETWORK_ISOLATION="maybe", ROLLBACK_ALARMS="[]x")
        )
    text = str(info.value)
    assert "GATE_CONFIG: thresholds: ['auc']: not a number: 'high'" in text
    assert "max_regression: must be >= 0" in text and "x: unknown key" in text
    assert "NETWORK_ISOLATION: must be true or false" in text and "ROLLBACK_ALARMS: invalid JSON" in text
    off = '{"thresholds": {"a": 1}, "max_regression": 0, "max_fairness_gap": null}'
    gate_off = load_settings(dummy_environment(GATE_CONFIG=off)).gate
    assert gate_off.max_fairness_gap is None and gate_off.max_latency_p95_ms is None
    assert gate_off.as_json()["lower_is_better"] == []
    with pytest.raises(ConfigurationError, match="lower_is_better names metrics without a threshold"):
        load_settings(
            dummy_environment(
                GATE_CONFIG='{"thresholds": {"a": 1}, "lower_is_better": ["b"], "max_regression": 0}'
            )
        )
    with pytest.raises(ConfigurationError, match="PROMOTION_SOURCE_GROUP required when PRODUCTION is true"):
        load_settings(dummy_environment(PRODUCTION="true"))
    with pytest.raises(ConfigurationError, match="PROMOTION_SOURCE_GROUP: not a model package group ARN"):
        load_settings(dummy_environment(PRODUCTION="true", PROMOTION_SOURCE_GROUP="mlops-staging-demo"))
    with pytest.raises(ConfigurationError, match="GATE_ROLE_ARN: not an IAM role ARN"):
        load_settings(dummy_environment(GATE_ROLE_ARN="arn:aws:sts::123456789012:assumed-role/x/y"))


def test_production_rules_follow_the_production_setting_not_the_environment_name():
    # A second local environment standing in for prod (environments/localprod.yaml).
    localprod = load_settings(dummy_environment(ENVIRONMENT="localprod", PRODUCTION="true",
                                                PROMOTION_SOURCE_GROUP=STAGING_GROUP))
    assert localprod.production and localprod.environment == "localprod"
    assert localprod.promotion_source_group == STAGING_GROUP
    assert not load_settings(dummy_environment(ENVIRONMENT="prod", PRODUCTION="false")).production
    # Required: a deployment from before the setting fails its cold start instead of serving
    # with the production rules off.
    env = dummy_environment(ENVIRONMENT="prod")
    del env["PRODUCTION"]
    with pytest.raises(ConfigurationError, match="PRODUCTION: required"):
        load_settings(env)
    with pytest.raises(ConfigurationError) as info:
        load_settings(dummy_environment(ENVIRONMENT="Prod-1", PRODUCTION="maybe"))
    assert "ENVIRONMENT: not an environment name: 'Prod-1'" in str(info.value)
    assert "PRODUCTION: must be true or false" in str(info.value)
    # The same names as environments/ takes (the handlers cannot import stacks/).
    from lambdas.shared.control.settings import ENVIRONMENT_NAME
    from stacks.config import EnvironmentName

    (constraint,) = EnvironmentName.__metadata__
    assert constraint.pattern == f"^{ENVIRONMENT_NAME}$"


def test_table_schemas_are_create_table_requests():
    request = tables.create_table_request(tables.AUDIT, "audit")
    assert request["TableName"] == "audit" and request["BillingMode"] == "PAY_PER_REQUEST"
    assert "TimeToLive" not in request and request["GlobalSecondaryIndexes"][0]["IndexName"] == "by_action"
    assert tables.IDEMPOTENCY["TimeToLive"] == "expiration" and tables.LOCKS["TimeToLive"] == "expires_at"
    assert set(tables.TABLES) == {"deployments_table", "audit_table", "idempotency_table", "locks_table"}


# the shell, offline: a malformed record fails alone and nothing is called ------------------------


class FakeContext:
    function_name = "mlops-dev-demo-gate"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:mlops-dev-demo-gate"
    aws_request_id = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


# Powertools metrics are process-wide; a second "cold start" with other settings re-sets them.
@pytest.mark.filterwarnings("ignore:Dimension 'environment' has already been added")
def test_a_malformed_record_fails_alone_before_any_aws_call(monkeypatch):
    for key, value in dummy_environment().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    name = "lambdas.gate.handler"  # settings are read at import: a fresh module, as a cold start
    module = importlib.reload(sys.modules[name]) if name in sys.modules else importlib.import_module(name)
    calls = []
    monkeypatch.setattr(module.loop, "client", lambda service: calls.append(service))
    other_group = json.loads(fixture("model_package_pending.json"))
    other_group["detail"]["ModelPackageGroupName"] = "someone-else"
    batch = {
        "Records": [
            {"messageId": "bad-1", "body": "{oops", "eventSource": "aws:sqs", "attributes": {}},
            {
                "messageId": "ignored-1",
                "body": json.dumps(other_group),
                "eventSource": "aws:sqs",
                "attributes": {},
            },
        ]
    }
    assert module.handler(batch, FakeContext()) == {"batchItemFailures": [{"itemIdentifier": "bad-1"}]}
    assert calls == []


def test_handlers_import_nothing_heavy():
    """A fresh process (a cold start) importing every handler loads none of the forbidden modules."""
    import os
    import subprocess

    forbidden = ["cdktf", "jsii", "sagemaker", "mlflow", "pandas", "sklearn", "numpy", "scipy"]
    code = (
        "import sys\n"
        "for h in ('gate', 'deploy', 'rollback', 'retrain'):\n"
        "    __import__(f'lambdas.{h}.handler')\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({forbidden!r})))\n"
    )
    env = {**os.environ, **dummy_environment(), "AWS_DEFAULT_REGION": "us-east-1"}
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
