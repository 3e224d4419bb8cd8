"""SageMaker data-capture parsing: payload shapes, malformed records, time windows, and the S3
reader against a real moto server on 127.0.0.1."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from lambdas.shared.capture_files import hour_prefixes, parse_s3_uri
from lambdas.shared.drift import CategoricalCodes, build_reference, compare, prepare_reference
from lambdas.shared.drift.capture import (
    MALFORMED_REASONS,
    CaptureSchema,
    parse_capture_lines,
    read_capture_window,
)

SCHEMA = CaptureSchema(
    columns=("radius", "texture", "colour", "note"),
    numeric=("radius", "texture"),
    categorical=("colour",),
    prediction_kind="numeric",
)
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def record(
    data: str,
    *,
    ctype: str = "text/csv",
    encoding: str = "CSV",
    output: str | None = "0.5",
    out_ctype: str = "text/csv; charset=utf-8",
    out_encoding: str = "CSV",
    at: datetime | None = T0,
) -> str:
    capture: dict = {
        "endpointInput": {"observedContentType": ctype, "mode": "INPUT", "data": data, "encoding": encoding}
    }
    if output is not None:
        capture["endpointOutput"] = {
            "observedContentType": out_ctype,
            "mode": "OUTPUT",
            "data": output,
            "encoding": out_encoding,
        }
    meta = {"eventId": "e"}
    if at is not None:
        meta["inferenceTime"] = at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return json.dumps({"captureData": capture, "eventMetadata": meta, "eventVersion": "0"})


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_csv_single_and_multi_row() -> None:
    lines = [
        record("17.99,10.38,red,x", output="0.93"),
        record("1.0,2.0,blue,y\n3.0,,red,z\r\n", output="0.1\n0.2"),
        record("5,6,red,w\n7,8,blue,v", output="0.3,0.4"),  # one-line CSV output for two rows
    ]
    window = parse_capture_lines(lines, SCHEMA)
    assert window.n_rows == 5 and window.n_records == 3 and window.malformed == {}
    assert window.columns["radius"].tolist() == [17.99, 1.0, 3.0, 5.0, 7.0]
    texture = window.columns["texture"]
    assert np.isnan(texture[2]) and texture[[0, 1, 3, 4]].tolist() == [10.38, 2.0, 6.0, 8.0]
    colour = window.columns["colour"]
    assert isinstance(colour, CategoricalCodes)
    assert [colour.categories[c] for c in colour.codes] == ["red", "blue", "red", "red", "blue"]
    assert window.prediction.tolist() == [0.93, 0.1, 0.2, 0.3, 0.4]
    assert "note" not in window.columns  # not tracked: parsed for the count, not kept


def test_json_shapes() -> None:
    lines = [
        record(
            json.dumps({"instances": [[1, 2, "red", "n"], [3, 4, "blue", "n"]]}),
            ctype="application/json",
            encoding="JSON",
            output=json.dumps({"predictions": [{"score": 0.1}, {"score": 0.2}]}),
            out_ctype="application/json",
            out_encoding="JSON",
        ),
        record(
            json.dumps([[5, 6, "red", "n"]]),
            ctype="application/json",
            encoding="JSON",
            output="[0.3]",
            out_ctype="application/json",
            out_encoding="JSON",
        ),
        record(
            json.dumps({"radius": 7, "texture": 8, "colour": "green", "extra": 1}),
            ctype="application/json",
            encoding="JSON",
            output="0.4",
            out_ctype="application/json",
            out_encoding="JSON",
        ),
        record(
            json.dumps({"instances": [{"features": [9, 10, "red", "n"]}]}),
            ctype="application/json",
            encoding="JSON",
            output=json.dumps({"predictions": [[0.5]]}),
            out_ctype="application/json",
            out_encoding="JSON",
        ),
        record(
            json.dumps([11, 12, None, "n"]),
            ctype="application/json",
            encoding="JSON",
            output="0.6",
            out_ctype="application/json",
            out_encoding="JSON",
        ),
        record(
            '[13, 14, "red", "n"]\n[15, 16, "red", "n"]',
            ctype="application/jsonlines",
            encoding="JSON",
            output='{"score": 0.7}\n{"score": 0.8}',
            out_ctype="application/jsonlines",
            out_encoding="JSON",
        ),
    ]
    window = parse_capture_lines(lines, SCHEMA)
    assert window.malformed == {}
    assert window.columns["radius"].tolist() == [1, 3, 5, 7, 9, 11, 13, 15]
    assert window.prediction.tolist() == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    colour = window.columns["colour"]
    assert colour.codes[5] == -1  # None is a missing category, not a malformed row
    assert "green" in colour.categories


def test_base64_csv_and_json() -> None:
    lines = [
        record(b64("1,2,red,n\n3,4,red,n"), encoding="BASE64", output=b64("0.1\n0.2"), out_encoding="BASE64"),
        record(
            b64(json.dumps({"instances": [[5, 6, "blue", "n"]]})),
            ctype="application/json",
            encoding="BASE64",
            output=b64("[0.3]"),
            out_ctype="application/json",
            out_encoding="BASE64",
        ),
    ]
    window = parse_capture_lines([line.encode() for line in lines], SCHEMA)
    assert window.malformed == {} and window.columns["radius"].tolist() == [1, 3, 5]
    assert window.prediction.tolist() == [0.1, 0.2, 0.3]


def test_malformed_records_are_counted_by_reason_and_skipped() -> None:
    lines = [
        "{not json",
        json.dumps({"eventVersion": "0"}),
        json.dumps({"captureData": {"endpointInput": "oops"}}),
        record("1,2,red"),  # 3 values for 4 columns
        record("1,abc,red,n"),
        record("1,2,red,n", encoding="XML"),
        record("***", encoding="BASE64"),
        record("{bad", ctype="application/json", encoding="JSON"),
        record(json.dumps({"radius": 1, "colour": "red"}), ctype="application/json", encoding="JSON"),
        record("1,2,red,n\n1,2,3,4,5\n3,4,blue,n", output="0.1\n0.2"),  # bad middle row only
        record("5,6,red,n", output="not-a-number"),  # rows kept, prediction dropped
        record(json.dumps("just a string"), ctype="application/json", encoding="JSON"),
        "",
        record("7,8,red,n", output="0.9"),
    ]
    window = parse_capture_lines(lines, SCHEMA)
    assert window.malformed == {
        "bad_output": 1,
        "invalid_base64": 1,
        "invalid_json": 1,
        "invalid_json_payload": 1,
        "missing_feature": 1,
        "missing_keys": 2,
        "non_numeric_value": 1,
        "unsupported_encoding": 1,
        "unsupported_json_shape": 1,
        "wrong_column_count": 2,
    }
    assert set(window.malformed) <= set(MALFORMED_REASONS)
    assert window.columns["radius"].tolist() == [1, 3, 5, 7]
    pred = window.prediction
    assert pred[:2].tolist() == [0.1, 0.2] and np.isnan(pred[2]) and pred[3] == 0.9


def test_time_window_filtering_is_half_open() -> None:
    lines = [record(f"{i},0,red,n", at=T0 + timedelta(minutes=30 * i)) for i in range(6)]
    lines.append(record("99,0,red,n", at=None))
    window = parse_capture_lines(
        lines, SCHEMA, since=T0 + timedelta(minutes=30), until=T0 + timedelta(hours=2)
    )
    assert window.columns["radius"].tolist() == [1, 2, 3]
    assert window.n_out_of_window == 3 and window.malformed == {"missing_inference_time": 1}
    assert window.first_inference_time == (T0 + timedelta(minutes=30)).isoformat()
    unbounded = parse_capture_lines(lines, SCHEMA)
    assert unbounded.n_rows == 7 and unbounded.malformed == {}


def test_categorical_prediction_and_large_window_chunks() -> None:
    schema = CaptureSchema(("a", "b"), ("a",), ("b",), prediction_kind="categorical")
    labels = ["yes", "no", "maybe"]
    lines = [record(f"{i},{'xyz'[i % 3]}", output=labels[i % 3]) for i in range(20_000)]
    window = parse_capture_lines(lines, schema)
    assert window.n_rows == 20_000 and window.columns["a"].tolist() == list(range(20_000))
    pred = window.prediction
    assert isinstance(pred, CategoricalCodes) and len(pred) == 20_000
    assert [pred.categories[c] for c in pred.codes[:4]] == ["yes", "no", "maybe", "yes"]
    assert window.columns["a"].flags["C_CONTIGUOUS"]


def test_capture_window_feeds_the_engine() -> None:
    rng = np.random.default_rng(11)
    n = 400
    ref = {
        "radius": rng.normal(14, 3, n),
        "texture": rng.normal(19, 4, n),
        "colour": rng.choice(["red", "blue"], n),
    }
    doc = build_reference(
        ref,
        categorical=["colour"],
        column_order=["radius", "texture", "colour", "note"],
        prediction=rng.random(n),
    )
    prepared = prepare_reference(doc)
    schema = CaptureSchema.from_reference(prepared)
    assert schema == SCHEMA
    lines = [
        record(f"{r:.3f},{t:.3f},{c},n", output=f"{p:.3f}")
        for r, t, c, p in zip(
            rng.normal(20, 3, 300),
            rng.normal(19, 4, 300),
            rng.choice(["red", "blue"], 300),
            rng.random(300),
            strict=True,
        )
    ]
    window = parse_capture_lines(lines, schema)
    result = compare(prepared, window.columns, prediction=window.prediction)
    assert result.features["radius"].drifted and not result.features["texture"].drifted


def test_hour_prefixes_and_s3_uri() -> None:
    since, until = T0 + timedelta(minutes=15), T0 + timedelta(hours=2)
    assert hour_prefixes("/cap/ep/AllTraffic/", since, until) == [
        "cap/ep/AllTraffic/2026/11/23/09/",
        "cap/ep/AllTraffic/2026/11/23/10/",
        "cap/ep/AllTraffic/2026/11/23/11/",
    ]
    assert hour_prefixes("x", until, since) == []
    assert parse_s3_uri("s3://bucket/data/capture/") == ("bucket", "data/capture")
    with pytest.raises(ValueError):
        parse_s3_uri("https://bucket")


def test_read_capture_window_from_s3(moto_server) -> None:
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=moto_server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket="capture")
    # files opened at 09:50 (holding records up to 10:10), 10:00, 11:00, 12:00, and another variant
    files = {
        "data/ep/AllTraffic/2026/11/23/09/a.jsonl": [T0 - timedelta(minutes=10), T0 + timedelta(minutes=10)],
        "data/ep/AllTraffic/2026/11/23/10/b.jsonl": [T0 + timedelta(minutes=20), T0 + timedelta(minutes=50)],
        "data/ep/AllTraffic/2026/11/23/11/c.jsonl": [T0 + timedelta(minutes=70), T0 + timedelta(minutes=119)],
        "data/ep/AllTraffic/2026/11/23/12/d.jsonl": [T0 + timedelta(minutes=125)],
        "data/ep/Canary/2026/11/23/10/e.jsonl": [T0 + timedelta(minutes=30)],
        "data/ep/AllTraffic/2026/11/23/10/ignored.txt": [T0 + timedelta(minutes=30)],
    }
    for key, times in files.items():
        minutes = [int((t - T0).total_seconds() // 60) for t in times]
        body = "\n".join(record(f"{m},0,red,n", at=t) for m, t in zip(minutes, times, strict=True))
        s3.put_object(Bucket="capture", Key=key, Body=(body + "\n{broken\n").encode())

    window = read_capture_window(
        "capture", "data", "ep", SCHEMA, T0, T0 + timedelta(hours=2), variant="AllTraffic", s3_client=s3
    )
    assert sorted(window.columns["radius"].tolist()) == [10, 20, 50, 70, 119]
    assert window.n_out_of_window == 1  # 09:50, found through the one-hour lookback
    assert window.n_objects == 3 and window.malformed == {"invalid_json": 3}
    everything = read_capture_window(
        "capture", "/data/", "ep", SCHEMA, T0, T0 + timedelta(hours=2), s3_client=s3
    )
    assert sorted(everything.columns["radius"].tolist()) == [10, 20, 30, 50, 70, 119]
