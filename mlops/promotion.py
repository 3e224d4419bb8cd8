"""`mlops model promote --project P --from SOURCE --to TARGET [--version N] [--json]`
(and `--require-shadow-report`).

Copies an Approved package of the source environment's registry (staging) into the target's
(prod), the only way a model reaches a production environment:

1. the source package: version N of the source group, or its newest Approved one; it must be
   Approved now;
2. with `--require-shadow-report` (or the target's `promotion.require_shadow_report`): a passing
   `mlops shadow report` of the source endpoint whose shadow variant served this package;
3. the model artifact (and its evaluation report) copied into the target's artifacts bucket,
   `<project>/promoted/<source group>/<version>/`, encrypted with the target's platform key,
   create-only (`If-None-Match: *`: the same bytes there already are reused, others refused); the
   archive's SHA-256 is kept in the package's metadata;
4. the image: the target's own inference repository must hold the source image's tag with the
   same digest (images reach each environment's ECR by `mlops image push --env ENV` from the
   same checkout); the target package names it by digest;
5. a package in the target's group, PendingManualApproval, carrying the lineage (data versions,
   git commit, evaluation, MLflow run: the source's metadata), `promoted_from` (the source
   package's ARN, which the target's deploy handler requires) and `promoted_from_approver`.

Who may do what is IAM's (docs/permissions.md): the ML engineer persona runs this (it reads the
source through the source's resource policies and creates the target package); an approver
persona of the target, another person, approves it; the deploy handler then serves it through
the normal guarded path. Idempotent: a second run finds the package it made (`reused`).

In AWS both sides are read with the caller's credentials (the target's ML engineer role reaches
the source's account through its resource policies). Locally, where moto keeps accounts apart
but ignores resource policies, the source is read as the source environment's ML engineer: two
sessions, each in its own account.

Exit codes: 0 promoted (or found promoted already); 1 refused or failed (the message says why);
2 bad arguments or configuration.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from mlops.create_only import DifferentObjectError, upload_once
from mlops.drill_fault import CONTAINER_FIELDS, SPEC_FIELDS
from mlops.project import Project
from stacks.config import Environment
from stacks.naming import Naming, ProjectNames

ClientFactory = Callable[[str], Any]

PENDING = "PendingManualApproval"
PERSONA = "ml_engineer"
# CustomerMetadataProperties: at most 50 entries, values 1-256 of letters, digits, spaces and _.:/=+-@
_METADATA_OUTSIDE = re.compile(r"[^A-Za-z0-9 _.:/=+\-@]")
METADATA_MAX = 256
METADATA_ENTRIES = 50
DESCRIPTION_MAX = 1024
# The source's own shadow pass does not travel: the target judges its own shadow tests.
NOT_COPIED = frozenset({"shadow-report-passed"})
TOKEN_NAMESPACE = uuid.UUID("0b8f4f0e-5a8d-4c55-9d0e-6f3d7b1a2c4e")
IMAGE = re.compile(r"^(?P<registry>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
                   r"(?P<repository>[^:@]+)(?::(?P<tag>[\w.-]+))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$")


class PromotionError(Exception):
    """The promotion was refused or could not be made; the message says why."""


@dataclass(frozen=True)
class Side:
    """One environment of a promotion: its names and clients."""

    env: Environment
    names: ProjectNames
    client: ClientFactory

    @property
    def group_arn(self) -> str:
        return self.names.model_package_group_arn


def metadata_value(value: object) -> str:
    text = _METADATA_OUTSIDE.sub("_", str(value)).strip() or "_"
    return text[:METADATA_MAX]


def _s3_parts(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise PromotionError(f"{uri!r} is not an s3:// object URI")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


def source_package(source: Side, version: int | None) -> dict[str, Any]:
    """The package to promote, described: version N, or the newest Approved one."""
    sagemaker = source.client("sagemaker")
    if version is not None:
        arn = source.names.package_arn(version)
        try:
            package = sagemaker.describe_model_package(ModelPackageName=arn)
        except ClientError as exc:
            raise PromotionError(f"version {version} of {source.group_arn}: {exc}") from exc
    else:
        listed = sagemaker.list_model_packages(
            ModelPackageGroupName=source.group_arn, ModelApprovalStatus="Approved",
            SortBy="CreationTime", SortOrder="Descending", MaxResults=1)["ModelPackageSummaryList"]
        if not listed:
            raise PromotionError(f"{source.group_arn} has no Approved package to promote")
        package = sagemaker.describe_model_package(ModelPackageName=listed[0]["ModelPackageArn"])
    status = package.get("ModelApprovalStatus")
    if status != "Approved":
        raise PromotionError(f"{package['ModelPackageArn']} is {status}: "
                             "only an Approved package is promoted")
    return package


def existing_promotion(target: Side, source_arn: str) -> dict[str, Any] | None:
    """The target's package already promoted from this source package (newest first)."""
    sagemaker = target.client("sagemaker")
    pages = sagemaker.get_paginator("list_model_packages").paginate(
        ModelPackageGroupName=target.names.model_package_group, SortBy="CreationTime", SortOrder="Descending")
    for page in pages:
        for summary in page.get("ModelPackageSummaryList", []):
            described = sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
            if (described.get("CustomerMetadataProperties") or {}).get("promoted_from") == source_arn:
                return described
    return None


