"""DatasetVersion step: the dataset a run trains on, as a new content-addressed version.

    python3 dataset_version.py --data DIR --data-uri URI --config DIR --versions-uri S3_URI
        [--allowed-data S3_URI ...] [--since ISO] [--until ISO] [--capture-uri S3_URI]
        [--ground-truth-uri S3_URI] --output DIR

--data-uri (the pipeline's InputDataUri) must be one of --allowed-data (the project's datasets
prefix, its dataset versions, its default data): the step fails naming it otherwise, before
reading anything.

The current training data (the one CSV in --data, read from --data-uri) plus, with --since, the
production records labelled since then: the endpoint's captured inputs (SageMaker data capture
under --capture-uri, one CSV row per request) joined by inference id with their ground-truth
labels (Model Monitor's files under --ground-truth-uri). The result is written once, at a key
derived from its content (`<versions-uri>/sha256-<hash>/data.csv`, with version.json beside it
naming every source), so a new version can never be mistaken for an old one: the steps after
this one take its URI as their data, and SageMaker's step cache keys on it. OUTPUT/version.json
(the pipeline's DatasetVersion property file): {"uri", "sha256", "rows", "base_rows",
"production_rows", "until", "sources", "skipped"}; `until` (where the production records end)
goes into the registered package's metadata as `data_until`, where the next retrain starts.
Captured records without a label, or that cannot be read, are counted in `skipped`, not silently
dropped.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from _common import StepFailure, argument_parser, log, read_csv, read_project, run, single_csv, write_json

from lambdas.shared.capture_files import (
    Malformed,
    decode,
    endpoint_capture_keys,
    object_lines,
    parse_s3_uri,
    parse_time,
)
from lambdas.shared.quality.labels import ground_truth_objects, parse_label


def parse_args() -> argparse.Namespace:
    parser = argument_parser(__doc__)
    parser.add_argument("--data", default="/opt/ml/processing/input/data", help="folder with one CSV")
    parser.add_argument("--data-uri", required=True, help="where --data came from")
    parser.add_argument("--config", default="/opt/ml/processing/input/config",
                        help="folder with project.json")
    parser.add_argument("--versions-uri", required=True, help="s3:// prefix of the dataset versions")
    parser.add_argument("--allowed-data", action="append", default=[], metavar="S3_URI",
                        help="data a run may train on (a prefix ends with /; repeatable): --data-uri "
                        "must be one")
    parser.add_argument("--since", default="", help="add the production records labelled since (ISO-8601)")
    parser.add_argument("--until", default="", help="... up to (default: now)")
    parser.add_argument("--capture-uri", default="", help="s3:// data capture of the endpoint")
    parser.add_argument("--ground-truth-uri", default="", help="s3:// ground-truth prefix")
    parser.add_argument("--output", default="/opt/ml/processing/output/version",
                        help="folder for version.json")
    return parser.parse_args()


def captured_inputs(s3: Any, capture_uri: str, since: datetime, until: datetime,
                    skipped: dict[str, int]) -> Iterator[tuple[str | None, list[str]]]:
    """(inference id or None, the CSV rows it sent) of each request captured in [since, until),
    in capture order; records that cannot be read are counted in `skipped`."""
    bucket, prefix = parse_s3_uri(capture_uri)
    for key in endpoint_capture_keys(s3, bucket, prefix.rstrip("/") + "/", since, until):
        for line in object_lines(s3, bucket, key):
            try:
                record = json.loads(line)
                meta = record["eventMetadata"]
                if not since <= parse_time(meta["inferenceTime"]) < until:
                    continue
                text, kind = decode(record["captureData"]["endpointInput"])
            except Malformed as exc:
                skipped[exc.reason] = skipped.get(exc.reason, 0) + 1
                continue
            except (ValueError, KeyError, TypeError, AttributeError):
                skipped["unreadable_capture"] = skipped.get("unreadable_capture", 0) + 1
                continue
            if kind != "csv":
                skipped["not_csv"] = skipped.get("not_csv", 0) + 1
                continue
            yield meta.get("inferenceId") or None, [ln for ln in text.splitlines() if ln.strip()]


def captured_rows(s3: Any, capture_uri: str, since: datetime, until: datetime,
                  skipped: dict[str, int]) -> dict[str, str]:
    """inference id -> the CSV row it sent, for the requests of [since, until)."""
    rows: dict[str, str] = {}
    for name, lines in captured_inputs(s3, capture_uri, since, until, skipped):
        if not name:
            skipped["no_inference_id"] = skipped.get("no_inference_id", 0) + 1
        elif len(lines) != 1:  # one id must name one row
            skipped["not_one_csv_row"] = skipped.get("not_one_csv_row", 0) + 1
        else:
            rows[name] = lines[0]
    return rows


def labels(s3: Any, ground_truth_uri: str, since: datetime, until: datetime,
           skipped: dict[str, int]) -> dict[str, float]:
    found: dict[str, float] = {}
    for bucket, key, _ in ground_truth_objects(s3, ground_truth_uri, since, until):
        for line in object_lines(s3, bucket, key):
            try:
                name, value = parse_label(line)
            except Malformed as exc:
                skipped[f"label_{exc.reason}"] = skipped.get(f"label_{exc.reason}", 0) + 1
                continue
            found[name] = value
    return found


def production_frame(rows: dict[str, str], truth: dict[str, float], features: list[str], target: str,
                     task: str, skipped: dict[str, int]) -> pd.DataFrame:
    """The labelled production records, in the base data's columns."""
    # In capture order (files by key, lines as written): the same inputs, the same bytes.
    labelled = [(name, row) for name, row in rows.items() if name in truth]
    skipped["unlabelled"] = len(rows) - len(labelled)
    if not labelled:
        return pd.DataFrame(columns=[*features, target])
    frame = pd.read_csv(io.StringIO("\n".join(row for _, row in labelled)), header=None)
    if frame.shape[1] != len(features):
        raise StepFailure(f"captured rows have {frame.shape[1]} values, the data has {len(features)} "
                          f"features ({', '.join(features)}): is the endpoint serving this project?")
    frame.columns = features
    values = [truth[name] for name, _ in labelled]
    frame[target] = [int(v) for v in values] if task == "classification" else values
    return frame


