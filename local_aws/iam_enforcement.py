"""IAM enforcement in the local AWS (`mlops local up --enforce-iam`): moto's own, switched on once
the set-up is done, with what it lacks to judge the calls people make as AWS would.

Once enforcement is on (moto's INITIAL_NO_AUTH_ACTION_COUNT, switched at run time through
IAM_PATH), moto checks each request's signature and the caller's identity policies: an IAM
user's inline, attached and group policies, an assumed role's inline and attached ones. What it
lacks, added here:
- A resource for most services. moto authorizes S3, IAM, STS and SQS requests against the
  resource's ARN, every other service's against "*", which no resource-scoped statement matches.
  Here SageMaker (and its runtime), Secrets Manager, CloudTrail, DynamoDB and CloudWatch alarm
  requests name their resource from the request's parameters, as the Service Authorization
  Reference does for the actions people make; other services' stay "*" (a person's
  resource-scoped grant there is refused locally, never wrongly allowed).
- The deployer. The placeholder key Terraform and the local tooling sign with
  (stacks/moto_gaps.PROVIDER_CREDENTIALS) is no IAM user; here it is the account's root, as the
  identity that deploys an account is an administrator, and it is not checked: the local tooling
  also plays AWS's services with it (the Lambda service assuming a function's role).
- Action names. moto prefixes an action with the request's signing name, which for CloudWatch
  is "monitoring"; IAM's prefix is "cloudwatch".
- Member accounts. A session of another account's access role (stacks/moto_gaps.py: how the
  deployer and the control plane reach a second local environment's account) is that account's
  administrator, as the role is in AWS; moto holds no such role, so it is not checked.
- Workloads. The sessions of roles only a service may assume (the Lambda functions', the jobs')
  call services whose resources this table does not resolve (SNS, KMS, CloudWatch, ...) with
  conditions moto does not fill; they are not checked. Every person's call is.

- Condition keys of the request. moto evaluates identity policies without the request's
  condition keys, so every condition holds. Here the keys the platform's policies scope by are
  filled from the request (CONDITION_KEYS: `cloudwatch:namespace` of PutMetricData, which has no
  resource type and is scoped by nothing else), StringLike is evaluated as well as StringEquals,
  and an Allow whose condition does not hold is no explicit denial (moto answers one; AWS just
  does not allow by that statement).

Not evaluated by moto, and so not by `mlops rbac check` (the README says which tests cover them):
permissions boundaries, resource-based policies other than bucket policies, and condition keys
other than the few moto fills from the request (aws:SecureTransport on buckets) and
CONDITION_KEYS.
"""

from __future__ import annotations

import contextvars
import fnmatch
import json
import math
import re
from collections.abc import Callable
from typing import Any

from botocore.credentials import Credentials
from moto import settings
from moto.cloudtrail import responses as cloudtrail_responses
from moto.cloudwatch import responses as cloudwatch_responses
from moto.core.authorization import ActionAuthenticatorMixin
from moto.core.exceptions import AccessDeniedError, JsonRESTError
from moto.dynamodb import responses as dynamodb_responses
from moto.iam import access_control, policy_conditions
from moto.iam.models import iam_backends
from moto.sagemaker import responses as sagemaker_responses
from moto.sagemakerruntime import responses as sagemakerruntime_responses
from moto.secretsmanager import responses as secretsmanager_responses

from local_aws.lifecycle import IAM_PATH
from stacks import moto_gaps

__all__ = ["IAM_PATH", "enforce", "enforced", "patch"]

