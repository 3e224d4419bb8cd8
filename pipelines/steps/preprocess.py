"""Preprocess step: split the validated dataset into train/validation/test and record its lineage.

    python3 preprocess.py --data DIR --config DIR --data-uri URI --output DIR

Stratified on the target for classification (a plain seeded shuffle for regression), with the split
fractions and seed of the project config. Writes OUTPUT/{train,validation,test}/<split>.csv (the
dataset's column order, with a header) and OUTPUT/lineage/lineage.json: the input's content hash
and, for an s3:// data URI, the S3 objects' version ids, so a model can be traced to exact bytes.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
from typing import Any

import pandas as pd
from _common import StepFailure, argument_parser, log, read_csv, read_project, run, single_csv, write_json
from sklearn.model_selection import train_test_split

SPLITS = ("train", "validation", "test")


def parse_args() -> argparse.Namespace:
    parser = argument_parser(__doc__)
    parser.add_argument("--data", default="/opt/ml/processing/input/data", help="folder with one CSV")
    parser.add_argument(
        "--config", default="/opt/ml/processing/input/config", help="folder with project.json"
    )
    parser.add_argument(
        "--data-uri", required=True, help="where the data came from: s3://bucket/key or a path"
    )
    parser.add_argument("--output", default="/opt/ml/processing/output", help="folder for the splits")
    return parser.parse_args()


def split_off(
    frame: pd.DataFrame, fraction: float, target: str, stratify: bool, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rest, taken): `fraction` of `frame`'s rows taken out, stratified on `target` if asked."""
    if fraction <= 0:
        return frame, frame.iloc[0:0]
    if fraction >= 1:
        return frame.iloc[0:0], frame
    try:
        rest, taken = train_test_split(
            frame,
            test_size=fraction,
            random_state=seed,
            shuffle=True,
            stratify=frame[target] if stratify else None,
        )
    except ValueError as exc:  # e.g. a class with a single row cannot be stratified
        raise StepFailure(f"cannot split {len(frame)} rows (fraction {fraction}): {exc}") from exc
    return rest, taken


def split(frame: pd.DataFrame, project: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """Two seeded splits: test off the whole, then validation off the rest (its share rescaled)."""
    target, training = project["dataset"]["target"], project["training"]
    if target not in frame.columns:
        raise StepFailure(f"target column '{target}' is not in the data")
    fractions, seed = training["split"], int(training["seed"])
    stratify = project["task"] == "classification"
    rest, test = split_off(frame, fractions["test"], target, stratify, seed)
    remaining = fractions["train"] + fractions["validation"]
    share = fractions["validation"] / remaining if remaining > 0 else 0.0
    train, validation = split_off(rest, share, target, stratify, seed)
    return {"train": train, "validation": validation, "test": test}


def parse_s3_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise StepFailure(f"not an S3 URI: {uri}")
    return bucket, key


def object_record(s3: Any, bucket: str, key: str) -> dict[str, Any]:
    head = s3.head_object(Bucket=bucket, Key=key)
    return {
        "bucket": bucket,
        "key": key,
        # None when the bucket is not versioned: the lineage then cannot pin the bytes.
        "version_id": head.get("VersionId"),
        "etag": head.get("ETag", "").strip('"'),
        "size": head.get("ContentLength"),
    }


def list_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(item["Key"] for item in page.get("Contents", []) if not item["Key"].endswith("/"))
    return sorted(keys)


def s3_objects(uri: str) -> list[dict[str, Any]]:
    """Version ids of the object the URI names, or of every object under it when it is a prefix."""
    import boto3  # only an s3:// run needs AWS
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = parse_s3_uri(uri)
    try:
        s3 = boto3.client("s3")
        if key and not key.endswith("/"):
            try:
                return [object_record(s3, bucket, key)]
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                    raise
            key += "/"  # not an object: maybe a prefix written without its trailing slash
        keys = list_keys(s3, bucket, key)
        if not keys:
            raise StepFailure(f"no S3 object or prefix at {uri}")
        return [object_record(s3, bucket, k) for k in keys]
    except (BotoCoreError, ClientError) as exc:
        raise StepFailure(f"cannot read S3 metadata of {uri}: {exc}") from exc


def lineage(
    csv: Path, data_uri: str, frame: pd.DataFrame, splits: dict[str, pd.DataFrame], seed: int
) -> dict[str, Any]:
    return {
        "data_uri": data_uri,
        "sha256": hashlib.sha256(csv.read_bytes()).hexdigest(),
        "n_rows": len(frame),
        "splits": {name: len(part) for name, part in splits.items()},
        "seed": seed,
        "s3_objects": s3_objects(data_uri) if data_uri.startswith("s3://") else [],
    }


def main() -> None:
    args = parse_args()
    project = read_project(args.config)
    csv = single_csv(args.data)
    frame = read_csv(csv)
    splits = split(frame, project)
    output = Path(args.output)
    record = lineage(csv, args.data_uri, frame, splits, int(project["training"]["seed"]))
    for name in SPLITS:
        path = output / name / f"{name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        splits[name].to_csv(path, index=False)
    write_json(output / "lineage" / "lineage.json", record)
    log(f"split {len(frame)} rows -> {record['splits']}; sha256 {record['sha256'][:12]}")


if __name__ == "__main__":
    run(main)
