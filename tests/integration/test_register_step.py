"""The step scripts' AWS calls against a moto server on 127.0.0.1 (register.py's model registry
entry, preprocess.py's S3 lineage), run as subprocesses that find the server through
AWS_ENDPOINT_URL, as the local pipeline runner runs them.

moto gap (seen with moto 5.2.5): CreateModelPackage accepts ModelCard but drops it, so
DescribeModelPackage returns no ModelCard; the card is checked from the step's model_card.json
against the sagemaker SDK's model card shapes instead.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest

from pipelines.dataset import write_csv
from stacks.project_config import load_project

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
STEPS = ROOT / "pipelines" / "steps"
GROUP = "demo-local"
# CustomerMetadataProperties values as the SageMaker API model constrains them.
METADATA_VALUE = re.compile(r"^[\w\s.:/=+\-@]{1,256}$")


def aws_env(endpoint_url: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "MLFLOW_", "MLOPS_", "AWS_"))}
    env.update(
        AWS_ENDPOINT_URL=endpoint_url,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        SM_OUTPUT_DIR=str(tmp_path / "sm-output"),
    )
    return env


def client(service: str, endpoint_url: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def run_step(step: str, env: dict[str, str], **options: str | Path) -> subprocess.CompletedProcess:
    args = [f"--{name.replace('_', '-')}={value}" for name, value in options.items()]
    command = [sys.executable, str(STEPS / f"{step}.py"), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)


def write(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path.parent


EVALUATION = {
    "binary_classification_metrics": {
        "accuracy": {"value": 0.988372, "standard_deviation": "NaN"},
        "auc": {"value": 0.999421, "standard_deviation": "NaN"},
        "confusion_matrix": {"0": {"0": 54, "1": 0}, "1": {"0": 1, "1": 31}},
        "f1": {"value": 0.984127, "standard_deviation": "NaN"},
        "precision": {"value": 1.0, "standard_deviation": "NaN"},
        "recall": {"value": 0.96875, "standard_deviation": "NaN"},
        "receiver_operating_characteristic_curve": {
            "false_positive_rates": [0.0, 0.0, 0.018519, 1.0],
            "true_positive_rates": [0.0, 0.96875, 1.0, 1.0],
        },
    },
    "metrics": {
        "accuracy": 0.988372,
        "f1": 0.984127,
        "precision": 1.0,
        "recall": 0.96875,
        "roc_auc": 0.999421,
    },
    "latency_ms": {"n": 200, "p50": 1.294, "p95": 1.643},
    "fairness": {
        "attribute": "mean_radius",
        "threshold": 14.0,
        "metric": "recall",
        "groups": {
            "<= 14.0": {
                "n": 51,
                "n_positive": 5,
                "accuracy": 1.0,
                "precision": 1.0,
                "recall": 1.0,
                "f1": 1.0,
            },
            "> 14.0": {
                "n": 35,
                "n_positive": 27,
                "accuracy": 0.971,
                "precision": 1.0,
                "recall": 0.963,
                "f1": 0.98,
            },
        },
        "gap": 0.037037,
        "max_gap": 0.25,
        "within_bounds": True,
    },
    "model": {
        "algorithm": "gradient_boosting",
        "hyperparameters": {"n_estimators": 150, "max_depth": 3, "learning_rate": 0.1, "subsample": 0.9},
        "seed": 42,
    },
    "n_test": 86,
    "task": "classification",
}


@pytest.fixture
def register_args(tmp_path) -> dict[str, Any]:
    """register.py's inputs: an evaluation as evaluate.py writes it, and a lineage with more S3
    object versions than fit in one metadata value."""
    objects = [
        {"bucket": "data", "key": f"raw/part-{i:03d}.csv", "version_id": f"v{i:030d}", "etag": "e", "size": 1}
        for i in range(12)
    ]
    lineage = {
        "data_uri": "s3://data/raw/",
        "sha256": "ab" * 32,
        "n_rows": 569,
        "splits": {"train": 397, "validation": 86, "test": 86},
        "seed": 42,
        "s3_objects": objects,
    }
    project = load_project(ROOT / "environments" / "projects" / "demo.yaml", "local", ROOT)
    evaluation_dir = write(tmp_path / "evaluation" / "evaluation.json", EVALUATION)
    write(evaluation_dir / "tracking.json", {"mlflow_run_id": "0f1e2d3c", "experiment_id": "1"})
    return {
        "evaluation": evaluation_dir,
        "lineage": write(tmp_path / "lineage" / "lineage.json", lineage),
        "config": write(tmp_path / "config" / "project.json", project.model_dump(mode="json")),
        "model_data_url": "s3://artifacts/demo/run-1/model.tar.gz",
        "model_package_group": GROUP,
        "image_uri": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.4-2-cpu-py3",
        "evaluation_uri": "s3://artifacts/demo/run-1/evaluation.json",
        "pipeline_run_id": "run-1",
        "git_commit": "0123abcd",
        "data_until": "2026-11-30T09:05:00Z",
        "output": tmp_path / "registration",
    }


def register(env: dict[str, str], args: dict[str, Any]) -> dict[str, Any]:
    result = run_step("register", env, **args)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((Path(args["output"]) / "registration.json").read_text())


def check_model_card(card: dict[str, Any]) -> None:
    from sagemaker.core.shapes.model_card_shapes import ModelCardContent

    # Every field is one the schema knows (unknown ones would vanish in the round trip).
    assert ModelCardContent.model_validate(card).model_dump(mode="json", exclude_unset=True) == card
    # The model package card's model_overview holds only these two properties.
    assert set(card["model_overview"]) == {"model_creator", "model_artifact"}
    assert card["intended_uses"]["purpose_of_model"].startswith("Flags fine-needle-aspirate measurements")
    groups = {g["name"]: g for g in card["evaluation_details"][0]["metric_groups"]}
    quality = {m["name"]: m for m in groups["classification metrics (test split)"]["metric_data"]}
    assert quality["recall"]["value"] == 0.96875
    assert quality["confusion matrix"]["value"] == [[54, 0], [1, 31]]
    assert "recall <= 14.0" in {m["name"] for m in groups["fairness by mean_radius"]["metric_data"]}
    assert (
        "gap 0.037037 is within the allowed 0.25" in card["additional_information"]["ethical_considerations"]
    )


def test_register_creates_a_pending_package_and_reuses_it_on_retry(moto_server, tmp_path, register_args):
    url = moto_server.endpoint_url
    sagemaker = client("sagemaker", url)
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    env = aws_env(url, tmp_path)

    first = register(env, register_args)
    assert first["reused"] is False and first["model_package_version"] == 1
    described = sagemaker.describe_model_package(ModelPackageName=first["model_package_arn"])
    assert described["ModelApprovalStatus"] == "PendingManualApproval"
    assert described["InferenceSpecification"] == {
        "Containers": [
            {
                "Image": register_args["image_uri"],
                "ModelDataUrl": register_args["model_data_url"],
                "Environment": {
                    "SAGEMAKER_PROGRAM": "inference.py",
                    "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                },
            }
        ],
        "SupportedContentTypes": ["text/csv", "application/json"],
        "SupportedResponseMIMETypes": ["text/csv"],
    }
    assert described["ModelMetrics"] == {
        "ModelQuality": {
            "Statistics": {"ContentType": "application/json", "S3Uri": register_args["evaluation_uri"]}
        }
    }
    metadata = described["CustomerMetadataProperties"]
    assert {k: metadata[k] for k in EVALUATION["metrics"]} == {
        k: str(v) for k, v in EVALUATION["metrics"].items()
    }
    assert (metadata["latency_p95_ms"], metadata["fairness_gap"]) == ("1.643", "0.037037")
    assert metadata["git_commit"] == "0123abcd" and metadata["pipeline_run_id"] == "run-1"
    assert metadata["mlflow_run_id"] == "0f1e2d3c"
    assert metadata["dataset_sha256"] == "ab" * 32 and metadata["data_uri"] == "s3://data/raw/"
    assert metadata["data_until"] == "2026-11-30T09:05:00Z"  # where the next retrain's data starts
    versions = metadata["data_versions"]
    assert versions.startswith(f"raw/part-000.csv@v{0:030d} raw/part-001.csv@")
    assert re.search(r" \+\d+ more$", versions), versions
    assert all(METADATA_VALUE.match(v) for v in metadata.values()), metadata
    assert "run-1" in described["ModelPackageDescription"]

    card = json.loads((Path(register_args["output"]) / "model_card.json").read_text())
    check_model_card(card)
    if "ModelCard" in described:  # moto drops it (see the module docstring); AWS returns it
        assert json.loads(described["ModelCard"]["ModelCardContent"]) == card
        assert described["ModelCard"]["ModelCardStatus"] == "Draft"

    retried = register(env, register_args)
    assert retried == {**first, "reused": True}
    packages = sagemaker.list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"]
    assert len(packages) == 1

    next_run = register(env, {**register_args, "pipeline_run_id": "run-2"})
    assert next_run["reused"] is False and next_run["model_package_version"] == 2


def test_preprocess_records_s3_object_versions(moto_server, tmp_path):
    url = moto_server.endpoint_url
    s3 = client("s3", url)
    s3.create_bucket(Bucket="data")
    s3.put_bucket_versioning(Bucket="data", VersioningConfiguration={"Status": "Enabled"})
    csv = write_csv(tmp_path / "data" / "breast_cancer.csv")
    s3.put_object(Bucket="data", Key="raw/breast_cancer.csv", Body=b"an older version")
    latest = s3.put_object(Bucket="data", Key="raw/breast_cancer.csv", Body=csv.read_bytes())
    project = load_project(ROOT / "environments" / "projects" / "demo.yaml", "local", ROOT)
    config = write(tmp_path / "config" / "project.json", project.model_dump(mode="json"))
    expected = {
        "bucket": "data",
        "key": "raw/breast_cancer.csv",
        "version_id": latest["VersionId"],
        "etag": latest["ETag"].strip('"'),
        "size": csv.stat().st_size,
    }

    # An object URI, a prefix written without its trailing slash (listed, then each head), and a
    # bucket that does not exist; side by side, as each is its own process.
    uris = ["s3://data/raw/breast_cancer.csv", "s3://data/raw", "s3://no-such-bucket/x.csv"]

    def preprocess(uri: str) -> tuple[subprocess.CompletedProcess, Path]:
        run = tmp_path / f"run-{uris.index(uri)}"  # own output and failure folders
        result = run_step(
            "preprocess", aws_env(url, run), data=csv.parent, config=config, data_uri=uri, output=run
        )
        return result, run

    with ThreadPoolExecutor(max_workers=len(uris)) as pool:
        (by_object, object_run), (by_prefix, prefix_run), (missing, missing_run) = pool.map(preprocess, uris)

    for result, run in ((by_object, object_run), (by_prefix, prefix_run)):
        assert result.returncode == 0, result.stderr[-3000:]
        assert json.loads((run / "lineage" / "lineage.json").read_text())["s3_objects"] == [expected]
    assert missing.returncode == 1
    failure = (missing_run / "sm-output" / "failure").read_text()
    assert failure.startswith("cannot read S3 metadata of s3://no-such-bucket/x.csv: ")
    assert "NoSuchBucket" in failure
    assert "Traceback" not in missing.stderr
