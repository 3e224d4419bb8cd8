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
- sts:SetSourceIdentity. An AssumeRole whose session carries a source identity needs it from the
  caller's policies and the role's trust policy, as AWS asks; moto checks sts:AssumeRole only.
- Action names. moto prefixes an action with the request's signing name, which for CloudWatch
  is "monitoring"; IAM's prefix is "cloudwatch".
- Member accounts. A session of another account's access role (stacks/moto_gaps.py: how the
  deployer and the control plane reach a second local environment's account) is that account's
  administrator, as the role is in AWS; moto holds no such role, so it is not checked.
- Workloads. The sessions of roles only a service may assume (the Lambda functions', the jobs')
  call services whose resources this table does not resolve (SNS, KMS, CloudWatch, ...) with
  conditions moto does not fill; they are not checked. Every person's call is.

- Conditions. moto knows StringEquals only (other operators hold), pairs a block's values with
  the request's by position, skips a key the request lacks (the condition holds) and answers
  DENIED for any statement whose condition fails. Here a statement's Condition is judged by
  local_aws/iam_conditions.py as IAM judges it (an absent key makes it false, but for negated
  operators, IfExists and Null; StringLike's only wildcards `*` and `?`; ...), and a statement
  whose condition does not hold does not apply, Allow or Deny. The request context it is judged
  against:
  - from the request: aws:SecureTransport (the scheme the server was reached by: true under
    `mlops local up`, which serves HTTPS), aws:CurrentTime, aws:EpochTime, aws:RequestedRegion,
    aws:ViaAWSService (false: locally no service calls with a person's credentials), s3:prefix
    of a listing, s3:ResourceAccount and aws:ResourceAccount of an S3 request (its bucket's
    owner; absent while the bucket does not exist), and CONDITION_KEYS: cloudwatch:namespace
    (PutMetricData), sagemaker:ModelApprovalStatus (Create/UpdateModelPackage), an object
    write's s3:if-none-match, s3:if-match and s3:ObjectCreationOperation, AssumeRole's aws:RequestTag/<key>,
    aws:TagKeys and sts:SourceIdentity (set by the request or inherited from the caller's
    session), iam:PermissionsBoundary and iam:PolicyARN of the IAM writes they scope;
  - from the caller: aws:PrincipalArn (a role session's is its role's ARN), aws:PrincipalAccount,
    aws:PrincipalType, aws:userid, aws:username (an IAM user's), aws:PrincipalTag/<key> (the
    user's or the role's tags), aws:SourceIdentity (a session's, local_aws/source_identity.py);
  - moto's own: sts:ExternalId of AssumeRole (trust policies); a bucket policy is judged with
    aws:SecureTransport alone (local_aws/moto_server.py), and only its Deny statements count.
  Not knowable here, so absent, as AWS treats a request without them: aws:MultiFactorAuthPresent
  and aws:TokenIssueTime (moto records no MFA), session tags of a session (aws:PrincipalTag is the
  role's), aws:SourceIp/SourceVpc(e), and the keys AWS services set when they act (aws:SourceArn,
  aws:SourceAccount, kms:ViaService, kms:EncryptionContext:*, kms:GrantIsForAWSResource,
  s3:x-amz-acl), which concern workloads and service principals, unchecked here. Effect on the
  platform's policies: the persona trust policies of environments with `require_mfa` (prod)
  would refuse every AssumeRole locally (absent = false), as they refuse one made without MFA in
  AWS; the local environment's have no condition. iam:PassedToService needs no value: moto never
  checks the iam:PassRole a call implies. The Studio keys (sagemaker:ResourceTag/studiouserid,
  SpaceSharingType, OwnerUserProfileArn, TaggingAction) scope statements only where Studio is,
  never in the local stacks. A test (tests/unit/test_iam_conditions.py) keeps every condition the
  RBAC matrix's calls reach on a key filled here.
- A condition IAM would have refused when the policy was written (an unknown operator moto let
  through, `Bool` with a value other than true/false, ...) fails the request with
  MalformedPolicyDocument, logged, rather than being skipped.

Not evaluated by moto, and so not by `mlops rbac check` (the README says which tests cover them):
permissions boundaries, resource-based policies other than bucket policies (and those only for
their Deny statements), the actions a call implies (iam:PassRole, kms:Decrypt, ...).
"""

from __future__ import annotations

import contextvars
import json
import logging
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import flask
from botocore.credentials import Credentials
from moto import settings
from moto.cloudtrail import responses as cloudtrail_responses
from moto.cloudwatch import responses as cloudwatch_responses
from moto.core.authorization import ActionAuthenticatorMixin
from moto.core.exceptions import AccessDeniedError, JsonRESTError
from moto.core.exceptions import _RESTError as RESTError  # the XML error of the query protocols
from moto.dynamodb import responses as dynamodb_responses
from moto.iam import access_control
from moto.iam import responses as iam_responses
from moto.iam.models import iam_backends
from moto.s3 import exceptions as s3_exceptions
from moto.s3 import responses as s3_responses
from moto.sagemaker import responses as sagemaker_responses
from moto.sagemakerruntime import responses as sagemakerruntime_responses
from moto.secretsmanager import responses as secretsmanager_responses
from moto.sts import responses as sts_responses
from moto.sts.exceptions import STSValidationError

from local_aws import iam_conditions, source_identity
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
# (response class, action) -> the service's condition keys IAM takes from that request, read from
# its parameters (Service Authorization Reference): what the platform's policies scope by.
ConditionValues = dict[str, str | list[str] | None]


def _param(key: str, parameter: str) -> Callable[[Any], ConditionValues]:
    return lambda response: {key: response._get_param(parameter)}


_IAM = iam_responses.IamResponse
_SAGEMAKER = sagemaker_responses.SageMakerResponse
CONDITION_KEYS: dict[tuple[type, str], Callable[[Any], ConditionValues]] = {
    # No resource type: the namespace is PutMetricData's only scope.
    (cloudwatch_responses.CloudWatchResponse, "PutMetricData"): _param("cloudwatch:namespace", "Namespace"),
    (_SAGEMAKER, "CreateModelPackage"): _param("sagemaker:ModelApprovalStatus", "ModelApprovalStatus"),
    (_SAGEMAKER, "UpdateModelPackage"): _param("sagemaker:ModelApprovalStatus", "ModelApprovalStatus"),
    (sts_responses.TokenResponse, "AssumeRole"): lambda response: {
        **_request_tags(response), "sts:SourceIdentity": _source_identity(response)},
    # What the permissions boundary and the CI deploy role scope IAM writes by.
    **{(_IAM, action): _param("iam:PermissionsBoundary", "PermissionsBoundary")
       for action in ("CreateRole", "PutRolePermissionsBoundary", "CreateUser",
                      "PutUserPermissionsBoundary")},
    **{(_IAM, f"{verb}{kind}Policy"): _param("iam:PolicyARN", "PolicyArn")
       for verb in ("Attach", "Detach") for kind in ("Role", "User", "Group")},
}
# The request context of the request being authorized (iam_conditions.context_of's shape), set
# around moto's authorization: the request's keys, then the caller's.
_REQUEST_KEYS: contextvars.ContextVar[dict[str, list[str]] | None] = contextvars.ContextVar(
    "request_keys", default=None)
SOURCE_IDENTITY_KEY = "sts:sourceidentity"  # as context_of lowercases it
log = logging.getLogger(__name__)
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
        if isinstance(self._access_key, _Deployer):
            return
        token = _REQUEST_KEYS.set({**(_REQUEST_KEYS.get() or {}), **_principal_keys(self)})
        try:
            checked(self, resource)
            if self._action == "sts:AssumeRole" and SOURCE_IDENTITY_KEY in (_REQUEST_KEYS.get() or {}):
                _check_set_source_identity(self, resource)
        finally:
            _REQUEST_KEYS.reset(token)

    access_control.IAMRequestBase.check_action_permitted = check_action_permitted

    def check_conditions(self: Any, incoming_condition_values: dict[str, str] | None) -> bool:
        # The request's context (filled here: moto passes none, or only sts:ExternalId and a
        # bucket policy's aws:SecureTransport) judged as IAM judges it (iam_conditions).
        passed = iam_conditions.context_of(incoming_condition_values or {})
        context = {**(_REQUEST_KEYS.get() or {}), **passed}
        try:
            return iam_conditions.condition_holds(self._statement.get("Condition"), context)
        except iam_conditions.ConditionError as bad:
            log.error("policy statement %s: %s", self._statement.get("Sid") or self._statement, bad)
            raise

    access_control.IAMPolicyStatement._check_conditions = check_conditions
    judged = access_control.IAMPolicyStatement.is_action_permitted

    def statement_permits(self: Any, action: str, resource: str = "*", principal: str | None = None,
                          incoming_condition_values: dict[str, str] | None = None) -> Any:
        # A statement whose condition does not hold does not apply: an Allow allows nothing, a
        # Deny denies nothing (moto answers DENIED for both).
        if self._statement.get("Condition") and not self._check_conditions(incoming_condition_values):
            return access_control.PermissionResult.NEUTRAL
        return judged(self, action, resource, principal, incoming_condition_values)

    access_control.IAMPolicyStatement.is_action_permitted = statement_permits
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


def _source_identity(response: Any) -> str | None:
    """What AssumeRole's session will carry (set by the request or the caller's session); a
    malformed one is left to the call itself to refuse."""
    try:
        return source_identity.requested(response)
    except STSValidationError:
        return None


def _check_set_source_identity(request: Any, role_arn: str) -> None:
    """A session that carries a source identity (set now or inherited by role chaining) needs
    sts:SetSourceIdentity from the caller's policies and the role's trust policy, as AWS asks
    ("Permissions required to set source identity"); moto checks sts:AssumeRole only."""
    action = "sts:SetSourceIdentity"
    permitted = False
    for policy in request._access_key.collect_policies():
        result = access_control.IAMPolicy(policy).is_action_permitted(action, role_arn)
        if result == access_control.PermissionResult.DENIED:
            request._raise_access_denied()
        permitted = permitted or result == access_control.PermissionResult.PERMITTED
    if not permitted:
        request._raise_access_denied()
    try:
        role = request.backend.get_role_by_arn(role_arn)
    except Exception:  # no such role here (another account's access role): moto's check decided
        return
    trust = access_control.IAMPolicy(role.assume_role_policy_document).is_action_permitted(
        action, role_arn, request._access_key.arn, access_control.format_incoming_conditional_values(
            request._data))
    if trust != access_control.PermissionResult.PERMITTED:
        request._raise_access_denied()


def _request_tags(response: Any) -> ConditionValues:
    """AssumeRole's session tags: aws:RequestTag/<key> and aws:TagKeys (what persona trust
    policies scope by in the environments with Studio)."""
    tags = response._get_params().get("Tags") or []
    keys: ConditionValues = {f"aws:RequestTag/{t['Key']}": t.get("Value", "") for t in tags if "Key" in t}
    return {**keys, "aws:TagKeys": [t["Key"] for t in tags if "Key" in t] or None}


def _secure_transport() -> str:
    # The scheme the server was reached by (moto's own request URL always says http); moto's
    # server answers each request inside the Flask app of its service.
    https = flask.has_request_context() and flask.request.environ.get("wsgi.url_scheme") == "https"
    return "true" if https else "false"


def _request_keys(response: Any) -> dict[str, list[str]]:
    """The request's condition keys that the response (moto's parsed request) tells: the global
    ones of every request and the service's (CONDITION_KEYS, s3:prefix)."""
    now = datetime.now(UTC)
    values: ConditionValues = {
        "aws:SecureTransport": _secure_transport(),
        "aws:CurrentTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "aws:EpochTime": str(int(now.timestamp())),
        "aws:RequestedRegion": response.region,
        # Locally no service forwards a caller's credentials (no forward access sessions).
        "aws:ViaAWSService": "false",
    }
    keys = CONDITION_KEYS.get((type(response), response._get_action()))
    if keys:
        values.update(keys(response))
    if isinstance(response, s3_responses.S3Response) and response.method == "GET":
        # ListObjects(V2) and ListObjectVersions: the prefix parameter, when the request has one.
        prefix = (response.querystring or {}).get("prefix")
        values["s3:prefix"] = prefix[0] if isinstance(prefix, list) and prefix else prefix
    if isinstance(response, s3_responses.S3Response) and response.method in ("PUT", "POST"):
        values.update(_conditional_write_keys(response))
    if isinstance(response, s3_responses.S3Response):
        values["s3:ResourceAccount"] = values["aws:ResourceAccount"] = _bucket_owner(response)
    return iam_conditions.context_of(values)


