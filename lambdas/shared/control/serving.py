"""SageMaker calls of the deploy and rollback handlers: registry, models, endpoint configs, endpoint.

Creation is idempotent by name (history.resource_name): an existing model or config of that name
is reused, so a redelivered event or a concurrent attempt never creates a second one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from lambdas.shared.control import shadow
from lambdas.shared.control.errors import RetryLaterError
from lambdas.shared.control.history import CREATING, UPDATING
from lambdas.shared.control.settings import Settings

UPDATABLE = "InService"
DESCRIPTION_MAX = 1024  # UpdateModelPackage ApprovalDescription
CSV, JSON = ["text/csv"], ["application/json"]


def _is(exc: ClientError, *phrases: str) -> bool:
    error = exc.response.get("Error", {})
    message = str(error.get("Message", "")).lower()
    return error.get("Code") == "ValidationException" and any(p in message for p in phrases)


@dataclass(frozen=True)
class EndpointState:
    exists: bool
    status: str | None = None
    config: str | None = None  # the config the endpoint serves
    pending_config: str | None = None  # the config an update in progress switches to

    def require_updatable(self, name: str) -> None:
        if self.status != UPDATABLE:
            # Creating/Updating/RollingBack/SystemUpdating end by themselves (SageMaker's own
            # auto-rollback included); Failed/OutOfService need a person. Either way the record
            # goes back to the queue and, if it never clears, to the DLQ.
            raise RetryLaterError(f"endpoint {name} is {self.status}, not {UPDATABLE}: retry later")


class SageMaker:
    def __init__(self, client: Any, settings: Settings):
        self.client, self.settings = client, settings

    # registry
    def describe_package(self, arn: str) -> dict[str, Any]:
        return self.client.describe_model_package(ModelPackageName=arn)

    def set_approval(self, arn: str, status: str, description: str) -> None:
        self.client.update_model_package(
            ModelPackageArn=arn, ModelApprovalStatus=status, ApprovalDescription=description[:DESCRIPTION_MAX]
        )

    # endpoint
    def endpoint(self) -> EndpointState:
        try:
            described = self.client.describe_endpoint(EndpointName=self.settings.endpoint_name)
        except ClientError as exc:
            if _is(exc, "could not find endpoint"):
                return EndpointState(exists=False)
            raise
        pending = (described.get("PendingDeploymentSummary") or {}).get("EndpointConfigName")
        return EndpointState(
            True, described.get("EndpointStatus"), described.get("EndpointConfigName"), pending
        )

    def config_exists(self, name: str) -> bool:
        try:
            self.client.describe_endpoint_config(EndpointConfigName=name)
        except ClientError as exc:
            if _is(exc, "could not find endpoint config"):
                return False
            raise
        return True

    def _tags(self, package_arn: str | None = None) -> list[dict[str, str]]:
        s = self.settings
        # The cost-allocation tags Terraform puts on everything else (project, team, environment).
        tags = [
            {"Key": "project", "Value": s.project},
            *([{"Key": "team", "Value": s.team}] if s.team else []),
            {"Key": "environment", "Value": s.environment},
            {"Key": "managed-by", "Value": "mlops-control-loop"},
        ]
        return [*tags, {"Key": "model-package-arn", "Value": package_arn}] if package_arn else tags

    def build(self, name: str, package_arn: str) -> None:
        """The model and endpoint config `name` serving `package_arn` (created if absent)."""
        s = self.settings
        self.build_model(name, package_arn)
        self._config(name, package_arn, [{
            "VariantName": s.variant_name,
            "ModelName": name,
            "InstanceType": s.instance_type,
            "InitialInstanceCount": s.initial_instance_count,
            "InitialVariantWeight": 1.0,
        }])

    def build_model(self, name: str, package_arn: str) -> None:
        """The model `name` serving `package_arn` (created if absent)."""
        s = self.settings
        try:
            self.client.describe_model(ModelName=name)
        except ClientError as exc:
            if not _is(exc, "could not find model"):
                raise
            self._create(
                self.client.create_model,
                ModelName=name,
                PrimaryContainer={"ModelPackageName": package_arn},
                ExecutionRoleArn=s.execution_role_arn,
                EnableNetworkIsolation=s.network_isolation,
                Tags=self._tags(package_arn),
            )

    def production_variant(self, config: str) -> dict[str, Any]:
        """The production variant of endpoint config `config`, as CreateEndpointConfig takes it."""
        variants = self.client.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]
        return next((v for v in variants if v.get("VariantName") == self.settings.variant_name), variants[0])

    def build_shadow(self, name: str, model: str, package_arn: str,
                     production_variant: dict[str, Any]) -> None:
        """The endpoint config `name`: `production_variant` as it serves now, and the model
        `model` (serving `package_arn`, created if absent) as its shadow variant."""
        s = self.settings
        self.build_model(model, package_arn)
        production, shadows = shadow.variants(production_variant, model, s.instance_type,
                                              s.initial_instance_count, s.shadow_sampling_percent)
        self._config(name, package_arn, production, shadows)

    def _config(self, name: str, package_arn: str, production: list[dict[str, Any]],
                shadows: list[dict[str, Any]] | None = None) -> None:
        s = self.settings
        if self.config_exists(name):
            return
        self._create(
            self.client.create_endpoint_config,
            EndpointConfigName=name,
            ProductionVariants=production,
            **({"ShadowProductionVariants": shadows} if shadows else {}),
            DataCaptureConfig={
                "EnableCapture": True,
                "InitialSamplingPercentage": s.capture_sampling_percent,
                "DestinationS3Uri": s.capture_s3_uri,
                "KmsKeyId": s.kms_key_arn,
                "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
                "CaptureContentTypeHeader": {"CsvContentTypes": CSV, "JsonContentTypes": JSON},
            },
            KmsKeyId=s.kms_key_arn,
            Tags=self._tags(package_arn),
        )

    @staticmethod
    def _create(call: Any, **kwargs: Any) -> None:
        try:
            call(**kwargs)
        except ClientError as exc:
            if not _is(exc, "already exist"):  # a concurrent attempt created it: reuse it
                raise

    def switch(self, config: str, current: EndpointState, *, guarded: bool) -> str:
        """Point the endpoint at `config` (creating the endpoint if it does not exist).

        guarded: with DEPLOYMENT_CONFIG (blue/green traffic shifting, auto-rollback alarms);
        otherwise all at once (a rollback must not wait for a canary). Variant properties the
        endpoint has now (instance count set by autoscaling, weights) are retained; data capture
        comes from the new config. Returns the record status: UPDATING or CREATING."""
        s = self.settings
        if not current.exists:
            self.client.create_endpoint(
                EndpointName=s.endpoint_name, EndpointConfigName=config, Tags=self._tags()
            )
            return CREATING
        kwargs: dict[str, Any] = {
            "EndpointName": s.endpoint_name,
            "EndpointConfigName": config,
            "RetainAllVariantProperties": True,
            "ExcludeRetainedVariantProperties": [{"VariantPropertyType": "DataCaptureConfig"}],
        }
        if guarded:
            kwargs["DeploymentConfig"] = s.deployment_config
        self.client.update_endpoint(**kwargs)
        return UPDATING
