"""The local AWS server: moto's own server, with the gaps that need code inside it closed.

Run as `python -m local_aws.moto_server [moto.server's arguments]`. Listed in stacks/moto_gaps.py.

moto 5.2 evaluates bucket-policy conditions wrongly for object requests, which makes every
platform bucket (TLS-only policy: Deny s3:* when aws:SecureTransport is false) refuse every
object read and write, over HTTP and HTTPS alike:
- it does not know the `Bool` condition operator and treats an unknown operator as satisfied;
- it gives the policy no request context (aws:SecureTransport is never set);
- a statement whose condition does not hold counts as an explicit Deny instead of not applying.
Here `Bool` is added, aws:SecureTransport is set from the request's scheme, and a statement whose
condition does not hold is neutral, as in AWS. The TLS-only policy then does what it does in AWS:
the local AWS serves HTTPS (local_aws/tls.py), and a plain-HTTP object request is refused.

The local control plane (local_aws/control_plane.py) needs more inside the server:
- UpdateEndpoint, which moto lacks: with the endpoint runtime (serving endpoints, below) the
  endpoint is Updating, with PendingDeploymentSummary, until the new config's servers answer
  /ping, then switches; without it, at once. Either way the variants' instance counts and weights
  are kept when RetainAllVariantProperties is set, as SageMaker does.
- Shadow variants: moto's CreateEndpointConfig drops ShadowProductionVariants, so
  DescribeEndpointConfig and DescribeEndpoint never show them and no shadow is served. Here the
  config keeps them (refused, as SageMaker refuses it, beside more than one production variant or
  as more than one shadow), DescribeEndpointConfig returns them, the endpoint lists them
  (DescribeEndpoint's ShadowProductionVariants, and PendingDeploymentSummary's during an update)
  and the endpoint runtime serves them.
- Serving (MLOPS_LOCAL_SERVE_ENDPOINTS=true, set by `mlops local up`): endpoints start Creating
  and local_aws/endpoint_runtime.py backs them with model server processes, answers
  InvokeEndpoint through them and writes their data capture and AWS/SageMaker metrics.
- Metric storage indexed per metric and time (local_aws/metric_store.py), and PutMetricData to
  an `AWS/` namespace refused as AWS refuses it (moto accepts it).
- Percentile statistics (p95, p99.9) in GetMetricData, which moto answers with nothing: the p95
  latency alarm could never be evaluated.
- Metric math in GetMetricData: moto resolves an expression only when it is a bare query id; here
  local_aws/metric_math.py evaluates it (the error-rate and latency alarms' expressions).
- EventBridge: moto delivers a schedule rule (no event pattern) every PutEvents event, as if its
  empty pattern matched all; in AWS a schedule rule only fires on its schedule. And moto's
  default target input drops the event's `account`, which every AWS event carries.
- UpdateModelPackage: moto replaces the package's CustomerMetadataProperties (and approval
  description) with what the update sends, dropping them when it sends none; AWS adds the sent
  properties to the existing ones. An approval would otherwise erase the metrics and lineage the
  register step attached. Likewise an update without ModelApprovalStatus (a promotion's
  metadata) keeps the status; moto cleared it. And moto records no IAM identity in CreatedBy and
  LastModifiedBy (a made-up Studio user instead): here they name the caller (its STS session or
  IAM user), which is what the deploy handler's provenance check reads.
- DynamoDB names the missing table as AWS does ("Requested resource not found: Table: <name> not
  found"); moto says only "Requested resource not found". Terraform treats a DeleteTable that
  finds no table as done only on AWS's wording, so a delete the SDK had retried (the first
  attempt having deleted the table) failed `local down` now and then.
- Signer: GetSigningProfile and CancelSigningProfile of a profile that does not exist answer
  ResourceNotFoundException (404), as AWS does; moto fails with a 500.
- EC2: DeleteLaunchTemplate of a LaunchTemplateId that does not exist answers
  InvalidLaunchTemplateId.NotFound, the code the AWS provider takes for "already deleted"; moto's
  InvalidLaunchTemplateName.NotFoundException failed a destroy whose delete the SDK had retried.
- SageMaker's request constraints: moto takes a name longer than 63 characters, a pattern a
  value breaks, an alias as a job's VolumeKmsKeyId; SageMaker answers ValidationException, and
  so does this server, from botocore's copy of the service model (local_aws/api_constraints.py).
- AWS Budgets: DescribeSubscribersForNotification (how the AWS provider reads a budget's alerts
  back) and the budget tag APIs, which moto lacks, answered from what moto stored.
- IAM enforcement (`mlops local up --enforce-iam`): local_aws/iam_enforcement.py gives moto's
  checks the resources and identities they lack, switched on through its IAM_PATH.
- S3 listings while objects are deleted: moto looks each key up again after copying the names,
  so a key deleted in between fails ListObjectVersions with a 500 (Terraform deletes a bucket's
  objects in parallel); here a listing reads one snapshot, as S3 lists what it held.
- Lambda's code locations: GetFunction's `Code.Location` and GetLayerVersion's
  `Content.Location` are URLs of this server that answer the deployed bytes (moto gives none for
  a zip function, `s3://` for a layer): local_aws/lambda_code_urls.py. The control plane runs what
  they answer, not this checkout.
- No Lambda invocations from SQS: moto runs an event source mapping itself when a message
  arrives, which needs Docker; without it every message is received (its receive count spent)
  and put back. Locally the control plane's worker plays the mapping instead.
- CreateEndpoint of a name in use: moto replaced the endpoint, so the one being served (and set
  InService) was orphaned and the new one stayed Creating, hanging the apply; SageMaker answers
  ValidationException "Cannot create already existing endpoint".
- A retried attempt of a call whose earlier attempt was answered gets that answer again, as the
  client did not receive it (local_aws/retried_attempts.py): a transport fix, not an AWS API.
"""