def data_problem(data_uri: str, allowed: list[str]) -> str | None:
    """Why a run may not train on data_uri (the InputDataUri parameter, which whoever starts the
    run sets): it is none of the allowed objects and under none of the allowed prefixes (those
    ending with `/`). None when it may, or when nothing is listed."""
    if not allowed or any(data_uri == a or (a.endswith("/") and data_uri.startswith(a)) for a in allowed):
        return None
    return (f"InputDataUri {data_uri} is outside the project's data ({', '.join(allowed)}): a run "
            "trains only on its project's datasets")


def main() -> None:
    args = parse_args()
    problem = data_problem(args.data_uri, args.allowed_data)
    if problem:
        raise StepFailure(problem)
    project = read_project(args.config)
    target, task = project["dataset"]["target"], project["task"]
    base = read_csv(single_csv(args.data))
    if target not in base.columns:
        raise StepFailure(f"{args.data_uri} has no target column {target!r}")
    features = [c for c in base.columns if c != target]
    sources: list[dict[str, Any]] = [{"kind": "training data", "uri": args.data_uri, "rows": len(base)}]
    skipped: dict[str, int] = {}
    frames = [base]
    import boto3

    s3 = boto3.client("s3")
    until = parse_time(args.until) if args.until else datetime.now(UTC).replace(microsecond=0)
    if args.since:
        since = parse_time(args.since)
        if not (args.capture_uri and args.ground_truth_uri):
            raise StepFailure("--since needs --capture-uri and --ground-truth-uri")
        rows = captured_rows(s3, args.capture_uri, since, until, skipped)
        truth = labels(s3, args.ground_truth_uri, since, until, skipped)
        production = production_frame(rows, truth, features, target, task, skipped)
        frames.append(production[base.columns])
        window = {"since": since.isoformat(), "until": until.isoformat()}
        sources += [{"kind": "captured inputs", "uri": args.capture_uri, **window, "records": len(rows)},
                    {"kind": "ground truth", "uri": args.ground_truth_uri, **window, "labels": len(truth),
                     "joined": len(production)}]
    data = pd.concat(frames, ignore_index=True)
    body = data.to_csv(index=False).encode()
    digest = hashlib.sha256(body).hexdigest()
    bucket, prefix = parse_s3_uri(args.versions_uri)
    key = f"{prefix.rstrip('/')}/sha256-{digest[:16]}/data.csv".lstrip("/")
    # `until`: where this version's production data ends, and so where a retrain on it starts.
    version = {"uri": f"s3://{bucket}/{key}", "sha256": digest, "rows": len(data), "base_rows": len(base),
               "production_rows": len(data) - len(base), "until": until.strftime("%Y-%m-%dT%H:%M:%SZ"),
               "sources": sources, "skipped": skipped}
    # Written once: the same content is the same version (a rerun, a cache hit elsewhere).
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="text/csv")
    s3.put_object(Bucket=bucket, Key=key.replace("data.csv", "version.json"),
                  Body=(json.dumps(version, indent=2) + "\n").encode(), ContentType="application/json")
    write_json(Path(args.output) / "version.json", version)
    log(f"dataset {version['uri']}: {len(base)} rows of {args.data_uri} + {version['production_rows']} "
        f"labelled production rows; skipped {skipped or 'nothing'}")


if __name__ == "__main__":
    run(main)
