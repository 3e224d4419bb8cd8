"""Shadow tests: the pure decisions of the deploy handler when the project turns `serving.shadow` on.

Lifecycle (README "Shadow tests"):

1. An approved package, while the endpoint serves a production model, is deployed as the
   endpoint's shadow variant: a new endpoint config whose one ProductionVariant is the served
   config's, unchanged, and whose one ShadowProductionVariant serves the package
   (`serving_mode` -> "shadow"). SageMaker copies a sampled share of the requests to it: its
   InitialVariantWeight relative to the production variant's (`shadow_weight`). Its answers are
   captured under its own variant folder, never returned. The deployment record has kind
   `shadow`: STARTING -> UPDATING -> BAKING -> SERVING as any update (SERVING here means "the
   shadow test runs"), and it is never a rollback target (only `deploy` records are known-good).
   A critical alarm during the test restores the newest known-good deploy: production without
   the shadow, which ends the test.
2. `mlops shadow report` compares the two variants over a window (`mlops/shadow_report.py`,
   the pass/fail in `lambdas/shared/shadow/report.py`).
3. Promotion: the package is deployed to production by the normal guarded blue/green update
   (kind `deploy`, a config without the shadow) when its CustomerMetadataProperties carry
   `PASSED_KEY` (the s3:// URI of a passing shadow report), set by whoever promotes it
   (`mlops model promote`, under the approver persona, so provenance still holds) with an
   UpdateModelPackage, whose state-change event reaches this handler again.

The UpdateEndpoint to a shadow config keeps the production variant's name, so SageMaker's
deployment guardrails apply to it as to any blue/green update (their exclusions: the new config
keeps the old variant names; rolling updates exclude multi-variant endpoints, which this one is
not updated with: the deploy config is blue/green).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from lambdas.shared.capture_files import SHADOW_VARIANT
from lambdas.shared.control.history import NAME_MAX, digest

# The model package metadata key a promotion sets: the s3:// URI of the passing shadow report.
PASSED_KEY = "shadow-report-passed"


@dataclass(frozen=True)
class ServingMode:
    mode: Literal["production", "shadow"]
    reason: str


def serving_mode(sampling_percent: int, endpoint_exists: bool, metadata: Mapping[str, str]) -> ServingMode:
    """Where an approved package goes: production (a normal guarded update) or the shadow variant."""
    if sampling_percent <= 0:
        return ServingMode("production", "shadow tests are off (serving.shadow)")
    if not endpoint_exists:
        return ServingMode("production", "no endpoint serves yet: there is no production to shadow")
    report = metadata.get(PASSED_KEY)
    if report:
        return ServingMode("production", f"its shadow report passed ({report}): promoted to production")
    return ServingMode("shadow", f"shadow tests are on: it gets a copy of {sampling_percent}% of the "
                                 "requests, production keeps serving")


def shadow_weight(production_variant: Mapping[str, Any], sampling_percent: int) -> float:
    """The shadow's InitialVariantWeight: its share of the production variant's weight."""
    return round(float(production_variant.get("InitialVariantWeight", 1.0)) * sampling_percent / 100, 6)


def config_name(endpoint_name: str, package_arn: str, version: int | None, production_model: str) -> str:
    """`<endpoint>-v<N>-s<hash>`: the shadow config of a package beside one production model.
    Deterministic (a redelivered event finds it) and new when production changed (a config of
    the same name must never bring an older production model back)."""
    suffix = f"-v{version if version is not None else 0}-s{digest(package_arn, production_model, length=6)}"
    return (endpoint_name[: NAME_MAX - len(suffix)] + suffix).strip("-")


def variants(production_variant: Mapping[str, Any], shadow_model: str, instance_type: str,
             instance_count: int, sampling_percent: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(ProductionVariants, ShadowProductionVariants) of a shadow config: production exactly as
    the served config has it, the shadow on the project's instance type."""
    production = dict(production_variant)
    shadow = {
        "VariantName": SHADOW_VARIANT,
        "ModelName": shadow_model,
        "InstanceType": instance_type,
        "InitialInstanceCount": instance_count,
        "InitialVariantWeight": shadow_weight(production, sampling_percent),
    }
    return [production], [shadow]