from __future__ import annotations

import argparse
import contextvars
import functools
import io
import json
import math
import os
import re
import sys
import threading
import urllib.parse
from pathlib import Path
from typing import Any

from botocore import exceptions as botocore_exceptions
from moto import server as moto_server
from moto.budgets import exceptions as budgets_exceptions
from moto.budgets import responses as budgets_responses
from moto.cloudwatch import exceptions as cloudwatch_exceptions
from moto.cloudwatch import models as cloudwatch_models
from moto.cloudwatch import responses as cloudwatch_responses
from moto.core.exceptions import JsonRESTError
from moto.core.utils import utcnow
from moto.dynamodb import exceptions as dynamodb_exceptions
from moto.dynamodb.models import DynamoDBBackend
from moto.ec2 import exceptions as ec2_exceptions
from moto.ec2.models import launch_templates as ec2_launch_templates
from moto.events import models as events_models
from moto.events import utils as events_utils
from moto.iam import access_control, policy_conditions
from moto.s3 import models as s3_models
from moto.s3 import utils as s3_utils
from moto.sagemaker import models as sagemaker_models
from moto.sagemaker import responses as sagemaker_responses
from moto.sagemaker.exceptions import ValidationError
from moto.sagemakerruntime import responses as sagemakerruntime_responses
from moto.signer import models as signer_models
from moto.sqs import models as sqs_models

from local_aws import (
    api_constraints,
    iam_enforcement,
    lambda_code_urls,
    metric_math,
    metric_store,
    source_identity,
)
from local_aws.background import BackgroundControlPlane
from local_aws.deployment_guardrails import problems as deployment_problems
from local_aws.endpoint_runtime import (
    EndpointRuntime,
    InvokeError,
    Settings,
    apply_config,
    list_shadow_variants,
)
from local_aws.http_server import LocalAwsServer
from local_aws.lifecycle import ACCOUNTS_PATH, OUTAGE_PATH
from local_aws.pipeline_executions import PipelineExecutions
from local_aws.retried_attempts import RetriedAttempts
from stacks import moto_gaps

_RUNTIME: EndpointRuntime | None = None
_BACKGROUND: BackgroundControlPlane | None = None
_PIPELINES: PipelineExecutions | None = None
_secure_transport: contextvars.ContextVar[str] = contextvars.ContextVar("secure_transport",
                                                                         default="false")


def _bool_equals(expected: list[str] | str, actual: str) -> bool:
    values = [expected] if isinstance(expected, str | bool) else expected
    return any(str(v).lower() == str(actual).lower() for v in values)


def _statement_applies_only_when_its_condition_holds() -> None:
    original = access_control.IAMPolicyStatement.is_action_permitted

    def is_action_permitted(self, action: str, resource: str = "*", principal: str | None = None,
                            incoming_condition_values: dict[str, str] | None = None):
        if self._statement.get("Condition") and not self._check_conditions(incoming_condition_values):
            return access_control.PermissionResult.NEUTRAL
        return original(self, action, resource, principal, incoming_condition_values)

    access_control.IAMPolicyStatement.is_action_permitted = is_action_permitted


