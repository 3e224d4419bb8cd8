"""The local AWS refuses what SageMaker's API refuses and botocore does not check: lengths,
patterns and the worded rules, in SageMaker's ValidationException wording."""

from __future__ import annotations

from local_aws.api_constraints import refusal, violations

ROLE = "arn:aws:iam::123456789012:role/mlops-dev/mlops-dev-sagemaker-execution"
KEY = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.4-2-cpu-py3"


def processing_job(**overrides):
    request = {
        "ProcessingJobName": "pipelines-abc123-validate",
        "RoleArn": ROLE,
        "AppSpecification": {"ImageUri": IMAGE, "ContainerEntrypoint": ["python3", "/opt/ml/code/v.py"]},
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large",
                                                  "VolumeSizeInGB": 30, "VolumeKmsKeyId": KEY}},
        "Environment": {"PROJECT": "demo"},
    }
    request.update(overrides)
    return request


def test_a_request_sagemaker_takes_passes():
    assert refusal("sagemaker", "CreateProcessingJob", processing_job()) is None


def test_names_patterns_and_lengths_botocore_lets_through_are_refused():
    too_long = processing_job(ProcessingJobName="x" * 64)
    message = refusal("sagemaker", "CreateProcessingJob", too_long)
    assert message.startswith("2 validation errors detected: ")  # its length and its pattern
    assert "at 'processingJobName' failed to satisfy constraint: Member must have length less than or " \
           "equal to 63" in message
    underscore = violations("sagemaker", "CreateProcessingJob", processing_job(ProcessingJobName="a_b"))
    assert underscore == ["Value 'a_b' at 'processingJobName' failed to satisfy constraint: Member must "
                          "satisfy regular expression pattern: [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"]
    # Tags: at most 50, keys of \\p{L}... characters (a Java pattern, read as Java reads it).
    tags = [{"Key": f"k{i}", "Value": "v"} for i in range(51)] + [{"Key": "bad\u0007key", "Value": "v"}]
    found = violations("sagemaker", "CreateProcessingJob", processing_job(Tags=tags))
    assert any("at 'tags' failed to satisfy constraint: Member must have length less than or equal to 50" in f
               for f in found)
    assert any("at 'tags.52.member.key'" in f for f in found)


def test_an_alias_is_no_volume_key():
    alias = processing_job(ProcessingResources={"ClusterConfig": {
        "InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 30,
        "VolumeKmsKeyId": "arn:aws:kms:us-east-1:123456789012:alias/mlops-dev-platform"}})
    message = refusal("sagemaker", "CreateProcessingJob", alias)
    assert "at 'processingResources.clusterConfig.volumeKmsKeyId'" in message and "not an alias" in message


def test_botocore_checks_come_first_for_requests_no_client_made():
    missing = processing_job()
    del missing["RoleArn"]
    assert "Missing required parameter" in refusal("sagemaker", "CreateProcessingJob", missing)
    assert refusal("sagemaker", "CreateProcessingJob", missing, typed=False) is None


def test_enums_are_held_to_their_values_and_the_alias_rule_only_where_the_reference_says():
    found = violations("sagemaker", "UpdateModelPackage", {
        "ModelPackageArn": "arn:aws:sagemaker:us-east-1:123456789012:model-package/g/1",
        "ModelApprovalStatus": "Approve"})
    assert found == ["Value 'Approve' at 'modelApprovalStatus' failed to satisfy constraint: Member must "
                     "satisfy enum value set: [Approved, Rejected, PendingManualApproval]"]
    # A transform job's volume key may be an alias (TransformResources.VolumeKmsKeyId).
    transform = {"TransformJobName": "t", "ModelName": "m",
                 "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                                                   "S3Uri": "s3://b/in"}}},
                 "TransformOutput": {"S3OutputPath": "s3://b/out"},
                 "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                                        "VolumeKmsKeyId": "alias/mlops-dev-platform"}}
    assert refusal("sagemaker", "CreateTransformJob", transform) is None


def test_a_versioned_model_package_takes_no_tags():
    """CreateModelPackage's reference: with ModelPackageGroupName the package uses its group's
    tags, and Tags cannot be supplied (moto takes them; `mlops model promote` once sent them)."""
    spec = {"Containers": [{"Image": "x"}], "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"]}
    request = {"ModelPackageGroupName": "mlops-prod-demo", "ModelApprovalStatus": "PendingManualApproval",
               "InferenceSpecification": spec}
    assert refusal("sagemaker", "CreateModelPackage", request) is None
    tagged = {**request, "Tags": [{"Key": "team", "Value": "fraud-ml"}]}
    refused = refusal("sagemaker", "CreateModelPackage", tagged)
    assert "Tags cannot be supplied with ModelPackageGroupName" in refused
    # An unversioned package (no group) may carry tags.
    unversioned = {**tagged, "ModelPackageName": "one-off"}
    del unversioned["ModelPackageGroupName"]
    assert refusal("sagemaker", "CreateModelPackage", unversioned) is None
