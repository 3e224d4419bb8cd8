"""The real fault of `mlops drill rollback --via fault`: a copy of the served model whose server
fails a share of its requests, deployed through the normal path, and the traffic that finds out.

The copy is a new model package in the project's group: the served package's container and
evaluation, with the model server's documented fault setting (MLOPS_FAULT_ERROR_PERCENT, see
pipelines/model_server/settings.py) in its container environment, marked as a drill in its
metadata. The gate reviews it like any package (same evaluation: approved) and the deploy handler
deploys it with the project's blue/green policy.

The share: SageMaker publishes the metrics per variant, and both fleets of a blue/green update keep
the variant name, so while the canary bakes its errors are diluted by the old fleet's traffic (as
in AWS). The alarm sees canary share x fault share; the drill picks the fault share so that this
is twice the alarm's threshold (at most 100%), and says so.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stacks.project_config import ProjectConfig

FAULT_SETTING = "MLOPS_FAULT_ERROR_PERCENT"
DRILL_MARK = "mlops_drill"
IDENTITY_KEYS = ("pipeline_run_id", "promoted_from", "mlflow_run_id")
# What of a package's container a new package may be created from (DescribeModelPackage also
# returns fields that only SageMaker sets, such as ImageDigest and ModelDataETag).
CONTAINER_FIELDS = ("Image", "ModelDataUrl", "Environment", "Framework", "FrameworkVersion",
                    "NearestModelName", "ModelInput")
SPEC_FIELDS = ("SupportedContentTypes", "SupportedResponseMIMETypes",
               "SupportedRealtimeInferenceInstanceTypes", "SupportedTransformInstanceTypes")


@dataclass(frozen=True)
class FaultPlan:
    fault_percent: int  # of the faulty fleet's requests answered 500
    canary_percent: float  # of the endpoint's traffic the new fleet takes while it bakes
    threshold_percent: float  # the error-rate alarm's threshold
    bake_s: float = 0.0  # how long the canary bakes (WaitIntervalInSeconds)

    @property
    def failing_percent(self) -> float:
        """The endpoint's error rate while the canary bakes."""
        return self.canary_percent * self.fault_percent / 100

    @property
    def trips_during_bake(self) -> bool:
        """The diluted error rate exceeds the threshold, and the bake lasts long enough for the
        alarm to see it (a 0 s bake, as in the local demo, leaves it to the rollback handler)."""
        return self.failing_percent > self.threshold_percent and self.bake_s > 0

    def explain(self) -> str:
        if self.trips_during_bake:
            verdict = f"trips the alarm during the {self.bake_s:g} s bake: the guardrails roll it back"
        elif self.failing_percent > self.threshold_percent:
            verdict = "the bake is 0 s: the rollback handler acts once it serves all traffic"
        else:
            verdict = ("cannot trip the alarm while it bakes; the rollback handler acts once it serves "
                       "all traffic")
        return (f"fault share {self.fault_percent}%: canary {self.canary_percent:g}% of traffic x "
                f"{self.fault_percent}% failing = {self.failing_percent:g}% of all requests vs the "
                f"{self.threshold_percent:g}% threshold: {verdict}")

    def describe(self) -> dict[str, Any]:
        return {"setting": f"{FAULT_SETTING}={self.fault_percent}", "canary_percent": self.canary_percent,
                "failing_percent": self.failing_percent, "threshold_percent": self.threshold_percent,
                "bake_seconds": self.bake_s}


def fault_share(threshold_percent: float, traffic_percent: float = 100.0) -> int:
    """The share of a fleet's requests to fail so that the endpoint's error rate is twice the
    alarm's threshold when that fleet takes `traffic_percent` of the traffic (1 to 100)."""
    return max(1, min(100, math.ceil(2 * threshold_percent * 100 / traffic_percent)))


def fault_plan(config: ProjectConfig, threshold_percent: float) -> FaultPlan:
    deployment = config.serving.deployment
    canary = float(deployment.step_percent) if deployment.strategy in ("canary", "linear") else 100.0
    return FaultPlan(fault_share(threshold_percent, canary), canary, threshold_percent,
                     float(deployment.wait_seconds))