def _bucket_policy_sees_the_transport() -> None:
    def get_permission(self: Any, action: str, resource: str) -> Any:
        if self.policy is None:
            return access_control.PermissionResult.NEUTRAL
        policy = access_control.IAMPolicy(self.policy.decode())
        return policy.is_action_permitted(
            action, resource, incoming_condition_values={"aws:SecureTransport": _secure_transport.get()}
        )

    s3_models.FakeBucket.get_permission = get_permission


def _json_reply(start_response: Any, status: str, body: dict[str, Any]) -> list[bytes]:
    """The answer of one of the local AWS's own switches (not an AWS API)."""
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def _endpoint_outage(environ: dict, start_response: Any) -> list[bytes]:
    """POST {"account", "region", "endpoint", "percent"}: the endpoint's serving fleet fails
    that share of its requests (endpoint_runtime.inject_outage); answers {"config"}."""
    reply = functools.partial(_json_reply, start_response)
    if environ.get("REQUEST_METHOD") != "POST":
        return reply("405 Method Not Allowed", {"message": f"use POST {OUTAGE_PATH}"})
    if _RUNTIME is None:
        return reply("409 Conflict", {"message": "this local AWS serves no endpoints"})
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        request = json.loads(environ["wsgi.input"].read(length) or b"{}")
        key = (str(request["account"]), str(request["region"]), str(request["endpoint"]))
        config = _RUNTIME.inject_outage(key, float(request["percent"]))
    except (KeyError, TypeError, ValueError) as exc:
        return reply("400 Bad Request", {"message": f"expected account, region, endpoint, percent: {exc}"})
    except InvokeError as exc:
        return reply("400 Bad Request", {"message": exc.body.get("Message", str(exc))})
    return reply("200 OK", {"config": config})


def _refused_as_sagemaker_would(environ: dict, start_response: Any) -> list[bytes] | None:
    """A SageMaker API call whose parameters break the service model's constraints (lengths,
    patterns, the worded rules: local_aws/api_constraints.py) gets SageMaker's
    ValidationException, as in AWS; None lets it through (the body is put back to be read)."""
    target = environ.get("HTTP_X_AMZ_TARGET") or ""
    if not target.startswith("SageMaker."):
        return None
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    try:
        params = json.loads(body or b"{}")
        refused = api_constraints.refusal("sagemaker", target.split(".", 1)[1], params, typed=False)
    except (ValueError, KeyError, botocore_exceptions.OperationNotFoundError):
        return None  # not ours to judge: moto answers it
    if refused is None:
        return None
    data = json.dumps({"__type": "ValidationException", "message": refused}).encode()
    start_response("400 Bad Request", [("Content-Type", "application/x-amz-json-1.1"),
                                       ("x-amzn-ErrorType", "ValidationException"),
                                       ("Content-Length", str(len(data)))])
    return [data]


def _iam_switch(environ: dict, start_response: Any) -> list[bytes]:
    """GET -> {"enforced"}; POST {"enforced": bool} switches IAM enforcement (iam_enforcement.py)."""
    if environ.get("REQUEST_METHOD") == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        try:
            wanted = json.loads(environ["wsgi.input"].read(length) or b"{}")["enforced"]
            if not isinstance(wanted, bool):
                raise TypeError("not true or false")
        except (KeyError, TypeError, ValueError) as exc:
            return _json_reply(start_response, "400 Bad Request",
                               {"message": f"expected {{\"enforced\": true|false}}: {exc}"})
        iam_enforcement.enforce(wanted)
    return _json_reply(start_response, "200 OK", {"enforced": iam_enforcement.enforced()})


# The services whose state the local control plane acts on (local_aws/control_plane.py).
_CONTROLLED_SERVICES = ("cloudwatch", "events", "lambda", "sagemaker", "sqs")


def _accounts(environ: dict, start_response: Any) -> list[bytes]:
    """GET -> {"accounts"}: every account moto holds state for in the services the control plane
    acts on (a backend is made for an account at its first request), the default one first."""
    from moto.backends import get_backend

    held = {account for service in _CONTROLLED_SERVICES for account in list(get_backend(service).keys())}
    ordered = [moto_gaps.DEFAULT_ACCOUNT, *sorted(held - {moto_gaps.DEFAULT_ACCOUNT})]
    return _json_reply(start_response, "200 OK", {"accounts": ordered})