def _bucket_owner(response: Any) -> str | None:
    """The account that owns the request's bucket (s3:ResourceAccount, aws:ResourceAccount);
    None, the key absent, for a request without a bucket or whose bucket does not exist yet."""
    name = getattr(response, "bucket_name", None)
    if not name:
        return None
    try:
        return response.backend.get_bucket(name).account_id
    except s3_exceptions.MissingBucket:  # CreateBucket, or no such bucket: S3 answers the request
        return None


def _conditional_write_keys(response: Any) -> ConditionValues:
    """An object write's conditional headers (S3's "Enforce conditional writes"): s3:if-none-match
    and s3:if-match, and s3:ObjectCreationOperation, false for the multipart steps that take no
    conditional header (CreateMultipartUpload, UploadPart, UploadPartCopy), true for the writes
    that create the object (PutObject, CopyObject, CompleteMultipartUpload)."""
    headers, query = response.headers or {}, response.querystring or {}
    if response.method == "PUT":
        creation = "false" if "partNumber" in query else "true"
    elif "uploads" in query:
        creation = "false"
    elif "uploadId" in query:
        creation = "true"
    else:  # a POST that writes no object (DeleteObjects, ...)
        creation = None
    return {"s3:if-none-match": headers.get("If-None-Match"), "s3:if-match": headers.get("If-Match"),
            "s3:ObjectCreationOperation": creation}


