"""Register step: add the evaluated model to the SageMaker Model Registry, pending manual approval.

    python3 register.py --evaluation DIR --lineage DIR --config DIR --model-data-url S3URI
        --model-package-group NAME --image-uri URI --evaluation-uri S3URI --pipeline-run-id ID
        [--git-commit SHA] --output DIR

One CreateModelPackage call carries everything an approver needs: the serving container, the
evaluation report (ModelMetrics), flat metrics and lineage (CustomerMetadataProperties) and a
model card. Idempotent: a package of the group already tagged with this pipeline run id is
reused, so a retried step never registers twice. Writes OUTPUT/registration.json and
OUTPUT/model_card.json (the card as sent).
"""

from __future__ import annotations

import argparse
import json
import os
import unicodedata
import uuid
from pathlib import Path
from typing import Any

from _common import StepFailure, argument_parser, ensure_dir, log, read_json, read_project, run, write_json

APPROVAL = "PendingManualApproval"
SERVING_CODE_DIR = "/opt/ml/model/code"  # where train.py put inference.py inside the artifact
CONTENT_TYPES = ["text/csv", "application/json"]
# CustomerMetadataProperties values: 1-256 characters of letters, numbers, spaces and _.:/=+-@
METADATA_MAX = 256
METADATA_PUNCTUATION = set("_.:/=+-@")
TRUNCATED = " ...truncated"
DESCRIPTION_MAX = 1024
# A stable namespace so that the same group and pipeline run always give the same ClientToken.
TOKEN_NAMESPACE = uuid.UUID("6f1c2a4e-3b7d-5e8f-9a0b-1c2d3e4f5a6b")


def parse_args() -> argparse.Namespace:
    parser = argument_parser(__doc__)
    parser.add_argument(
        "--evaluation",
        default="/opt/ml/processing/evaluation",
        help="folder with evaluation.json (and tracking.json)",
    )
    parser.add_argument("--lineage", default="/opt/ml/processing/lineage", help="folder with lineage.json")
    parser.add_argument("--config", default="/opt/ml/processing/config", help="folder with project.json")
    parser.add_argument("--model-data-url", required=True, help="s3:// URI of the model.tar.gz")
    parser.add_argument("--model-package-group", required=True)
    parser.add_argument("--image-uri", required=True, help="the serving container image")
    parser.add_argument("--evaluation-uri", required=True, help="s3:// URI of evaluation.json")
    parser.add_argument("--pipeline-run-id", required=True)
    parser.add_argument("--git-commit", default=os.environ.get("MLOPS_GIT_COMMIT") or "unknown")
    parser.add_argument("--data-until", default="",
                        help="where the data's production records end (ISO-8601): a retrain starts there")
    parser.add_argument("--output", default="/opt/ml/processing/registration", help="result folder")
    return parser.parse_args()


def metadata_value(value: Any) -> str:
    """A value SageMaker accepts: disallowed characters become '_', long values are cut with a marker."""
    text = (
        "".join(
            ch if unicodedata.category(ch)[0] in "LZN" or ch in METADATA_PUNCTUATION else "_"
            for ch in str(value)
        )
        or "none"
    )
    return text if len(text) <= METADATA_MAX else text[: METADATA_MAX - len(TRUNCATED)] + TRUNCATED


def data_versions(objects: list[dict[str, Any]]) -> str:
    """'key@version key@version' (commas are not allowed): whole entries, then ' +N more' if cut."""
    entries = [f"{o['key']}@{o.get('version_id') or 'null'}" for o in objects]
    if len(" ".join(entries)) <= METADATA_MAX:
        return metadata_value(" ".join(entries) or "none")
    kept: list[str] = []
    for entry in entries:
        marker = f" +{len(entries) - len(kept) - 1} more"
        if len(" ".join([*kept, entry])) + len(marker) > METADATA_MAX:
            break
        kept.append(entry)
    return metadata_value((" ".join(kept) + f" +{len(entries) - len(kept)} more").strip())


def customer_metadata(
    evaluation: dict[str, Any], lineage: dict[str, Any], tracking: dict[str, Any], args: argparse.Namespace
) -> dict[str, str]:
    values: dict[str, Any] = dict(evaluation["metrics"])
    if evaluation["latency_ms"].get("p95") is not None:
        values["latency_p95_ms"] = evaluation["latency_ms"]["p95"]
    if evaluation.get("fairness"):
        values["fairness_gap"] = evaluation["fairness"]["gap"]
    values.update(
        git_commit=args.git_commit,
        pipeline_run_id=args.pipeline_run_id,
        mlflow_run_id=tracking.get("mlflow_run_id") or "none",
        dataset_sha256=lineage.get("sha256") or "unknown",
        data_uri=lineage.get("data_uri") or "unknown",
    )
    if getattr(args, "data_until", ""):
        values["data_until"] = args.data_until
    result = {key: metadata_value(value) for key, value in values.items()}
    result["data_versions"] = data_versions(lineage.get("s3_objects") or [])
    return result