class _TransportAwareApp(moto_server.DomainDispatcherApplication):
    def __call__(self, environ: dict, start_response: Any) -> Any:
        if environ.get("PATH_INFO") == ACCOUNTS_PATH:  # nor is this
            return _accounts(environ, start_response)
        if environ.get("PATH_INFO") == OUTAGE_PATH:  # the local drill switch, not an AWS API
            return _endpoint_outage(environ, start_response)
        if environ.get("PATH_INFO") == iam_enforcement.IAM_PATH:  # nor is this
            return _iam_switch(environ, start_response)
        if (environ.get("PATH_INFO") or "").startswith(lambda_code_urls.PATH):  # a package's bytes
            return lambda_code_urls.serve(environ, start_response)
        refused = _refused_as_sagemaker_would(environ, start_response)
        if refused is not None:
            return refused
        https = environ.get("wsgi.url_scheme") == "https"
        token = _secure_transport.set("true" if https else "false")
        try:
            return super().__call__(environ, start_response)
        finally:
            _secure_transport.reset(token)


def _update_endpoint(self: Any) -> Any:
    backend = self.sagemaker_backend
    name, config_name = self._get_param("EndpointName"), self._get_param("EndpointConfigName")
    endpoint = backend.endpoints.get(name)
    if endpoint is None:
        raise ValidationError(message=f"Could not find endpoint '{name}'.")
    backend.describe_endpoint_config(config_name)  # refuses an unknown config
    config = backend.endpoint_configs[config_name]
    retain = bool(self._get_param("RetainAllVariantProperties"))
    if _RUNTIME is None:
        apply_config(endpoint, config, retain)
        return sagemaker_responses.ActionResult({"EndpointArn": endpoint.arn})
    if endpoint.endpoint_status != "InService":
        raise ValidationError(message=f'Cannot update in-progress endpoint "{endpoint.arn}".')
    refused = deployment_problems(self._get_param("DeploymentConfig"))
    if refused:
        raise ValidationError(message="DeploymentConfig: " + "; ".join(refused))
    endpoint.endpoint_status = "Updating"
    endpoint.pending_deployment_summary = {
        "EndpointConfigName": config_name,
        "StartTime": utcnow(),
        "ProductionVariants": [
            {"VariantName": v["VariantName"], "DesiredWeight": float(v.get("InitialVariantWeight", 1.0)),
             "DesiredInstanceCount": int(v.get("InitialInstanceCount", 1)),
             **({"InstanceType": v["InstanceType"]} if v.get("InstanceType") else {})}
            for v in config.production_variants
        ],
    }
    shadows = getattr(config, "shadow_production_variants", None)
    if shadows:
        endpoint.pending_deployment_summary["ShadowProductionVariants"] = [
            {"VariantName": v["VariantName"], "DesiredWeight": float(v.get("InitialVariantWeight", 1.0)),
             "DesiredInstanceCount": int(v.get("InitialInstanceCount", 1))} for v in shadows]
    _RUNTIME.request_update((self.current_account, self.region, name), config_name, retain,
                            self._get_param("DeploymentConfig"))
    return sagemaker_responses.ActionResult({"EndpointArn": endpoint.arn})


SHADOW_RULE = ("an endpoint config with ShadowProductionVariants has exactly one ProductionVariant and "
               "one ShadowProductionVariant")


def _endpoint_configs_keep_shadow_variants() -> None:
    """CreateEndpointConfig keeps ShadowProductionVariants (moto drops them); CreateEndpoint
    lists them on the endpoint, as DescribeEndpoint shows them in AWS, and refuses a name in use
    as SageMaker does (moto replaced the endpoint silently)."""
    responses = sagemaker_responses.SageMakerResponse
    create_config, create_endpoint = responses.create_endpoint_config, responses.create_endpoint

    def create_endpoint_config(self: Any) -> Any:
        shadows = self._get_param("ShadowProductionVariants")
        if shadows:
            if len(shadows) != 1 or len(self._get_param("ProductionVariants") or []) != 1:
                raise ValidationError(message=SHADOW_RULE)
            self.sagemaker_backend.validate_production_variants(shadows)  # its model exists
        result = create_config(self)
        config = self.sagemaker_backend.endpoint_configs[self._get_param("EndpointConfigName")]
        config.shadow_production_variants = shadows or None
        return result

    creating = threading.Lock()  # the server's threads: one name check-and-create at a time

    def create_endpoint_with_shadows(self: Any) -> Any:
        backend = self.sagemaker_backend
        with creating:
            existing = backend.endpoints.get(self._get_param("EndpointName"))
            if existing is not None:  # moto replaced it, orphaning the one being served
                raise ValidationError(message=f'Cannot create already existing endpoint "{existing.arn}".')
            result = create_endpoint(self)
        endpoint = backend.endpoints[self._get_param("EndpointName")]
        list_shadow_variants(endpoint, backend.endpoint_configs[endpoint.endpoint_config_name])
        return result

    responses.create_endpoint_config = create_endpoint_config
    responses.create_endpoint = create_endpoint_with_shadows


