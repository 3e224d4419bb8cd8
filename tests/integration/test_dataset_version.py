"""The DatasetVersion step against the local AWS: the training data plus the production records
labelled since a time (captured inputs, as the local endpoint runtime writes them, joined with
Model Monitor ground truth by inference id), written once at a content-addressed key with every
source named."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from local_aws.data_capture import CaptureConfig, capture_record
from pipelines.bundle import canonical_json
from pipelines.dataset import TARGET, breast_cancer_frame
from stacks.project_config import load_project
from tests.step_runner import ROOT, ok, run_step, step_env

pytestmark = pytest.mark.integration

CAPTURE, ARTIFACTS = "mlops-local-capture-dv", "mlops-local-artifacts-dv"
ENDPOINT = "mlops-local-demo"
CAPTURE_CONFIG = CaptureConfig.from_api({
    "EnableCapture": True, "InitialSamplingPercentage": 100, "DestinationS3Uri": f"s3://{CAPTURE}/demo",
    "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
    "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"]}})


def _run(tmp: Path, server, args: tuple[str, ...] = ()):
    config = load_project(ROOT / "environments" / "projects" / "demo.yaml", "local", ROOT)
    (tmp / "config").mkdir(exist_ok=True)
    (tmp / "config" / "project.json").write_bytes(canonical_json(config.model_dump(mode="json")))
    env = step_env(tmp, **server.client_env(), PYTHONPATH=str(ROOT))
    return run_step("dataset_version", *args, env=env, data=tmp / "data", config=tmp / "config",
                    data_uri=f"s3://{ARTIFACTS}/demo/base.csv", versions_uri=f"s3://{ARTIFACTS}/demo/datasets",
                    output=tmp / "out")


def test_a_new_version_adds_the_labelled_production_records(moto_server, tmp_path):
    s3 = moto_server.client("s3")
    for bucket in (CAPTURE, ARTIFACTS):
        s3.create_bucket(Bucket=bucket)
    frame = breast_cancer_frame()
    base, production = frame.iloc[:400], frame.iloc[400:460]
    (tmp_path / "data").mkdir()
    base.to_csv(tmp_path / "data" / "base.csv", index=False)

    # Before any production data: the version is the training data itself, content-addressed.
    first = json.loads(ok(_run(tmp_path, moto_server)) and (tmp_path / "out" / "version.json").read_text())
    assert (first["rows"], first["production_rows"]) == (400, 0)
    assert first["uri"] == f"s3://{ARTIFACTS}/demo/datasets/sha256-{first['sha256'][:16]}/data.csv"

    # 60 requests captured as the endpoint runtime writes them (and one without an inference id),
    # 50 of them labelled: the version adds those 50, with the labels as the target.
    now = datetime.now(UTC).replace(microsecond=0)
    features = production.drop(columns=[TARGET])
    lines = []
    for n, (_, row) in enumerate(features.iterrows()):
        body = (",".join(repr(float(v)) for v in row) + "\n").encode()
        record = capture_record(CAPTURE_CONFIG, request_type="text/csv", request=body,
                                response_type="text/csv", response=b"0.5\n", inference_id=f"req-{n}",
                                at=now - timedelta(minutes=5))
        lines.append(json.dumps(record))
    lines.append(json.dumps(capture_record(CAPTURE_CONFIG, request_type="text/csv", request=b"1,2\n",
                                           response_type="text/csv", response=b"0.5\n", inference_id=None,
                                           at=now - timedelta(minutes=5))))
    hour = now - timedelta(minutes=5)
    s3.put_object(Bucket=CAPTURE, Key=f"demo/{ENDPOINT}/primary/{hour:%Y/%m/%d/%H}/capture.jsonl",
                  Body="\n".join(lines).encode())
    truth = "".join(json.dumps({"groundTruthData": {"data": str(int(production[TARGET].iloc[n])),
                                                    "encoding": "CSV"},
                                "eventMetadata": {"eventId": f"req-{n}"}, "eventVersion": "0"}) + "\n"
                    for n in range(50))
    s3.put_object(Bucket=CAPTURE, Key=f"demo/ground-truth/{now:%Y/%m/%d/%H}/labels.jsonl",
                  Body=truth.encode())

    ok(_run(tmp_path, moto_server, ("--since", (now - timedelta(hours=1)).isoformat(),
                                    "--capture-uri", f"s3://{CAPTURE}/demo/{ENDPOINT}/",
                                    "--ground-truth-uri", f"s3://{CAPTURE}/demo/ground-truth/")))
    second = json.loads((tmp_path / "out" / "version.json").read_text())
    assert (second["rows"], second["base_rows"], second["production_rows"]) == (450, 400, 50)
    assert second["until"] >= now.strftime("%Y-%m-%dT%H:%M:%SZ")  # where the next retrain starts
    assert second["sha256"] != first["sha256"] and second["uri"] != first["uri"]
    assert second["skipped"] == {"no_inference_id": 1, "unlabelled": 10}
    assert [s["kind"] for s in second["sources"]] == ["training data", "captured inputs", "ground truth"]
    bucket, key = second["uri"][5:].split("/", 1)
    written = pd.read_csv(s3.get_object(Bucket=bucket, Key=key)["Body"])
    assert list(written.columns) == list(frame.columns)
    pd.testing.assert_frame_equal(written.iloc[400:].reset_index(drop=True),
                                  production.iloc[:50].reset_index(drop=True), check_dtype=False)
    beside = s3.get_object(Bucket=bucket, Key=key.replace("data.csv", "version.json"))["Body"].read()
    beside = json.loads(beside)
    assert beside["sources"] == second["sources"]  # the lineage travels with the data


def test_data_outside_the_projects_datasets_is_refused_before_anything_is_read(moto_server, tmp_path):
    """InputDataUri is the caller's to set, the pipeline's role reads it: the step trains only on
    the allowed data (the project's datasets prefix, its versions, its default), and says so in one
    line otherwise."""
    s3 = moto_server.client("s3")
    s3.create_bucket(Bucket=ARTIFACTS)
    (tmp_path / "data").mkdir()
    breast_cancer_frame().iloc[:50].to_csv(tmp_path / "data" / "base.csv", index=False)
    allowed = ("--allowed-data", "s3://mlops-local-datasets/demo/",
               "--allowed-data", f"s3://{ARTIFACTS}/demo/datasets/")
    refused = _run(tmp_path, moto_server, allowed)  # its data: s3://<artifacts>/demo/base.csv
    assert refused.returncode == 1
    reason = (f"InputDataUri s3://{ARTIFACTS}/demo/base.csv is outside the project's data "
              f"(s3://mlops-local-datasets/demo/, s3://{ARTIFACTS}/demo/datasets/): a run trains only on "
              "its project's datasets")
    assert reason in refused.stderr
    assert s3.list_objects_v2(Bucket=ARTIFACTS).get("KeyCount", 0) == 0  # no version written
    ok(_run(tmp_path, moto_server, (*allowed, "--allowed-data", f"s3://{ARTIFACTS}/demo/base.csv")))