def _reports(source: Side, package: dict[str, Any]) -> list[str]:
    """Keys of the source endpoint's shadow reports, newest first, the one the package names first."""
    s3, bucket = source.client("s3"), source.names.artifacts_bucket
    named = (package.get("CustomerMetadataProperties") or {}).get("shadow-report-passed")
    keys = [_s3_parts(named)[1]] if named and named.startswith(f"s3://{bucket}/") else []
    prefix = f"{source.names.project}/shadow/{source.names.endpoint}/"
    listed = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
              for o in page.get("Contents", []) if o["Key"].endswith("/report.json")]
    return list(dict.fromkeys(keys + sorted(listed, reverse=True)))  # window ends sort as time does


def shadow_report_problems(source: Side, package: dict[str, Any]) -> tuple[str | None, list[str]]:
    """(the passing report's URI, []) or (None, why not): the newest report whose shadow variant
    served this package decides."""
    arn, s3, bucket = package["ModelPackageArn"], source.client("s3"), source.names.artifacts_bucket
    for key in _reports(source, package):
        report = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        if (report.get("packages") or {}).get("shadow") != arn:
            continue
        uri = f"s3://{bucket}/{key}"
        if report.get("passed") is True:
            return uri, []
        return None, [f"its shadow report {uri} failed: {'; '.join(report.get('reasons') or ['no reasons'])}"]
    return None, [f"no shadow report of {source.names.endpoint} in {source.env.name} tested {arn} "
                  f"(run `mlops shadow report --env {source.env.name} --project {source.names.project}` "
                  "while it serves as the shadow variant)"]


class _Hashing:
    """A readable stream that hashes what passes through it (the copy is checked end to end)."""

    def __init__(self, body: Any):
        self.body, self.sha256, self.size = body, hashlib.sha256(), 0

    def read(self, amount: int = -1) -> bytes:
        chunk = self.body.read(amount) if amount is not None and amount >= 0 else self.body.read()
        self.sha256.update(chunk)
        self.size += len(chunk)
        return chunk


def copy_object(source: Side, target: Side, uri: str, key: str) -> tuple[str, str, bool]:
    """Streams the object into the target's artifacts bucket under the target's key, create-only
    (mlops/create_only.py: a promoted copy is never replaced); returns (its s3:// URI there, its
    SHA-256, whether this run created it rather than finding the same bytes there)."""
    bucket, source_key = _s3_parts(uri)
    got = source.client("s3").get_object(Bucket=bucket, Key=source_key)
    stream = _Hashing(got["Body"])
    key_arn = target.names.naming.arn("kms", target.names.key_alias)
    try:
        created = upload_once(
            target.client("s3"), target.names.artifacts_bucket, key, stream,
            {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key_arn,
             "ContentType": got.get("ContentType") or "application/octet-stream"})
    except DifferentObjectError as exc:
        raise PromotionError(f"refused: {exc}") from exc
    if got.get("ContentLength") is not None and stream.size != got["ContentLength"]:
        raise PromotionError(f"copied {stream.size} of the {got['ContentLength']} bytes of {uri}")
    return f"s3://{target.names.artifacts_bucket}/{key}", stream.sha256.hexdigest(), created


