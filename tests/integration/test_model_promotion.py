"""`mlops model promote` across two accounts of the local AWS: the source environment (local,
the default account) and a production one in a second account reached by AssumeRole, each side
read and written with a session of its own account (moto keeps accounts apart; the resource
policies that let prod's ML engineer read staging in AWS are checked statically).

What a promotion must do (issue 16): the artifact copied into the target's bucket under the
target's key, byte for byte; the package created in the target's group PendingManualApproval
with promoted_from and the lineage; a second run finds it instead of copying again; only an
Approved package goes; a required shadow report must have tested this very package and passed."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile

import pytest
from botocore.exceptions import ClientError

from mlops import create_only
from mlops.promotion import PromotionError, Side, copy_object, promote
from stacks.config import Environment, load_environments
from stacks.naming import Naming, ProjectNames
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

PROD_ACCOUNT = "111122223333"
IMAGE_TAG = "0123456789ab"


def _environments() -> tuple[Environment, Environment]:
    """The shipped pair: local and localprod (environments/localprod.yaml, promoted from local)."""
    envs = load_environments(ROOT, ["local", "localprod"])
    assert envs["localprod"].account_id == PROD_ACCOUNT and envs["localprod"].promotion.source == "local"
    return envs["local"], envs["localprod"]


def _archive() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        payload = b"model weights " * 50_000  # ~700 kB: more than one read of the stream
        info = tarfile.TarInfo("model.joblib")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


@pytest.fixture
def sides(moto_server):
    source_env, target_env = _environments()
    to_prod = moto_server.session_client_factory(
        f"arn:aws:iam::{PROD_ACCOUNT}:role/OrganizationAccountAccessRole", "promotion-test")
    source = Side(source_env, ProjectNames(Naming.of(source_env), "demo"), moto_server.client)
    target = Side(target_env, ProjectNames(Naming.of(target_env), "demo"), to_prod)
    assert to_prod("sts").get_caller_identity()["Account"] == PROD_ACCOUNT
    for side in (source, target):
        side.client("s3").create_bucket(Bucket=side.names.artifacts_bucket)
        key = side.client("kms").create_key()["KeyMetadata"]["KeyId"]
        side.client("kms").create_alias(AliasName=side.names.key_alias, TargetKeyId=key)
        side.client("sagemaker").create_model_package_group(ModelPackageGroupName=side.names.model_package_group)
    return source, target


def _register(source: Side, archive: bytes, status: str = "Approved", run: str = "run-1") -> str:
    s3, bucket = source.client("s3"), source.names.artifacts_bucket
    s3.put_object(Bucket=bucket, Key=f"demo/runs/{run}/model/model.tar.gz", Body=archive)
    s3.put_object(Bucket=bucket, Key=f"demo/runs/{run}/evaluation/evaluation.json",
                  Body=b'{"accuracy": 0.97}')
    return source.client("sagemaker").create_model_package(
        ModelPackageGroupName=source.names.model_package_group,
        ModelPackageDescription="demo: gradient_boosting classification model",
        InferenceSpecification={
            "Containers": [{"Image": f"{source.names.repository_url('inference')}:{IMAGE_TAG}",
                            "ModelDataUrl": f"s3://{bucket}/demo/runs/{run}/model/model.tar.gz",
                            "Environment": {"SAGEMAKER_PROGRAM": "inference.py"}}],
            "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]},
        ModelMetrics={"ModelQuality": {"Statistics": {
            "ContentType": "application/json", "S3Uri": f"s3://{bucket}/demo/runs/{run}/evaluation/evaluation.json"}}},
        ModelApprovalStatus=status,
        CustomerMetadataProperties={"accuracy": "0.97", "git_commit": "abc123", "pipeline_run_id": run,
                                    "mlflow_run_id": "m-1", "data_versions": "s3://data/v1",
                                    "shadow-report-passed": "s3://elsewhere/report.json"},
    )["ModelPackageArn"]


def test_an_approved_package_reaches_the_target_registry_with_its_artifact_and_lineage(sides):
    source, target = sides
    archive = _archive()
    arn = _register(source, archive)
    result = promote(source, target)

    assert result["source_package_arn"] == arn and result["reused"] is False
    assert f":{PROD_ACCOUNT}:model-package/mlops-localprod-demo/" in result["target_package_arn"]
    assert result["artifact_uri"] == (f"s3://{target.names.artifacts_bucket}/demo/promoted/"
                                      f"{source.names.model_package_group}/1/model.tar.gz")
    copied = target.client("s3").get_object(Bucket=target.names.artifacts_bucket,
                                            Key=result["artifact_uri"].split("/", 3)[3])
    assert copied["Body"].read() == archive
    assert copied["ServerSideEncryption"] == "aws:kms"
    assert copied["SSEKMSKeyId"].endswith(target.names.key_alias) or PROD_ACCOUNT in copied["SSEKMSKeyId"]

    package = target.client("sagemaker").describe_model_package(ModelPackageName=result["target_package_arn"])
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    metadata = package["CustomerMetadataProperties"]
    assert metadata["promoted_from"] == arn
    assert metadata["promoted_from_environment"] == "local"
    assert metadata["artifact_sha256"] == hashlib.sha256(archive).hexdigest()
    # What the target's gate checks the copied report against (not the source's metrics in metadata).
    assert metadata["evaluation_sha256"] == hashlib.sha256(b'{"accuracy": 0.97}').hexdigest()
    assert {k: metadata[k] for k in ("git_commit", "pipeline_run_id", "mlflow_run_id", "data_versions")} == {
        "git_commit": "abc123", "pipeline_run_id": "run-1", "mlflow_run_id": "m-1", "data_versions": "s3://data/v1"}
    assert "shadow-report-passed" not in metadata  # the target judges its own shadow tests
    container = package["InferenceSpecification"]["Containers"][0]
    assert container["ModelDataUrl"] == result["artifact_uri"]
    assert container["Image"] == f"{target.names.repository_url('inference')}:{IMAGE_TAG}"
    statistics = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    assert statistics.startswith(f"s3://{target.names.artifacts_bucket}/demo/promoted/")
    # Nothing of the target was written in the source's account.
    listed = source.client("sagemaker").list_model_packages(
        ModelPackageGroupName=source.names.model_package_group)["ModelPackageSummaryList"]
    assert [p["ModelPackageArn"] for p in listed] == [arn]

    again = promote(source, target)
    assert again["reused"] is True and again["target_package_arn"] == result["target_package_arn"]
    assert len(target.client("sagemaker").list_model_packages(
        ModelPackageGroupName=target.names.model_package_group)["ModelPackageSummaryList"]) == 1


def test_promoted_copies_are_written_once_never_replaced(sides, monkeypatch):
    """Create-only (mlops/create_only.py): every write sends If-None-Match: *, which the local AWS
    honours as S3 does (412 where the key exists). The same bytes left by a run that stopped
    before registering are reused; other bytes at the key refuse the promotion; an archive larger
    than a part goes up in parts, the completion conditional too."""
    source, target = sides
    monkeypatch.setattr(create_only, "PART_BYTES", 5 * 1024 * 1024)  # S3's smallest part
    archive = os.urandom(11 * 1024 * 1024)  # three parts
    _register(source, archive)
    s3, bucket = target.client("s3"), target.names.artifacts_bucket
    key = f"demo/promoted/{source.names.model_package_group}/1/model.tar.gz"
    # A stray object where the copy goes: refused, and left as it was.
    s3.put_object(Bucket=bucket, Key=key, Body=b"not the approved model")
    with pytest.raises(PromotionError, match=r"exists with SHA-256 .* never overwritten"):
        promote(source, target)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"not the approved model"
    assert target.client("sagemaker").list_model_packages(
        ModelPackageGroupName=target.names.model_package_group)["ModelPackageSummaryList"] == []
    # The same bytes there (a run that stopped before registering): reused, the package made.
    s3.delete_object(Bucket=bucket, Key=key)
    s3.put_object(Bucket=bucket, Key=key, Body=archive)
    said: list[str] = []
    result = promote(source, target, say=said.append)
    assert result["reused"] is False and any("there already: reused" in line for line in said)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == archive
    # From nothing: the multipart path, whose completion is conditional as well.
    s3.delete_object(Bucket=bucket, Key=key)
    uri, sha, created = copy_object(source, target, f"s3://{source.names.artifacts_bucket}/demo/runs/run-1/"
                                    "model/model.tar.gz", key)
    assert uri == f"s3://{bucket}/{key}" and created and sha == hashlib.sha256(archive).hexdigest()
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == archive
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key=key, PartNumber=1, Body=b"x", UploadId=upload)["ETag"]
    with pytest.raises(ClientError, match="PreconditionFailed"):
        s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload, IfNoneMatch="*",
                                     MultipartUpload={"Parts": [{"ETag": part, "PartNumber": 1}]})
    with pytest.raises(ClientError, match="PreconditionFailed"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x", IfNoneMatch="*")


def test_only_an_approved_package_is_promoted(sides):
    source, target = sides
    _register(source, _archive(), status="PendingManualApproval")
    with pytest.raises(PromotionError, match="has no Approved package"):
        promote(source, target)
    with pytest.raises(PromotionError, match="is PendingManualApproval: only an Approved package"):
        promote(source, target, version=1)
    with pytest.raises(PromotionError, match="version 7 of"):
        promote(source, target, version=7)


def test_a_required_shadow_report_must_have_tested_this_package_and_passed(sides):
    source, target = sides
    arn = _register(source, _archive())
    with pytest.raises(PromotionError, match="no shadow report of mlops-local-demo in local tested"):
        promote(source, target, require_shadow_report=True)

    s3, bucket = source.client("s3"), source.names.artifacts_bucket

    def report(label: str, shadow: str, passed: bool) -> None:
        body = {"packages": {"production": "arn:prod", "shadow": shadow}, "passed": passed,
                "reasons": ["agreement 0.71 < 0.95"] if not passed else ["agreement 0.99 >= 0.95"]}
        s3.put_object(Bucket=bucket, Key=f"demo/shadow/mlops-local-demo/{label}/report.json",
                      Body=json.dumps(body).encode())

    report("20261206T100000Z", "arn:another-package", True)  # passed, but about another package
    report("20261206T090000Z", arn, False)
    with pytest.raises(PromotionError, match=r"failed: agreement 0\.71 < 0\.95"):
        promote(source, target, require_shadow_report=True)
    report("20261206T110000Z", arn, True)  # the newest report of this package decides
    result = promote(source, target, require_shadow_report=True)
    assert result["shadow_report"] == f"s3://{bucket}/demo/shadow/mlops-local-demo/20261206T110000Z/report.json"


def _manifest(layer: str) -> str:
    docker = "application/vnd.docker"
    return json.dumps({"schemaVersion": 2, "mediaType": f"{docker}.distribution.manifest.v2+json",
                       "config": {"mediaType": f"{docker}.container.image.v1+json", "size": 7,
                                  "digest": "sha256:" + hashlib.sha256(b"config").hexdigest()},
                       "layers": [{"mediaType": f"{docker}.image.rootfs.diff.tar.gzip", "size": 5,
                                   "digest": "sha256:" + hashlib.sha256(layer.encode()).hexdigest()}]})


def test_in_aws_the_image_must_be_the_same_build_in_both_registries(moto_server):
    """staging -> prod as shipped (two accounts of their own, eu-west-1): the target's package
    names the target's repository pinned to the source image's digest, and a tag that holds
    another build in prod, or none, is refused with what to do."""
    import yaml

    from mlops.promotion import target_image

    envs = {name: Environment.model_validate(yaml.safe_load((ROOT / "environments" / f"{name}.yaml")
                                                            .read_text())) for name in ("staging", "prod")}
    from local_aws.role_sessions import RoleSessions

    sessions = RoleSessions(lambda: moto_server.client("sts"))
    sides = {}
    for name, env in envs.items():
        keys = sessions.credentials(f"arn:aws:iam::{env.account_id}:role/OrganizationAccountAccessRole",
                                    f"images-{name}")
        sides[name] = Side(env, ProjectNames(Naming.of(env), "demo"),
                           lambda service, k=keys, r=env.region: moto_server.client(
                               service, region=r, credentials=k))
    source, target = sides["staging"], sides["prod"]
    image = f"{source.names.repository_url('inference')}:{IMAGE_TAG}"
    for side in (source, target):
        side.client("ecr").create_repository(repositoryName=side.names.naming.name("inference"))
    source.client("ecr").put_image(repositoryName=source.names.naming.name("inference"),
                                   imageManifest=_manifest("same"), imageTag=IMAGE_TAG)
    with pytest.raises(PromotionError, match=r"lacks the image 0123456789ab .*mlops image push --env prod"):
        target_image(source, target, image)
    target.client("ecr").put_image(repositoryName=target.names.naming.name("inference"),
                                   imageManifest=_manifest("another build"), imageTag=IMAGE_TAG)
    with pytest.raises(PromotionError, match="not the source image's sha256:"):
        target_image(source, target, image)
    target.client("ecr").batch_delete_image(repositoryName=target.names.naming.name("inference"),
                                            imageIds=[{"imageTag": IMAGE_TAG}])
    target.client("ecr").put_image(repositoryName=target.names.naming.name("inference"),
                                   imageManifest=_manifest("same"), imageTag=IMAGE_TAG)
    pinned, note = target_image(source, target, image)
    digest = source.client("ecr").describe_images(repositoryName=source.names.naming.name("inference"))[
        "imageDetails"][0]["imageDigest"]
    assert pinned == f"333333333333.dkr.ecr.eu-west-1.amazonaws.com/mlops-prod-inference@{digest}"
    assert note == f"same digest {digest} in both registries"