ALLOW_EVERYTHING = json.dumps({"Version": "2012-10-17",
                               "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})

# SageMaker request parameter -> the resource it names (ARN suffix; None: the value is an ARN).
# The first one a request carries is its resource.
SAGEMAKER_RESOURCES = (
    ("ModelPackageArn", None),
    ("ModelPackageName", "model-package/{}"),
    ("PipelineExecutionArn", None),
    ("PipelineName", "pipeline/{}"),
    ("EndpointName", "endpoint/{}"),
    ("EndpointConfigName", "endpoint-config/{}"),
    # The group's own actions; CreateModelPackage names the group its new version goes into
    # (PACKAGE_IN_GROUP).
    ("ModelPackageGroupName", "model-package-group/{}"),
    ("ModelName", "model/{}"),
    ("TrainingJobName", "training-job/{}"),
    ("ProcessingJobName", "processing-job/{}"),
)
# Signing names that are not the service's IAM prefix (CloudWatch signs as "monitoring").
SIGNING_NAME_PREFIXES = {"monitoring": "cloudwatch"}
PACKAGE_IN_GROUP = "model-package/{}/*"
# (response class, action) -> the condition keys IAM takes from that request, read from its
# parameters: what the platform's policies scope by where an action has no resource type.
CONDITION_KEYS: dict[tuple[type, str], Callable[[Any], dict[str, str]]] = {
    (cloudwatch_responses.CloudWatchResponse, "PutMetricData"):
        lambda response: {"cloudwatch:namespace": response._get_param("Namespace")},
}
# The condition keys of the request being authorized (set around moto's authorization).
_REQUEST_KEYS: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "request_keys", default=None)
_INVOCATION_PATH = re.compile(r"^/endpoints/([^/]+)/")


def enforced() -> bool:
    return math.isfinite(settings.INITIAL_NO_AUTH_ACTION_COUNT)


def enforce(on: bool) -> None:
    """From the next request on, every call is checked (or none is)."""
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0 if on else float("inf")
    ActionAuthenticatorMixin.request_count = 0


def _arn(response: Any, service: str, resource: str) -> str:
    return f"arn:aws:{service}:{response.region}:{response.current_account}:{resource}"


def _sagemaker_resource(self: Any) -> str:
    for parameter, template in SAGEMAKER_RESOURCES:
        value = self._get_param(parameter)
        if parameter == "ModelPackageGroupName" and self._get_action() == "CreateModelPackage":
            template = PACKAGE_IN_GROUP
        if isinstance(value, str) and value:
            if template is None or value.startswith("arn:"):
                return value
            # SageMaker ARNs are lowercase whatever the name's case.
            return _arn(self, "sagemaker", template.format(value).lower())
    return "*"


def _invocation_resource(self: Any) -> str:
    match = _INVOCATION_PATH.match(self.path or "")
    return _arn(self, "sagemaker", f"endpoint/{match.group(1).lower()}") if match else "*"


def _secret_resource(self: Any) -> str:
    secret = self._get_param("SecretId") or self._get_param("Name")
    if not secret:
        return "*"
    return secret if secret.startswith("arn:") else _arn(self, "secretsmanager", f"secret:{secret}")


def _trail_resource(self: Any) -> str:
    trail = self._get_param("Name") or self._get_param("TrailName")
    if not trail:
        return "*"
    return trail if trail.startswith("arn:") else _arn(self, "cloudtrail", f"trail/{trail}")


def _alarm_resource(self: Any) -> str:
    alarm = self._get_param("AlarmName")
    return _arn(self, "cloudwatch", f"alarm:{alarm}") if isinstance(alarm, str) and alarm else "*"


def _table_resource(self: Any) -> str:
    params = getattr(self, "params", None) or {}
    table = params.get("TableName")
    if not isinstance(table, str) or not table:
        return "*"
    index = params.get("IndexName")
    return _arn(self, "dynamodb", f"table/{table}" + (f"/index/{index}" if index else ""))


class _Deployer:
    """The placeholder key's identity: the account's root."""

    def __init__(self, account_id: str, partition: str, access_key_id: str):
        self.account_id, self.partition, self._key = account_id, partition, access_key_id

    @property
    def arn(self) -> str:
        return f"arn:{self.partition}:iam::{self.account_id}:root"

    def create_credentials(self) -> Credentials:
        return Credentials(self._key, moto_gaps.PROVIDER_CREDENTIALS["secret_key"])

    def collect_policies(self) -> list[str]:
        return [ALLOW_EVERYTHING]


class _Workload:
    """A session of a role only a service may assume: signature checked, calls not."""

    def __init__(self, session: Any):
        self._session = session

    @property
    def arn(self) -> str:
        return self._session.arn

    def create_credentials(self) -> Credentials:
        return self._session.create_credentials()

    def collect_policies(self) -> list[str]:
        return [ALLOW_EVERYTHING]


def _assumed_by_services_only(account_id: str, partition: str, role_name: str) -> bool:
    try:
        role = iam_backends[account_id][partition].get_role(role_name)
    except Exception:  # a session of a role that is gone: judged as it is
        return False
    statements = json.loads(role.assume_role_policy_document or "{}").get("Statement") or []
    principals = [s.get("Principal") or {} for s in statements if s.get("Effect") == "Allow"]
    return bool(principals) and all(isinstance(p, dict) and set(p) == {"Service"} for p in principals)


def _identities() -> None:
    made = access_control.IAMRequestBase.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        made(self, *args, **kwargs)
        # moto names the action after the request's signing name; IAM after the service prefix.
        service, _, action = self._action.partition(":")
        self._action = f"{SIGNING_NAME_PREFIXES.get(service, service)}:{action}"

    access_control.IAMRequestBase.__init__ = __init__
    checked = access_control.IAMRequestBase.check_action_permitted

    def check_action_permitted(self: Any, resource: str) -> None:
        if not isinstance(self._access_key, _Deployer):
            checked(self, resource)

    access_control.IAMRequestBase.check_action_permitted = check_action_permitted
    evaluate = access_control.IAMPolicy.is_action_permitted

    def is_action_permitted(self: Any, action: str, resource: str = "*", principal: str | None = None,
                            incoming_condition_values: dict[str, str] | None = None) -> Any:
        # moto's check passes no condition values; the request's keys (CONDITION_KEYS) are here.
        values = incoming_condition_values if incoming_condition_values is not None else _REQUEST_KEYS.get()
        return evaluate(self, action, resource, principal, values or None)

    access_control.IAMPolicy.is_action_permitted = is_action_permitted
    judged = access_control.IAMPolicyStatement.is_action_permitted

    def statement_permits(self: Any, action: str, resource: str = "*", principal: str | None = None,
                          incoming_condition_values: dict[str, str] | None = None) -> Any:
        result = judged(self, action, resource, principal, incoming_condition_values)
        # An Allow whose condition does not hold allows nothing; it denies nothing either.
        if result == access_control.PermissionResult.DENIED and self._statement.get("Effect") == "Allow":
            return access_control.PermissionResult.NEUTRAL
        return result

    access_control.IAMPolicyStatement.is_action_permitted = statement_permits
    # StringLike (the `*` and `?` wildcards), which moto skips (every condition it cannot
    # evaluate holds).
    policy_conditions.CONDITION_OPERATIONS.setdefault("StringLike", _string_like)
    signed = access_control.IAMRequestBase.check_signature

    def check_signature(self: Any) -> None:
        # moto recomputes some requests' signatures wrongly (Lambda's GetLayerVersion by the
        # provider: 403 SignatureDoesNotMatch); the deployer's key is a placeholder anyway.
        if not isinstance(self._access_key, _Deployer):
            signed(self)

    access_control.IAMRequestBase.check_signature = check_signature
    original = access_control.create_access_key

    def create_access_key(account_id: str, partition: str, access_key_id: str,
                          headers: dict[str, str]) -> Any:
        if access_key_id == moto_gaps.PROVIDER_CREDENTIALS["access_key"]:
            return _Deployer(account_id, partition, access_key_id)
        key = original(account_id=account_id, partition=partition, access_key_id=access_key_id,
                       headers=headers)
        if isinstance(key, access_control.AssumedRoleAccessKey) and (
                key._owner_role_name == moto_gaps.ACCOUNT_ACCESS_ROLE
                or _assumed_by_services_only(account_id, partition, key._owner_role_name)):
            # A member account's access role is its administrator (AdministratorAccess, as AWS
            # Organizations makes it); moto holds no such role, so its session is let through.
            return _Workload(key)
        return key

    access_control.create_access_key = create_access_key


def _string_like(expected: list[str] | str, actual: str) -> bool:
    patterns = [expected] if isinstance(expected, str) else expected
    return any(fnmatch.fnmatchcase(actual, p) for p in patterns)


def _denials_in_the_service_protocol() -> None:
    """moto answers every denial with S3's XML; a JSON service's client then reads the code "403".
    AWS answers in the service's protocol: {"__type": "AccessDeniedException", ...}."""
    original = ActionAuthenticatorMixin._authenticate_and_authorize_normal_action

    def authorize(self: Any, resource: str = "*") -> None:
        keys = CONDITION_KEYS.get((type(self), self._get_action()))
        token = _REQUEST_KEYS.set({k: v for k, v in keys(self).items() if isinstance(v, str)} if keys else {})
        try:
            original(self, resource)
        except AccessDeniedError as denied:
            runtime = isinstance(self, sagemakerruntime_responses.SageMakerRuntimeResponse)
            if not runtime and "X-Amz-Target" not in (self.headers or {}):
                raise
            error = JsonRESTError("AccessDeniedException", denied.message)
            error.code = 403 if runtime else 400
            raise error from None
        finally:
            _REQUEST_KEYS.reset(token)

    ActionAuthenticatorMixin._authenticate_and_authorize_normal_action = authorize


def patch() -> None:
    """Resources, identities and denials as above; enforcement stays off until `enforce(True)`."""
    _identities()
    _denials_in_the_service_protocol()
    sagemaker_responses.SageMakerResponse._determine_resource = _sagemaker_resource
    sagemakerruntime_responses.SageMakerRuntimeResponse._determine_resource = _invocation_resource
    secretsmanager_responses.SecretsManagerResponse._determine_resource = _secret_resource
    cloudtrail_responses.CloudTrailResponse._determine_resource = _trail_resource
    dynamodb_responses.DynamoHandler._determine_resource = _table_resource
    cloudwatch_responses.CloudWatchResponse._determine_resource = _alarm_resource