def _invoke_endpoint(self: Any) -> Any:
    """InvokeEndpoint answered by the endpoint's model servers (local_aws/endpoint_runtime.py)."""
    name = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path.split("/")[2])
    headers = {k.lower(): v for k, v in self.headers.items()}
    body = self.raw_body if isinstance(self.raw_body, bytes) else (self.raw_body or "").encode()
    try:
        answer = _RUNTIME.invoke(self.current_account, self.region, name, body, headers)
    except InvokeError as exc:
        error_headers = {"x-amzn-ErrorType": exc.code, "Content-Type": "application/json",
                         "status": str(exc.status)}  # moto takes the status from this header
        return exc.status, error_headers, json.dumps(exc.body)
    return answer.status, {**answer.headers, "status": str(answer.status)}, answer.body


def _endpoints_start_creating() -> None:
    original = sagemaker_models.FakeEndpoint.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.endpoint_status = "Creating"  # InService once every variant answers /ping

    sagemaker_models.FakeEndpoint.__init__ = __init__


_PERCENTILE = re.compile(r"^p(\d{1,2}(?:\.\d+)?)$")


def _percentiles_in_statistics() -> None:
    original = cloudwatch_models.Statistics.get_statistics_for_type

    def get_statistics_for_type(self: Any, stat: str) -> Any:
        match = _PERCENTILE.match(stat)
        if not match:
            return original(self, stat)
        values = sorted(self.metric_single_values_list)
        if not values:
            return None
        # Nearest rank, as CloudWatch computes percentiles of raw values.
        rank = math.ceil(float(match.group(1)) / 100 * len(values))
        return values[min(max(rank, 1), len(values)) - 1]

    cloudwatch_models.Statistics.get_statistics_for_type = get_statistics_for_type


class _NoMappings(dict):
    """What moto's queue sees as its Lambda event source mappings: always none."""

    def __setitem__(self, key: Any, value: Any) -> None:
        pass


def _queues_invoke_no_lambdas() -> None:
    def get(self: Any) -> dict:
        return _NoMappings()

    def set_(self: Any, value: Any) -> None:
        pass

    sqs_models.Queue.lambda_event_source_mappings = property(get, set_)


def _bucket_listings_survive_concurrent_deletes() -> None:
    # moto copies a bucket's key names, then looks each one up again: a key another thread deleted
    # in between comes back as None and the listing fails with a 500 (ListObjectVersions while
    # Terraform deletes a bucket's objects in parallel). One snapshot of names and versions
    # together lists what the bucket held at that instant, as S3 does.
    store = s3_utils._VersionedKeyStore

    def lists(self: Any) -> Any:
        yield from dict.copy(self).items()

    def items(self: Any) -> Any:
        for key, versions in dict.copy(self).items():
            if versions:
                yield key, versions[-1]

    def values(self: Any) -> Any:
        for _, latest in items(self):
            yield latest

    store.lists = store.iterlists = store._iterlists = lists
    store.items = store.iteritems = store._iteritems = items
    store.values = store.itervalues = store._itervalues = values


def _package_updates_keep_metadata() -> None:
    backend = sagemaker_models.SageMakerModelBackend
    original = backend.update_model_package

    def update_model_package(self: Any, model_package_arn: str, model_approval_status: Any,
                             approval_description: Any, customer_metadata_properties: Any,
                             *args: Any, **kwargs: Any) -> str:
        name = self.model_package_name_mapping.get(model_package_arn, model_package_arn)
        package = self.model_packages.get(name)
        if package is not None:
            customer_metadata_properties = {**(package.customer_metadata_properties or {}),
                                            **(customer_metadata_properties or {})}
            if approval_description is None:
                approval_description = package.approval_description
            if model_approval_status is None:  # a metadata-only update keeps the status, as in AWS
                model_approval_status = package.model_approval_status
        return original(self, model_package_arn, model_approval_status, approval_description,
                        customer_metadata_properties, *args, **kwargs)

    backend.update_model_package = update_model_package