def _tags(entity: Any) -> dict[str, str]:
    tags = getattr(entity, "tags", None) or {}
    items = tags.values() if isinstance(tags, dict) else tags
    return {t["Key"]: t.get("Value", "") for t in items if isinstance(t, dict) and "Key" in t}


def _principal_keys(request: Any) -> dict[str, list[str]]:
    """The caller's global condition keys (aws:PrincipalArn, aws:PrincipalAccount,
    aws:PrincipalType, aws:userid, aws:username for a user, aws:PrincipalTag/<key> of the user or
    role). Not known here, so absent as for a caller AWS has none of: session tags and
    aws:MultiFactorAuthPresent / aws:TokenIssueTime (moto keeps no record of them)."""
    key = request._access_key
    account = getattr(key, "account_id", request.account_id)
    values: ConditionValues = {"aws:PrincipalAccount": account, "aws:PrincipalArn": getattr(key, "arn", None)}
    backend = request.backend
    if isinstance(key, access_control.IAMUserAccessKey):
        user = backend.get_user(key._owner_user_name)
        values.update({"aws:PrincipalArn": user.arn, "aws:PrincipalType": "User", "aws:username": user.name,
                       "aws:userid": user.id})
        values.update({f"aws:PrincipalTag/{k}": v for k, v in _tags(user).items()})
    elif isinstance(key, access_control.AssumedRoleAccessKey):
        # For a role session aws:PrincipalArn is the role's ARN, not the session's.
        try:
            role = backend.get_role(key._owner_role_name)
        except Exception:  # a session of a role that is gone: only what the session tells
            role = None
        values.update({"aws:PrincipalType": "AssumedRole", "aws:SourceIdentity": source_identity.of_session(
            key.account_id, key.partition, key._access_key_id)})
        if role is not None:
            values.update({"aws:PrincipalArn": role.arn, "aws:userid": f"{role.id}:{key._session_name}"})
            values.update({f"aws:PrincipalTag/{k}": v for k, v in _tags(role).items()})
    return iam_conditions.context_of(values)