def target_image(source: Side, target: Side, image: str) -> tuple[str, str]:
    """(the target's image URI, a note): the same tag in the target's inference repository, pinned
    to the digest the source's image has."""
    match = IMAGE.match(image)
    if not match:
        raise PromotionError(f"the package's image {image!r} is not an ECR image URI")
    repository = target.names.naming.name("inference")
    tag, digest = match["tag"], match["digest"]
    url = target.names.repository_url("inference")
    if source.env.is_local:
        # As `mlops deploy` says: no local job runs in a container, so no image is pushed to the
        # local ECR and there is no digest to compare.
        return f"{url}:{tag}" if tag else f"{url}@{digest}", "not checked: the local AWS holds no images"
    image_id = {"imageDigest": digest} if digest else {"imageTag": tag}
    try:
        source_digest = source.client("ecr").describe_images(
            registryId=match["registry"], repositoryName=match["repository"],
            imageIds=[image_id])["imageDetails"][0]["imageDigest"]
    except Exception as exc:
        raise PromotionError(f"the source image {image}: {exc}") from exc
    lookup = {"imageTag": tag} if tag else {"imageDigest": source_digest}
    try:
        found = target.client("ecr").describe_images(repositoryName=repository, imageIds=[lookup])
        target_digest = found["imageDetails"][0]["imageDigest"]
    except Exception as exc:
        raise PromotionError(
            f"{url} lacks the image {tag or source_digest} ({exc}): push it with "
            f"`mlops image push --env {target.env.name}` from the checkout that built it") from exc
    if target_digest != source_digest:
        raise PromotionError(f"{url}:{tag} is {target_digest}, not the source image's {source_digest}: "
                             "push the same build to both environments")
    return f"{url}@{source_digest}", f"same digest {source_digest} in both registries"


def _approver(package: dict[str, Any]) -> str:
    return ((package.get("LastModifiedBy") or {}).get("IamIdentity") or {}).get("Arn") or "unknown"


def target_request(source: Side, target: Side, package: dict[str, Any], containers: list[dict[str, Any]],
                   evaluation_uri: str | None, artifact_sha256: str,
                   evaluation_sha256: str | None = None) -> dict[str, Any]:
    """The CreateModelPackage request of the promoted package."""
    from lambdas.shared.control.gate import EVALUATION_SHA256  # the key the gate checks

    arn = package["ModelPackageArn"]
    metadata = {k: v for k, v in (package.get("CustomerMetadataProperties") or {}).items()
                if k not in NOT_COPIED}
    # The gate reads the copied report and checks it against evaluation_sha256 (its own key: a
    # source's value would not describe this copy).
    promotion = {"promoted_from": arn, "promoted_from_approver": metadata_value(_approver(package)),
                 "promoted_from_environment": source.env.name, "artifact_sha256": artifact_sha256,
                 **({EVALUATION_SHA256: evaluation_sha256} if evaluation_sha256 else {})}
    metadata = {k: v for k, v in metadata.items() if k != EVALUATION_SHA256} | promotion
    if len(metadata) > METADATA_ENTRIES:
        raise PromotionError(f"{arn} carries {len(metadata) - len(promotion)} metadata entries: with the "
                             f"promotion's {len(promotion)} that is over SageMaker's {METADATA_ENTRIES} "
                             "CustomerMetadataProperties")
    source_spec = package["InferenceSpecification"]
    spec = {k: source_spec[k] for k in SPEC_FIELDS if k in source_spec} | {"Containers": containers}
    description = f"Promoted from {arn}. {package.get('ModelPackageDescription') or ''}".strip()
    request: dict[str, Any] = {
        "ModelPackageGroupName": target.names.model_package_group,
        "ModelPackageDescription": description[:DESCRIPTION_MAX],
        "InferenceSpecification": spec,
        "ModelApprovalStatus": PENDING,
        "CustomerMetadataProperties": metadata,
        # No Tags: a versioned package takes its group's (the project stack tags the group with
        # project, team and environment), and CreateModelPackage refuses Tags beside a group.
        "ClientToken": str(uuid.uuid5(TOKEN_NAMESPACE, f"{target.group_arn}/{arn}")),
    }
    if evaluation_uri:
        request["ModelMetrics"] = {"ModelQuality": {"Statistics": {
            "ContentType": "application/json", "S3Uri": evaluation_uri}}}
    card = package.get("ModelCard") or {}
    if card.get("ModelCardContent"):
        request["ModelCard"] = {"ModelCardContent": card["ModelCardContent"],
                                "ModelCardStatus": card.get("ModelCardStatus") or "Draft"}
    return request


