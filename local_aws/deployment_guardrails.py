"""SageMaker's deployment guardrails for blue/green updates: which share of traffic the new fleet
takes, for how long, and what ends a bake. Pure: the endpoint runtime plays the steps.

From UpdateEndpoint's DeploymentConfig (no DeploymentConfig: blue/green, all at once, no alarms):
- ALL_AT_ONCE: all traffic to the new fleet, baked for WaitIntervalInSeconds;
- CANARY: CanarySize of the traffic for WaitIntervalInSeconds, then all of it;
- LINEAR: LinearStepSize more at each step, each baked for WaitIntervalInSeconds;
then, with all traffic on the new fleet, TerminationWaitInSeconds before the old fleet goes.
Any AutoRollbackConfiguration alarm in ALARM during a bake or the termination wait sends all
traffic back to the old fleet; so does passing MaximumExecutionTimeoutInSeconds.

Traffic share of a size: CAPACITY_PERCENT is that share of the traffic; INSTANCE_COUNT is that
many of the new fleet's instances against the old fleet's. (SageMaker rounds a capacity percent up
to whole instances, so in AWS a canary of a small fleet can take more than its percent: the
drill's fault share is then a lower bound.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Step:
    share: float  # of the endpoint's traffic on the new fleet, 0..1
    bake_s: float
    message: str  # VariantStatus.StatusMessage while it bakes


@dataclass(frozen=True)
class Guardrails:
    kind: str  # ALL_AT_ONCE | CANARY | LINEAR
    steps: tuple[Step, ...]
    alarms: tuple[str, ...]
    max_execution_s: float | None
    config: dict[str, Any]  # as given: DescribeEndpoint's LastDeploymentConfig afterwards

    @classmethod
    def from_api(cls, config: dict[str, Any] | None, instances: int = 1) -> Guardrails:
        config = config or {}
        policy = config.get("BlueGreenUpdatePolicy") or {}
        routing = policy.get("TrafficRoutingConfiguration") or {"Type": "ALL_AT_ONCE"}
        kind = routing.get("Type", "ALL_AT_ONCE")
        wait = float(routing.get("WaitIntervalInSeconds", 0))
        termination = float(policy.get("TerminationWaitInSeconds", 0))
        rollback = config.get("AutoRollbackConfiguration") or {}
        alarms = tuple(a["AlarmName"] for a in rollback.get("Alarms", []))
        steps: list[Step] = []
        if kind == "CANARY":
            share = _share(routing.get("CanarySize") or {}, instances)
            steps.append(Step(share, wait, f"Baking for {wait:g} seconds (WaitIntervalInSeconds) with "
                                           f"traffic enabled on canary capacity of {share:.0%} of the "
                                           "traffic."))
        elif kind == "LINEAR":
            share = _share(routing.get("LinearStepSize") or {}, instances)
            for n in range(1, math.ceil(1 / share)):
                steps.append(Step(min(1.0, n * share), wait,
                                  f"Baking for {wait:g} seconds (WaitIntervalInSeconds) with traffic enabled "
                                  f"on {min(1.0, n * share):.0%} of the capacity."))
        elif wait:
            steps.append(Step(1.0, wait, f"Baking for {wait:g} seconds (WaitIntervalInSeconds) with traffic "
                                         "enabled on full capacity."))
        steps.append(Step(1.0, termination, f"Baking for {termination:g} seconds (TerminationWaitInSeconds) "
                                            "with traffic enabled on full capacity."))
        timeout = policy.get("MaximumExecutionTimeoutInSeconds")
        return cls(kind, tuple(steps), alarms, float(timeout) if timeout else None, config)


def problems(config: dict[str, Any] | None) -> list[str]:
    """What SageMaker's UpdateEndpoint refuses in a DeploymentConfig's traffic routing."""
    policy = (config or {}).get("BlueGreenUpdatePolicy") or {}
    routing = policy.get("TrafficRoutingConfiguration") or {}
    found = []
    kind = routing.get("Type", "ALL_AT_ONCE")
    if kind not in ("ALL_AT_ONCE", "CANARY", "LINEAR"):
        found.append(f"TrafficRoutingConfiguration.Type {kind!r} is not ALL_AT_ONCE, CANARY or LINEAR")
    for field in ("CanarySize", "LinearStepSize"):
        size = routing.get(field)
        if size is None:
            if kind == {"CanarySize": "CANARY", "LinearStepSize": "LINEAR"}[field]:
                found.append(f"{kind} traffic routing needs {field}")
            continue
        value = size.get("Value", 0)
        if not isinstance(value, int | float) or value < 1:
            found.append(f"{field}.Value must be at least 1")
        elif size.get("Type") == "CAPACITY_PERCENT" and value > (50 if field == "CanarySize" else 100):
            found.append(f"{field}.Value {value:g}% is over the "
                         f"{50 if field == 'CanarySize' else 100}% a capacity percent may be")
    return found


def _share(size: dict[str, Any], instances: int) -> float:
    value = max(float(size.get("Value", 100)), 1.0)  # UpdateEndpoint refused less (problems())
    if size.get("Type") == "INSTANCE_COUNT":
        return min(1.0, value / (value + max(instances, 1)))
    return min(1.0, max(value, 0.0) / 100)