def number_metrics(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"name": name, "type": "number", "value": float(value)}
        for name, value in values.items()
        if value is not None
    ]


def metric_groups(evaluation: dict[str, Any]) -> list[dict[str, Any]]:
    """The model card's metric groups: quality (+ confusion matrix), latency, per-group fairness."""
    quality = number_metrics(evaluation["metrics"])
    matrix = evaluation.get("binary_classification_metrics", {}).get("confusion_matrix")
    if matrix:
        labels = sorted(matrix)
        quality.append(
            {
                "name": "confusion matrix",
                "type": "matrix",
                "value": [[matrix[actual][predicted] for predicted in labels] for actual in labels],
                "x_axis_name": [f"predicted {label}" for label in labels],
                "y_axis_name": [f"actual {label}" for label in labels],
            }
        )
    groups = [{"name": f"{evaluation['task']} metrics (test split)", "metric_data": quality}]
    latency = evaluation["latency_ms"]
    if latency.get("p50") is not None:
        groups.append(
            {
                "name": "single-row latency (ms, in process)",
                "metric_data": number_metrics({"p50": latency["p50"], "p95": latency["p95"]}),
            }
        )
    fairness = evaluation.get("fairness")
    if fairness:
        per_group = {
            f"{fairness['metric']} {name}": g[fairness["metric"]] for name, g in fairness["groups"].items()
        }
        groups.append(
            {
                "name": f"fairness by {fairness['attribute']}"[:63],
                "metric_data": number_metrics({**per_group, "gap": fairness["gap"]}),
            }
        )
    return groups


def fairness_text(fairness: dict[str, Any] | None) -> str:
    if not fairness:
        return "No fairness attribute is configured for this project: per-group behaviour was not measured."
    verdict = "within" if fairness["within_bounds"] else "OUTSIDE"
    groups = ", ".join(
        f"{name}: n={g['n']} {fairness['metric']}={g[fairness['metric']]}"
        for name, g in fairness["groups"].items()
    )
    return (
        f"{fairness['metric']} by {fairness['attribute']} ({groups}); gap {fairness['gap']} is "
        f"{verdict} the allowed {fairness['max_gap']}."
    )


def limitations(project: dict[str, Any], evaluation: dict[str, Any], lineage: dict[str, Any]) -> str:
    return (
        f"Trained and evaluated on one dataset ({lineage.get('data_uri', 'unknown source')}, "
        f"{lineage.get('n_rows', '?')} rows; test split of {evaluation['n_test']} rows). Inputs outside "
        "the ranges of the validation schema have not been evaluated; the drift monitor compares live "
        "traffic with the training distribution. Latency was measured in process, without the network."
    )