def _packages_record_who_changed_them() -> None:
    """CreatedBy and LastModifiedBy name the caller's IAM identity (with its session's source
    identity), as DescribeModelPackage does in AWS; moto gives every package the same made-up
    Studio user profile and no IAM identity."""
    from moto.sts.models import sts_backends

    responses = sagemaker_responses.SageMakerResponse

    def caller(self: Any) -> dict[str, Any]:
        backend = sts_backends[self.current_account][self.partition]
        key = self.get_access_key()
        principal, arn, _ = backend.get_caller_identity(key, self.region)
        identity = {"Arn": arn, "PrincipalId": principal}
        # The person behind the session, set when the role was assumed (local_aws/source_identity.py).
        person = source_identity.of_session(self.current_account, self.partition, key)
        return {"IamIdentity": identity | ({"SourceIdentity": person} if person else {})}

    def recorded(original: Any, field: str, replace: bool) -> Any:
        def operation(self: Any) -> Any:
            result = original(self)
            arn = result.result["ModelPackageArn"]
            backend = self.sagemaker_backend
            package = backend.model_packages.get(backend.model_package_name_mapping.get(arn, arn))
            # A create answered from its ClientToken returns the package it made before: its
            # creator stays. Every update is the updater's.
            if package is not None and (replace or "IamIdentity" not in (getattr(package, field) or {})):
                setattr(package, field, caller(self))
            return result
        return operation

    responses.create_model_package = recorded(responses.create_model_package, "created_by", False)
    responses.update_model_package = recorded(responses.update_model_package, "last_modified_by", True)


def _budget_notifications_and_tags() -> None:
    """AWS Budgets: DescribeSubscribersForNotification (the AWS provider reads every budget's
    notifications back through it) and the budget tag APIs, which moto lacks, answered from what
    CreateBudget/CreateNotification stored (tags: CreateBudget's ResourceTags and TagResource)."""
    responses = budgets_responses.BudgetsResponse
    tags: dict[str, dict[str, str]] = {}

    def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
        keys = ("NotificationType", "ComparisonOperator", "ThresholdType")
        return all(a.get(k) == b.get(k) for k in keys) and float(a.get("Threshold", 0)) == float(
            b.get("Threshold", 0))

    def describe_subscribers_for_notification(self: Any) -> str:
        budget = self.backend.budgets[self._get_param("AccountId")][self._get_param("BudgetName")]
        wanted = self._get_param("Notification")
        found = next((n for n in budget.notifications if same(n.details, wanted)), None)
        if found is None:
            raise budgets_exceptions.NotFoundException("Unable to find the notification")
        return json.dumps({"Subscribers": found.subscribers, "NextToken": None})

    original_create = responses.create_budget

    def create_budget(self: Any) -> str:
        name = (self._get_param("Budget") or {}).get("BudgetName", "")
        arn = f"arn:aws:budgets::{self._get_param('AccountId')}:budget/{name}"
        tags[arn] = {t["Key"]: t["Value"] for t in self._get_param("ResourceTags") or []}
        return original_create(self)

    def list_tags_for_resource(self: Any) -> str:
        found = tags.get(self._get_param("ResourceARN"), {})
        return json.dumps({"ResourceTags": [{"Key": k, "Value": v} for k, v in found.items()]})

    def tag_resource(self: Any) -> str:
        stored = tags.setdefault(self._get_param("ResourceARN"), {})
        stored.update({t["Key"]: t["Value"] for t in self._get_param("ResourceTags") or []})
        return json.dumps({})

    def untag_resource(self: Any) -> str:
        stored = tags.setdefault(self._get_param("ResourceARN"), {})
        for key in self._get_param("ResourceTagKeys") or []:
            stored.pop(key, None)
        return json.dumps({})

    responses.describe_subscribers_for_notification = describe_subscribers_for_notification
    responses.create_budget = create_budget
    responses.list_tags_for_resource = list_tags_for_resource
    responses.tag_resource = tag_resource
    responses.untag_resource = untag_resource


def _schedule_rules_match_no_events() -> None:
    original = events_models.Rule.send_to_targets

    def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
        if self.scheduled_expression and not self.event_pattern._pattern:
            return
        original(self, original_event, transform_input)

    events_models.Rule.send_to_targets = send_to_targets
    template = events_utils.EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE
    if '"account"' not in template:
        events_utils.EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE = template.replace(
            '"version": "0", ', '"version": "0", "account": "<account>", ')