def promote(source: Side, target: Side, *, version: int | None = None,
            require_shadow_report: bool = False,
            say: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Promotes and returns {source_package_arn, target_package_arn, artifact_uri, ...}."""
    package = source_package(source, version)
    arn = package["ModelPackageArn"]
    say(f"==> {arn} (Approved by {_approver(package)})")
    result: dict[str, Any] = {"source_package_arn": arn}
    if require_shadow_report:
        report, problems = shadow_report_problems(source, package)
        if problems:
            raise PromotionError(f"refused: {'; '.join(problems)}")
        say(f"    shadow report passed: {report}")
        result["shadow_report"] = report
    found = existing_promotion(target, arn)
    if found is not None:
        say(f"    promoted already: {found['ModelPackageArn']}")
        container = (found.get("InferenceSpecification") or {}).get("Containers", [{}])[0]
        return {**result, "target_package_arn": found["ModelPackageArn"],
                "artifact_uri": container.get("ModelDataUrl"), "status": found.get("ModelApprovalStatus"),
                "reused": True}
    version = package["ModelPackageVersion"]
    prefix = target.names.promoted_prefix(source.names.model_package_group, version)
    containers, digests = [], []
    for i, container in enumerate(package["InferenceSpecification"]["Containers"]):
        # What says how to serve the model (drill_fault's allow-list): not what SageMaker derived
        # from the source's objects (ImageDigest, ModelDataETag) nor data sources in its account.
        copied = {k: container[k] for k in CONTAINER_FIELDS if k in container}
        if container.get("ModelDataUrl"):
            name = "model.tar.gz" if i == 0 else f"model-{i}.tar.gz"
            copied["ModelDataUrl"], sha, created = copy_object(source, target, container["ModelDataUrl"],
                                                               prefix + name)
            digests.append(sha)
            there = "" if created else ", there already: reused"
            say(f"    artifact: {container['ModelDataUrl']} -> {copied['ModelDataUrl']} "
                f"(sha256 {sha[:12]}{there})")
        copied["Image"], note = target_image(source, target, container["Image"])
        say(f"    image: {copied['Image']} ({note})")
        containers.append(copied)
    quality = (package.get("ModelMetrics") or {}).get("ModelQuality") or {}
    evaluation = (quality.get("Statistics") or {}).get("S3Uri")
    evaluation_sha256 = None
    if evaluation:
        evaluation, evaluation_sha256, _ = copy_object(source, target, evaluation, prefix + "evaluation.json")
    request = target_request(source, target, package, containers, evaluation,
                             " ".join(digests) or "none", evaluation_sha256)
    target_arn = target.client("sagemaker").create_model_package(**request)["ModelPackageArn"]
    say(f"    created {target_arn} ({PENDING}): an approver of {target.env.name} approves it")
    return {**result, "target_package_arn": target_arn, "artifact_uri": containers[0].get("ModelDataUrl"),
            "status": PENDING, "reused": False}


def add_promote_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project", required=True, help="a project in environments/projects/")
    parser.add_argument("--from", dest="source", required=True, metavar="ENV",
                        help="the environment whose Approved package is promoted "
                        "(the target's promotion.source)")
    parser.add_argument("--to", dest="target", required=True, metavar="ENV",
                        help="the production environment")
    parser.add_argument("--version", type=int, metavar="N", help="the source group's version N (default: "
                        "the newest Approved one)")
    parser.add_argument("--require-shadow-report", action="store_true",
                        help="refuse unless a passing shadow report tested the package in the source "
                        "environment (always, when the target's promotion.require_shadow_report is set)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")


def _sides(checkout: Project, args: argparse.Namespace) -> tuple[Side, Side, str, bool]:
    """(source, target, shadow report required), or ValueError naming the bad argument."""
    from mlops.aws_clients import clients_for

    envs = checkout.environments([args.source, args.target])
    source_env, target_env = envs[args.source], envs[args.target]
    if target_env.promotion is None or target_env.promotion.source != source_env.name:
        expected = target_env.promotion.source if target_env.promotion else "nowhere (no promotion setting)"
        raise ValueError(f"--from {args.source}: {args.target} promotes from {expected}")
    if args.version is not None and args.version < 1:
        raise ValueError(f"--version {args.version}: versions start at 1")
    source_config = checkout.project(args.project, source_env.name)
    target_config = checkout.project(args.project, target_env.name)
    required = args.require_shadow_report or target_env.promotion.require_shadow_report
    # The target's ML engineer creates the package; the source is read by the same person: in AWS
    # with the same credentials (cross-account), locally as the source's ML engineer (moto ignores
    # resource policies, so its accounts are reached with a session each).
    source = Side(source_env, ProjectNames(Naming.of(source_env), source_config.name),
                  clients_for(checkout, source_env, persona=PERSONA))
    target = Side(target_env, ProjectNames(Naming.of(target_env), target_config.name),
                  clients_for(checkout, target_env, persona=PERSONA))
    return source, target, required


def run_promote_command(args: argparse.Namespace, checkout: Project) -> int:
    from local_aws.lifecycle import LocalAwsError

    try:
        source, target, required = _sides(checkout, args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except LocalAwsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        result = promote(source, target, version=args.version,
                         require_shadow_report=required, say=say)
    except PromotionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # an AWS error: one line, no traceback for a terminal user
        print(f"error: promoting from {source.env.name} to {target.env.name} failed: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['source_package_arn']} -> {result['target_package_arn']} ({result['status']})")
    return 0