def model_card(
    project: dict[str, Any],
    evaluation: dict[str, Any],
    lineage: dict[str, Any],
    tracking: dict[str, Any],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Content in SageMaker's model package model card schema (its model_overview carries only
    model_creator and model_artifact)."""
    model = evaluation["model"]
    data = [lineage["data_uri"]] if lineage.get("data_uri") else []
    return {
        "model_overview": {
            "model_creator": project.get("team", "unknown"),
            "model_artifact": [args.model_data_url],
        },
        "intended_uses": {
            "purpose_of_model": project.get("description") or f"The {project['name']} project's model.",
            "intended_uses": (
                f"{project['task'].capitalize()} for the {project['name']} project, "
                "served by a SageMaker endpoint after manual approval."
            )[:2048],
        },
        "training_details": {
            "training_observations": (
                f"{model['algorithm']} trained with seed {model['seed']} on the train "
                f"split ({lineage.get('splits', {}).get('train', '?')} rows)."
            )[:1024],
            "training_job_details": {
                "training_datasets": data,
                "hyper_parameters": [
                    {"name": k, "value": str(v)[:255]} for k, v in sorted(model["hyperparameters"].items())
                ],
            },
        },
        "evaluation_details": [
            {
                "name": "test split",
                "evaluation_observation": f"Held-out test split of {evaluation['n_test']} rows.",
                "datasets": data,
                "metadata": {"evaluation_uri": args.evaluation_uri, "pipeline_run_id": args.pipeline_run_id},
                "metric_groups": metric_groups(evaluation),
            }
        ],
        "additional_information": {
            "caveats_and_recommendations": limitations(project, evaluation, lineage)[:2048],
            "ethical_considerations": fairness_text(evaluation.get("fairness"))[:2048],
            "custom_details": {
                "git_commit": args.git_commit,
                "pipeline_run_id": args.pipeline_run_id,
                "mlflow_run_id": str(tracking.get("mlflow_run_id")),
                "dataset_sha256": str(lineage.get("sha256")),
            },
        },
    }


def description(project: dict[str, Any], evaluation: dict[str, Any], args: argparse.Namespace) -> str:
    metrics = " ".join(f"{k}={v}" for k, v in evaluation["metrics"].items())
    text = (
        f"{project['name']}: {evaluation['model']['algorithm']} {evaluation['task']} model from pipeline "
        f"run {args.pipeline_run_id} (commit {args.git_commit}); test {metrics}"
    )
    return text[:DESCRIPTION_MAX]


def request(
    project: dict[str, Any],
    evaluation: dict[str, Any],
    lineage: dict[str, Any],
    tracking: dict[str, Any],
    args: argparse.Namespace,
) -> dict[str, Any]:
    return {
        "ModelPackageGroupName": args.model_package_group,
        "ModelPackageDescription": description(project, evaluation, args),
        "InferenceSpecification": {
            "Containers": [
                {
                    "Image": args.image_uri,
                    "ModelDataUrl": args.model_data_url,
                    "Environment": {
                        "SAGEMAKER_PROGRAM": "inference.py",
                        "SAGEMAKER_SUBMIT_DIRECTORY": SERVING_CODE_DIR,
                    },
                }
            ],
            "SupportedContentTypes": CONTENT_TYPES,
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        "ModelApprovalStatus": APPROVAL,
        "ModelMetrics": {
            "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": args.evaluation_uri}}
        },
        "CustomerMetadataProperties": customer_metadata(evaluation, lineage, tracking, args),
        "ModelCard": {
            "ModelCardContent": json.dumps(
                model_card(project, evaluation, lineage, tracking, args), sort_keys=True
            ),
            "ModelCardStatus": "Draft",
        },
        # AWS's own retry guard; the lookup below covers retries after its idempotency window.
        "ClientToken": str(uuid.uuid5(TOKEN_NAMESPACE, f"{args.model_package_group}/{args.pipeline_run_id}")),
    }


def existing_package(sagemaker: Any, group: str, run_id: str) -> dict[str, Any] | None:
    """The group's package registered by this pipeline run, newest first (a retry finds it fast)."""
    pages = sagemaker.get_paginator("list_model_packages").paginate(
        ModelPackageGroupName=group, SortBy="CreationTime", SortOrder="Descending"
    )
    for page in pages:
        for summary in page.get("ModelPackageSummaryList", []):
            described = sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
            if described.get("CustomerMetadataProperties", {}).get("pipeline_run_id") == run_id:
                return described
    return None


def register(sagemaker: Any, body: dict[str, Any], run_id: str) -> dict[str, Any]:
    group = body["ModelPackageGroupName"]
    found = existing_package(sagemaker, group, metadata_value(run_id))
    if found:
        log(f"pipeline run {run_id} already registered {found['ModelPackageArn']}: reusing it")
        return {
            "model_package_arn": found["ModelPackageArn"],
            "model_package_version": found.get("ModelPackageVersion"),
            "reused": True,
        }
    arn = sagemaker.create_model_package(**body)["ModelPackageArn"]
    version = sagemaker.describe_model_package(ModelPackageName=arn).get("ModelPackageVersion")
    log(f"registered {arn} (version {version}, {APPROVAL})")
    return {"model_package_arn": arn, "model_package_version": version, "reused": False}


def main() -> None:
    args = parse_args()
    output = ensure_dir(args.output)
    project = read_project(args.config)
    evaluation = read_json(Path(args.evaluation) / "evaluation.json", "evaluation report")
    tracking_file = Path(args.evaluation) / "tracking.json"
    tracking = read_json(tracking_file, "tracking record") if tracking_file.is_file() else {}
    lineage = read_json(Path(args.lineage) / "lineage.json", "lineage record")
    body = request(project, evaluation, lineage, tracking, args)

    import boto3  # imported late: argument and input errors should not wait for it
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        result = register(boto3.client("sagemaker"), body, args.pipeline_run_id)
    except (BotoCoreError, ClientError) as exc:
        raise StepFailure(
            f"cannot register in model package group '{args.model_package_group}': {exc}"
        ) from exc
    write_json(output / "model_card.json", json.loads(body["ModelCard"]["ModelCardContent"]))
    write_json(output / "registration.json", result)


if __name__ == "__main__":
    run(main)