def _aws_namespaces_refused() -> None:
    """PutMetricData to an `AWS/` namespace fails as in AWS: only the services write those (here
    the endpoint runtime, straight into the store)."""
    original = cloudwatch_responses.CloudWatchResponse.put_metric_data

    def put_metric_data(self: Any) -> Any:
        namespace = self._get_param("Namespace") or ""
        if namespace.startswith("AWS/"):
            raise cloudwatch_exceptions.InvalidParameterValue(
                f"The value {namespace} for parameter Namespace is invalid.")
        return original(self)

    cloudwatch_responses.CloudWatchResponse.put_metric_data = put_metric_data


def _missing_tables_named() -> None:
    original = DynamoDBBackend.get_table

    def get_table(self: Any, table_name: str) -> Any:
        try:
            return original(self, table_name)
        except dynamodb_exceptions.ResourceNotFoundException:
            raise dynamodb_exceptions.ResourceNotFoundException(table_name=table_name) from None

    DynamoDBBackend.get_table = get_table


def _pipeline_executions_run() -> None:
    """StartPipelineExecution: a parameter the definition does not define is refused and a
    repeated ClientRequestToken returns the earlier execution, as in SageMaker; a new execution
    runs (local_aws/pipeline_executions.py) while the local AWS runs its services, else it keeps
    moto's instant Succeeded."""
    original = sagemaker_models.SageMakerModelBackend.start_pipeline_execution
    lock = threading.Lock()  # the server's threads: one token check-and-create at a time

    def start(self: Any, pipeline_name: str, pipeline_execution_display_name: str,
              pipeline_parameters: list, pipeline_execution_description: str,
              parallelism_configuration: Any, client_request_token: str) -> dict[str, str]:
        pipeline = sagemaker_models.get_pipeline_from_name(self.pipelines, pipeline_name)
        definition = json.loads(pipeline.pipeline_definition)  # unreadable: no execution at all
        defined = {p.get("Name") for p in definition.get("Parameters", [])}
        unknown = sorted({p.get("Name") for p in pipeline_parameters or []} - defined)
        if unknown:
            raise ValidationError(message=f"Pipeline parameter(s) {', '.join(unknown)} not defined in "
                                          f"the pipeline definition of {pipeline_name}.")
        with lock:
            if client_request_token:
                for arn, earlier in pipeline.pipeline_executions.items():
                    if earlier.client_request_token == client_request_token:
                        return {"PipelineExecutionArn": arn}
            answer = original(self, pipeline_name, pipeline_execution_display_name, pipeline_parameters,
                              pipeline_execution_description, parallelism_configuration,
                              client_request_token)
            if _PIPELINES is not None:
                execution = pipeline.pipeline_executions[answer["PipelineExecutionArn"]]
                _PIPELINES.submit(execution, pipeline.pipeline_name, definition, pipeline_parameters)
        return answer

    sagemaker_models.SageMakerModelBackend.start_pipeline_execution = start

    # moto answers DescribePipelineExecution with FailureReason "" whatever happened; SageMaker
    # says why a Failed execution failed (the step and its reason), and callers show it.
    describe = sagemaker_models.SageMakerModelBackend.describe_pipeline_execution

    def described(self: Any, pipeline_execution_arn: str) -> dict[str, Any]:
        answer = describe(self, pipeline_execution_arn)
        execution = sagemaker_models.get_pipeline_execution_from_arn(self.pipelines, pipeline_execution_arn)
        reason = getattr(execution, "pipeline_execution_failure_reason", None)
        if reason:
            answer["FailureReason"] = reason
        else:
            answer.pop("FailureReason", None)
        return answer

    sagemaker_models.SageMakerModelBackend.describe_pipeline_execution = described


def _setting(name: str) -> bool:
    return os.environ.get(name, "false").lower() == "true"


def start_services() -> None:
    """What runs beside the APIs, in the server's worker (local_aws/lifecycle.py sets the
    variables): the endpoint runtime (MLOPS_LOCAL_SERVE_ENDPOINTS) and the background control
    plane (MLOPS_LOCAL_BACKGROUND), both keeping their state in MLOPS_LOCAL_DIR."""
    global _RUNTIME, _BACKGROUND, _PIPELINES
    state_dir = os.environ.get("MLOPS_LOCAL_DIR")
    if not state_dir:
        return
    if _setting("MLOPS_LOCAL_SERVE_ENDPOINTS"):
        _RUNTIME = EndpointRuntime(Settings.from_env(Path(state_dir)))
        _endpoints_start_creating()
        sagemakerruntime_responses.SageMakerRuntimeResponse.invoke_endpoint = _invoke_endpoint
        _RUNTIME.start()
    if _setting("MLOPS_LOCAL_BACKGROUND"):
        _BACKGROUND = BackgroundControlPlane(Path(state_dir))
        _BACKGROUND.start()
    _PIPELINES = PipelineExecutions(Path(state_dir))
    _PIPELINES.start()