def faulty_copy_request(package: dict[str, Any], plan: FaultPlan) -> dict[str, Any]:
    """CreateModelPackage arguments: `package` again, its server failing `plan.fault_percent`."""
    spec = package["InferenceSpecification"]
    containers = []
    for container in spec["Containers"]:
        copy = {k: container[k] for k in CONTAINER_FIELDS if k in container}
        copy["Environment"] = {**container.get("Environment", {}), FAULT_SETTING: str(plan.fault_percent)}
        containers.append(copy)
    # The metrics stay (the gate reviews them); what names where a model came from does not: a
    # drill copy must not pass for the pipeline run's package (register.py looks a retried run's
    # package up by pipeline_run_id) nor carry a staging provenance it never had (promoted_from).
    source = package.get("CustomerMetadataProperties") or {}
    metadata = {**{k: v for k, v in source.items() if k not in IDENTITY_KEYS},
                **{f"mlops_drill_source_{k}": source[k] for k in IDENTITY_KEYS if k in source},
                DRILL_MARK: "rollback",
                "mlops_drill_fault": f"{FAULT_SETTING}={plan.fault_percent}",
                "mlops_drill_copy_of": package["ModelPackageArn"][-256:]}
    request: dict[str, Any] = {
        "ModelPackageGroupName": package["ModelPackageGroupName"],
        "ModelPackageDescription": f"mlops drill rollback: version {package.get('ModelPackageVersion')} "
                                   f"with {FAULT_SETTING}={plan.fault_percent} (a game day, not a model)",
        "InferenceSpecification": {"Containers": containers,
                                   **{k: spec[k] for k in SPEC_FIELDS if k in spec}},
        "ModelApprovalStatus": "PendingManualApproval",
        "CustomerMetadataProperties": metadata,
    }
    if package.get("ModelMetrics"):
        request["ModelMetrics"] = package["ModelMetrics"]
    return request


class BackgroundTraffic:
    """Held-out rows sent at `rate` per second until stopped (mlops traffic's own sender).

    Each round (about a second of requests) is one `send`; `on_round` gets its result. With
    `shuffle` off the rounds go through `rows` in turn: a round starts at row `offset` (in the
    result) and its `answered` count from there, so labels can be written for it."""

    def __init__(self, runtime: Any, endpoint: str, rows: Any, rate: float, *, shuffle: bool = True,
                 on_round: Callable[[dict[str, Any]], None] | None = None):
        self.runtime, self.endpoint, self.rows, self.rate = runtime, endpoint, rows, rate
        self.shuffle, self.on_round = shuffle, on_round
        self.sent, self.statuses, self.error = 0, {}, None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drill-traffic", daemon=True)

    def start(self) -> BackgroundTraffic:
        self._thread.start()
        return self

    def _run(self) -> None:
        import pandas as pd

        from mlops.traffic import Plan, send

        chunk = max(1, math.ceil(self.rate))  # about a second of requests per round
        while not self._stop.is_set():
            offset = self.sent % len(self.rows)
            rows = self.rows.sample(frac=1.0, random_state=self.sent) if self.shuffle else \
                pd.concat([self.rows.iloc[offset:], self.rows.iloc[:offset]])
            try:
                result = send(self.runtime, self.endpoint, rows,
                              Plan(requests=chunk, rate=self.rate, concurrency=2))
                result["offset"] = offset
                if self.on_round is not None:
                    self.on_round(result)
            except Exception as exc:  # said in the result, not lost with the thread
                self.error = f"{type(exc).__name__}: {exc}"
                self._stop.wait(1.0)
                continue
            self.sent += result["requests"]
            for status, count in {"200": result["ok"], **result["errors"]}.items():
                self.statuses[status] = self.statuses.get(status, 0) + count

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(timeout=60)
        stopped = {"requests": self.sent, "by_status": dict(sorted(self.statuses.items()))}
        return {**stopped, "error": self.error} if self.error else stopped