def _malformed_policy(response: Any, bad: iam_conditions.ConditionError) -> RESTError:
    """A condition AWS would have refused at PutRolePolicy: the request fails saying so, rather
    than the statement being skipped (allowing or denying by accident)."""
    message = f"a policy of the caller has a condition IAM refuses: {bad}"
    if "X-Amz-Target" in (response.headers or {}):
        return JsonRESTError("MalformedPolicyDocument", message)
    return RESTError("MalformedPolicyDocument", message)


def _request_context() -> None:
    """Every authorized request (S3's too) carries its condition keys into the policies' check."""
    original = ActionAuthenticatorMixin._authenticate_and_authorize_action

    def authorize(self: Any, iam_request_cls: type, resource: str = "*") -> None:
        # Only a checked request (enforcement on) needs its context.
        token = _REQUEST_KEYS.set(_request_keys(self) if enforced() else None)
        try:
            original(self, iam_request_cls, resource)
        except iam_conditions.ConditionError as bad:
            raise _malformed_policy(self, bad) from None
        finally:
            _REQUEST_KEYS.reset(token)

    ActionAuthenticatorMixin._authenticate_and_authorize_action = authorize


def _denials_in_the_service_protocol() -> None:
    """moto answers every denial with S3's XML; a JSON service's client then reads the code "403".
    AWS answers in the service's protocol: {"__type": "AccessDeniedException", ...}."""
    original = ActionAuthenticatorMixin._authenticate_and_authorize_normal_action

    def authorize(self: Any, resource: str = "*") -> None:
        try:
            original(self, resource)
        except AccessDeniedError as denied:
            runtime = isinstance(self, sagemakerruntime_responses.SageMakerRuntimeResponse)
            if not runtime and "X-Amz-Target" not in (self.headers or {}):
                raise
            error = JsonRESTError("AccessDeniedException", denied.message)
            error.code = 403 if runtime else 400
            raise error from None

    ActionAuthenticatorMixin._authenticate_and_authorize_normal_action = authorize


def patch() -> None:
    """Resources, identities and denials as above; enforcement stays off until `enforce(True)`."""
    _identities()
    _request_context()
    _denials_in_the_service_protocol()
    sagemaker_responses.SageMakerResponse._determine_resource = _sagemaker_resource
    sagemakerruntime_responses.SageMakerRuntimeResponse._determine_resource = _invocation_resource
    secretsmanager_responses.SecretsManagerResponse._determine_resource = _secret_resource
    cloudtrail_responses.CloudTrailResponse._determine_resource = _trail_resource
    dynamodb_responses.DynamoHandler._determine_resource = _table_resource
    cloudwatch_responses.CloudWatchResponse._determine_resource = _alarm_resource