def _missing_launch_templates_named_by_id() -> None:
    """DeleteLaunchTemplate of a LaunchTemplateId that does not exist answers
    InvalidLaunchTemplateId.NotFound (of a name: InvalidLaunchTemplateName.NotFoundException), as
    EC2 does and as the AWS provider takes for "already deleted" (moto answers the name's code for
    an id, MissingParameter for a name): a destroy whose delete the SDK had retried, the first
    attempt having deleted the template, failed now and then."""
    original = ec2_launch_templates.LaunchTemplateBackend.delete_launch_template

    def delete_launch_template(self: Any, name: str, tid: str | None) -> Any:
        if name and name not in self.launch_template_name_to_ids:  # moto: MissingParameter
            raise ec2_exceptions.InvalidLaunchTemplateNameNotFoundWithNameError(name)
        if not name and tid is not None and tid not in self.launch_templates:
            raise ec2_exceptions.InvalidLaunchTemplateIdNotFound(tid)
        return original(self, name, tid)

    ec2_launch_templates.LaunchTemplateBackend.delete_launch_template = delete_launch_template


class _SigningProfileNotFound(JsonRESTError):
    code = 404


def _missing_signing_profiles_not_found() -> None:
    """GetSigningProfile (and CancelSigningProfile) of a profile that does not exist answer
    ResourceNotFoundException, HTTP 404, as the Signer API reference documents; moto fails with a
    500 (a KeyError). `mlops deploy` asks before the platform stack makes the profile."""
    for name in ("get_signing_profile", "cancel_signing_profile"):
        original = getattr(signer_models.SignerBackend, name)

        def known_only(self: Any, profile_name: str, _original: Any = original) -> Any:
            if profile_name not in self.signing_profiles:
                raise _SigningProfileNotFound(
                    "ResourceNotFoundException", f"A signing profile named {profile_name} does not exist.")
            return _original(self, profile_name)

        setattr(signer_models.SignerBackend, name, known_only)


def stop_services() -> None:
    """Stops the background control plane and its functions, then the endpoint runtime and every
    model server it started (all by pid)."""
    if _BACKGROUND is not None:
        _BACKGROUND.stop()
    if _PIPELINES is not None:
        _PIPELINES.stop()
    if _RUNTIME is not None:
        _RUNTIME.shutdown()


def patch() -> None:
    policy_conditions.CONDITION_OPERATIONS["Bool"] = _bool_equals
    _statement_applies_only_when_its_condition_holds()
    _bucket_policy_sees_the_transport()
    moto_server.DomainDispatcherApplication = _TransportAwareApp
    sagemaker_responses.SageMakerResponse.update_endpoint = _update_endpoint
    _endpoint_configs_keep_shadow_variants()
    _percentiles_in_statistics()
    cloudwatch_models.parse_expression = metric_math.evaluate_results
    _queues_invoke_no_lambdas()
    _bucket_listings_survive_concurrent_deletes()
    _schedule_rules_match_no_events()
    _package_updates_keep_metadata()
    _packages_record_who_changed_them()
    source_identity.patch()
    _missing_tables_named()
    _missing_signing_profiles_not_found()
    _missing_launch_templates_named_by_id()
    metric_store.patch()
    _aws_namespaces_refused()
    _pipeline_executions_run()
    _budget_notifications_and_tags()
    iam_enforcement.patch()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="the local AWS: moto's APIs with their gaps closed")
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    parser.add_argument("-c", "--ssl-cert", help="certificate (PEM): serve HTTPS")
    parser.add_argument("-k", "--ssl-key", help="its private key (PEM)")
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    os.environ.setdefault("MOTO_PORT", str(args.port))
    patch()
    lambda_code_urls.patch(f"{'https' if args.ssl_cert else 'http'}://{args.host}:{args.port}")
    LocalAwsServer(lambda: RetriedAttempts(_TransportAwareApp(moto_server.create_backend_app)),
                   args.host, args.port,
                   cert=args.ssl_cert, key=args.ssl_key, on_start=start_services,
                   on_stop=stop_services).run()


if __name__ == "__main__":
    main()
