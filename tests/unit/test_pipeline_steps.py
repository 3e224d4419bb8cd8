"""The training pipeline's step scripts, run as SageMaker runs them: `python3 <step>.py ARGS` in a
fresh process, paths rewritten to temporary folders, the training job's settings in SM_* variables.

The demo chain (validate -> preprocess -> train -> evaluate) runs once per module; a second chain
with the same data and seed (evaluated with MLflow tracking) checks reproducibility.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
import tarfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipelines.dataset import SCHEMA_FILE, TARGET, breast_cancer_frame, schema_for, write_csv
from stacks.project_config import load_project
from tests.step_runner import SM_HPS, STEPS, ok, run_step, step_env

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Inputs:
    root: Path
    data: Path
    schema: Path
    config: Path
    project: dict[str, Any]


@dataclass(frozen=True)
class Chain:
    root: Path
    inputs: Inputs
    validation: Path
    splits: Path
    model: Path
    evaluation: Path
    evaluate_stderr: str

    def json(self, path: Path) -> Any:
        return json.loads(path.read_text())


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Inputs:
    root = tmp_path_factory.mktemp("inputs")
    write_csv(root / "data" / "breast_cancer.csv")
    (root / "schema").mkdir()
    (root / "schema" / "schema.json").write_text(SCHEMA_FILE.read_text())
    project = load_project(ROOT / "environments" / "projects" / "demo.yaml", "local", ROOT)
    (root / "config").mkdir()
    (root / "config" / "project.json").write_text(json.dumps(project.model_dump(mode="json")))
    return Inputs(root, root / "data", root / "schema", root / "config", project.model_dump(mode="json"))


def run_chain(
    inputs: Inputs, root: Path, evaluate_env: dict[str, str], packed: bool, validation: Path
) -> Chain:
    """preprocess -> train -> evaluate; `packed` evaluates model.tar.gz as SageMaker hands it over."""
    env = step_env(root)
    splits, model, out = root / "splits", root / "model", root / "evaluation"
    data_uri = inputs.data / "breast_cancer.csv"
    ok(
        run_step(
            "preprocess", data=inputs.data, config=inputs.config, data_uri=data_uri, output=splits, env=env
        )
    )
    train_env = step_env(
        root,
        SM_CHANNEL_TRAIN=str(splits / "train"),
        SM_CHANNEL_VALIDATION=str(splits / "validation"),
        SM_CHANNEL_CONFIG=str(inputs.config),
        SM_MODEL_DIR=str(model),
        SM_OUTPUT_DATA_DIR=str(root / "output-data"),
        SM_HPS=json.dumps(SM_HPS),
    )
    # SageMaker also passes the hyperparameters as arguments; train.py must ignore them.
    ok(run_step("train", "--n_estimators", "150", "--max_depth", "3", env=train_env))
    model_input = model
    if packed:
        model_input = root / "artifact"
        model_input.mkdir()
        with tarfile.open(model_input / "model.tar.gz", "w:gz") as tar:
            for path in sorted(model.rglob("*")):
                tar.add(path, arcname=str(path.relative_to(model)), recursive=False)
    evaluated = ok(
        run_step(
            "evaluate",
            model=model_input,
            test=splits / "test",
            config=inputs.config,
            lineage=splits / "lineage",
            validation=validation,
            output=out,
            env={**env, **evaluate_env},
            python_flags=("-X", "importtime"),
        )
    )
    return Chain(root, inputs, validation, splits, model, out, evaluated.stderr)


@pytest.fixture(scope="module")
def chains(inputs, tmp_path_factory) -> tuple[Chain, Chain]:
    """Two runs side by side (every step is its own process): the plain chain, and the same data
    and seed again, evaluated from the unpacked model with MLflow tracking."""
    plain, tracked = tmp_path_factory.mktemp("chain"), tmp_path_factory.mktemp("tracked")
    validation = plain / "validation"
    ok(run_step("validate", data=inputs.data, schema=inputs.schema, output=validation, env=step_env(plain)))
    tracking = {
        "MLFLOW_TRACKING_URI": f"sqlite:///{tracked / 'mlflow.db'}",
        "MLFLOW_ARTIFACT_LOCATION": str(tracked / "mlflow-artifacts"),
        "MLOPS_RUN_ID": "run-0001",
        "MLOPS_GIT_COMMIT": "0123abcd",
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        first = pool.submit(run_chain, inputs, plain, {}, True, validation)
        second = pool.submit(run_chain, inputs, tracked, tracking, False, validation)
        return first.result(), second.result()


@pytest.fixture(scope="module")
def chain(chains) -> Chain:
    return chains[0]


@pytest.fixture(scope="module")
def tracked_chain(chains) -> Chain:
    return chains[1]


def load_inference() -> ModuleType:
    """inference.py under a unique module name: it is a script folder, not a package import."""
    name = "steps_inference_under_test"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, STEPS / "inference.py")
        sys.modules[name] = importlib.util.module_from_spec(spec)  # dataclasses look their module up
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


# --- validate ---------------------------------------------------------------------------------


def test_shipped_schema_matches_the_dataset():
    assert json.loads(SCHEMA_FILE.read_text()) == schema_for(breast_cancer_frame())


def test_validate_passes_the_demo_data(chain):
    report = chain.json(chain.validation / "validation_report.json")
    assert report["status"] == "passed"
    assert (report["n_rows"], report["n_columns"], report["checks"]) == (569, 31, [])
    assert set(report["null_fractions"].values()) == {0.0}


def test_validate_reports_every_failure(inputs, tmp_path):
    frame = breast_cancer_frame().drop(columns=["mean_area"])
    frame["mean_radius"] = frame["mean_radius"].astype(object)
    frame.loc[3, "mean_radius"] = "abc"
    frame.loc[::2, "mean_texture"] = np.nan
    (tmp_path / "data").mkdir()
    frame.to_csv(tmp_path / "data" / "corrupt.csv", index=False)

    report_dir = tmp_path / "report"
    result = run_step(
        "validate", data=tmp_path / "data", schema=inputs.schema, output=report_dir, env=step_env(tmp_path)
    )

    assert result.returncode == 1
    failure = (tmp_path / "sm-output" / "failure").read_text()
    expected = [
        "column 'mean_area' missing",
        "column 'mean_radius' has non-numeric values (e.g. 'abc')",
        "column 'mean_texture' null fraction 0.50 > 0.00",
    ]
    for phrase in expected:
        assert phrase in failure
        assert phrase in result.stderr
    assert failure.startswith("validation failed: ")
    # Processing jobs surface /opt/ml/output/message rather than `failure`: both carry the reason.
    assert (tmp_path / "sm-output" / "message").read_text() == failure
    assert "Traceback" not in result.stderr
    report = json.loads((report_dir / "validation_report.json").read_text())
    assert report["status"] == "failed"
    checks = {(c["column"], c["check"]): c for c in report["checks"]}
    assert checks[("mean_area", "column_in_dataframe")]["failure_cases"] == 1
    assert checks[("mean_radius", "dtype('float64')")]["examples"] == ["abc"]
    assert checks[("mean_texture", "max_null_fraction")]["failure_cases"] == 285
    assert len(checks) == 3, "a mistyped column must not also fail its range check"
    assert report["null_fractions"]["mean_texture"] == pytest.approx(285 / 569, abs=1e-6)


# --- preprocess -------------------------------------------------------------------------------


def test_preprocess_splits_stratified_in_dataset_order(chain):
    data = pd.read_csv(chain.inputs.data / "breast_cancer.csv")
    parts = {
        name: pd.read_csv(chain.splits / name / f"{name}.csv") for name in ("train", "validation", "test")
    }
    assert {name: len(part) for name, part in parts.items()} == {"train": 397, "validation": 86, "test": 86}
    for part in parts.values():
        assert list(part.columns) == list(data.columns)
        assert part[TARGET].mean() == pytest.approx(data[TARGET].mean(), abs=0.02)
    together = pd.concat(parts.values()).sort_values(list(data.columns)).reset_index(drop=True)
    pd.testing.assert_frame_equal(together, data.sort_values(list(data.columns)).reset_index(drop=True))


def test_preprocess_records_lineage(chain):
    lineage = chain.json(chain.splits / "lineage" / "lineage.json")
    csv = chain.inputs.data / "breast_cancer.csv"
    assert lineage == {
        "data_uri": str(csv),
        "sha256": hashlib.sha256(csv.read_bytes()).hexdigest(),
        "n_rows": 569,
        "splits": {"train": 397, "validation": 86, "test": 86},
        "seed": 42,
        "s3_objects": [],
    }


# --- train ------------------------------------------------------------------------------------


def test_train_writes_the_model_artifact(chain):
    meta = chain.json(chain.model / "model_meta.json")
    features = [c for c in breast_cancer_frame().columns if c != TARGET]
    assert meta == {
        "features": features,
        "categorical_features": [],
        "target": TARGET,
        "task": "classification",
        "algorithm": "gradient_boosting",
        # coerced from SageMaker's strings; sagemaker_* settings dropped
        "hyperparameters": {"n_estimators": 150, "max_depth": 3, "learning_rate": 0.1, "subsample": 0.9},
        "seed": 42,
        "classes": [0, 1],
    }
    assert (chain.model / "model.joblib").is_file()
    assert (chain.model / "code" / "inference.py").read_bytes() == (STEPS / "inference.py").read_bytes()
    summary = json.loads((chain.root / "output-data" / "training_summary.json").read_text())
    assert summary["n_train"] == 397 and summary["n_validation"] == 86


def test_reference_stats_format(chain):
    stats = chain.json(chain.model / "reference_stats.json")
    train = pd.read_csv(chain.splits / "train" / "train.csv").drop(columns=[TARGET])
    assert set(stats) == {"format", "n_rows", "columns", "features", "prediction", "prediction_source"}
    assert stats["format"] == "mlops-drift-reference/v1"
    assert stats["n_rows"] == 397
    assert stats["columns"] == list(train.columns)
    assert set(stats["features"]) == set(train.columns)
    for name, feature in stats["features"].items():
        assert set(feature) == {"kind", "values"} and feature["kind"] == "numeric"
        assert feature["values"] == sorted(train[name].astype(float).tolist())
    # The prediction reference: the model's scores on the validation split (86 rows it never saw),
    # not on the rows it fitted.
    prediction = stats["prediction"]
    assert stats["prediction_source"] == "validation"
    assert prediction["kind"] == "numeric" and len(prediction["values"]) == 86
    assert prediction["values"] == sorted(prediction["values"])
    assert 0.0 <= prediction["values"][0] <= prediction["values"][-1] <= 1.0


def test_train_names_an_unknown_hyperparameter(inputs, chain, tmp_path):
    env = step_env(
        tmp_path,
        SM_CHANNEL_TRAIN=str(chain.splits / "train"),
        SM_CHANNEL_CONFIG=str(inputs.config),
        SM_MODEL_DIR=str(tmp_path / "model"),
        SM_OUTPUT_DATA_DIR=str(tmp_path / "data"),
        SM_HPS=json.dumps({"algorithm": "gradient_boosting", "seed": "1", "n_estimatorz": "5"}),
    )
    result = run_step("train", env=env)
    assert result.returncode == 1
    failure = (tmp_path / "sm-output" / "failure").read_text()
    assert "unknown hyperparameter 'n_estimatorz' for gradient_boosting" in failure
    assert "Traceback" not in result.stderr


# --- evaluate ---------------------------------------------------------------------------------


def test_demo_model_passes_the_demo_gate(chain):
    evaluation = chain.json(chain.evaluation / "evaluation.json")
    thresholds = chain.inputs.project["gate"]["thresholds"]
    assert thresholds == {"accuracy": 0.90, "recall": 0.90, "f1": 0.88, "roc_auc": 0.95}
    for metric, minimum in thresholds.items():
        assert evaluation["metrics"][metric] >= minimum, (metric, evaluation["metrics"])
    assert evaluation["fairness"]["within_bounds"] is True


def test_evaluation_format(chain):
    evaluation = chain.json(chain.evaluation / "evaluation.json")
    flat = evaluation["metrics"]
    assert set(flat) == {"accuracy", "precision", "recall", "f1", "roc_auc"}
    assert all(round(v, 6) == v for v in flat.values())
    block = evaluation["binary_classification_metrics"]
    for name in ("accuracy", "precision", "recall", "f1"):
        assert block[name] == {"value": flat[name], "standard_deviation": "NaN"}
    assert block["auc"]["value"] == flat["roc_auc"]
    matrix = block["confusion_matrix"]
    tn, fp, fn, tp = matrix["0"]["0"], matrix["0"]["1"], matrix["1"]["0"], matrix["1"]["1"]
    assert tn + fp + fn + tp == evaluation["n_test"] == 86
    assert flat["recall"] == round(tp / (tp + fn), 6)
    curve = block["receiver_operating_characteristic_curve"]
    assert len(curve["false_positive_rates"]) == len(curve["true_positive_rates"]) >= 2
    assert evaluation["task"] == "classification"
    latency = evaluation["latency_ms"]
    assert latency["n"] == 200 and 0 < latency["p50"] <= latency["p95"]
    fairness = evaluation["fairness"]
    assert fairness["attribute"] == "mean_radius" and fairness["metric"] == "recall"
    assert set(fairness["groups"]) == {"<= 14.0", "> 14.0"}
    assert sum(g["n"] for g in fairness["groups"].values()) == 86
    recalls = [g["recall"] for g in fairness["groups"].values()]
    assert fairness["gap"] == round(max(recalls) - min(recalls), 6)
    assert fairness["max_gap"] == 0.25


def test_evaluate_without_tracking_never_imports_mlflow(chain):
    tracking = chain.json(chain.evaluation / "tracking.json")
    assert tracking == {"mlflow_run_id": None, "reason": "MLFLOW_TRACKING_URI not set"}
    imported = [line.split("|")[-1].strip() for line in chain.evaluate_stderr.splitlines() if "|" in line]
    assert "inference" in imported, "-X importtime output expected"
    assert not [name for name in imported if name.split(".")[0] == "mlflow"]


def test_reruns_are_reproducible(chain, tracked_chain):
    first = chain.json(chain.evaluation / "evaluation.json")
    second = tracked_chain.json(tracked_chain.evaluation / "evaluation.json")
    assert first["metrics"] == second["metrics"]
    first.pop("latency_ms"), second.pop("latency_ms")  # wall-clock time, the only varying part
    assert first == second
    for path in ("model_meta.json", "reference_stats.json"):
        assert (chain.model / path).read_bytes() == (tracked_chain.model / path).read_bytes()
    for path in ("train/train.csv", "validation/validation.csv", "test/test.csv"):
        assert (chain.splits / path).read_bytes() == (tracked_chain.splits / path).read_bytes()


def test_mlflow_run_matches_the_evaluation(tracked_chain):
    from mlflow.tracking import MlflowClient

    tracking = tracked_chain.json(tracked_chain.evaluation / "tracking.json")
    evaluation = tracked_chain.json(tracked_chain.evaluation / "evaluation.json")
    lineage = tracked_chain.json(tracked_chain.splits / "lineage" / "lineage.json")
    client = MlflowClient(tracking_uri=tracking["tracking_uri"])
    run = client.get_run(tracking["mlflow_run_id"])

    expected = {
        **evaluation["metrics"],
        "latency_p50_ms": evaluation["latency_ms"]["p50"],
        "latency_p95_ms": evaluation["latency_ms"]["p95"],
        "fairness_gap": evaluation["fairness"]["gap"],
    }
    assert run.data.metrics == expected
    params = run.data.params
    assert params["algorithm"] == "gradient_boosting" and params["seed"] == "42"
    assert params["n_estimators"] == "150" and params["learning_rate"] == "0.1"
    assert params["dataset_sha256"] == lineage["sha256"] and params["data_uri"] == lineage["data_uri"]
    tags = run.data.tags
    assert (tags["project"], tags["pipeline_run_id"], tags["git_commit"]) == ("demo", "run-0001", "0123abcd")
    assert run.info.run_name == "run-0001"
    experiment = client.get_experiment(tracking["experiment_id"])
    assert experiment.name == "demo"
    assert experiment.artifact_location.endswith("mlflow-artifacts")
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert artifacts >= {"evaluation.json", "validation_report.json", "lineage.json", "reference_stats.json"}
    models = client.search_logged_models(experiment_ids=[tracking["experiment_id"]])
    assert [(m.name, m.source_run_id) for m in models] == [("model", run.info.run_id)]


def test_an_experiment_keeping_its_artifacts_elsewhere_is_renamed_and_a_new_one_takes_its_name(
        tracked_chain, tmp_path):
    """The project's runs write their artifacts under its own prefix (MLFLOW_ARTIFACT_LOCATION,
    set by the pipeline definition). An existing experiment of that name keeping them elsewhere
    (one an earlier run created at the tracking server's root, where the project's role may not
    write) is renamed, runs and all, and a new one takes the name."""
    import shutil

    from mlflow.tracking import MlflowClient

    db = tmp_path / "mlflow.db"
    shutil.copy(tracked_chain.root / "mlflow.db", db)  # the chain's own experiment, at another place
    uri, location = f"sqlite:///{db}", str(tmp_path / "project-mlflow")
    before = MlflowClient(tracking_uri=uri).get_experiment_by_name("demo")
    env = step_env(tmp_path, MLFLOW_TRACKING_URI=uri, MLFLOW_ARTIFACT_LOCATION=location,
                   MLOPS_RUN_ID="run-0002")
    ok(run_step("evaluate", model=tracked_chain.model, test=tracked_chain.splits / "test",
                config=tracked_chain.inputs.config, lineage=tracked_chain.splits / "lineage",
                validation=tracked_chain.validation, output=tmp_path / "evaluation", env=env))
    client = MlflowClient(tracking_uri=uri)
    legacy = client.get_experiment(before.experiment_id)
    assert legacy.name == f"demo-legacy-{before.experiment_id}"
    assert client.search_runs([legacy.experiment_id])  # its runs stay with it
    current = client.get_experiment_by_name("demo")
    assert current.experiment_id != before.experiment_id and current.artifact_location == location
    tracking = json.loads((tmp_path / "evaluation" / "tracking.json").read_text())
    assert tracking["experiment_id"] == current.experiment_id


def test_a_tracking_server_that_does_not_answer_fails_the_step_in_one_line(tracked_chain, tmp_path):
    import socket

    with socket.socket() as sock:  # a port nothing listens on: the server is down
        sock.bind(("127.0.0.1", 0))
        uri = f"http://127.0.0.1:{sock.getsockname()[1]}"
    env = step_env(tmp_path, MLFLOW_TRACKING_URI=uri, MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
                   MLFLOW_HTTP_REQUEST_TIMEOUT="5", MLOPS_RUN_ID="run-0003")
    result = run_step("evaluate", model=tracked_chain.model, test=tracked_chain.splits / "test",
                      config=tracked_chain.inputs.config, lineage=tracked_chain.splits / "lineage",
                      validation=tracked_chain.validation, output=tmp_path / "evaluation", env=env)
    assert result.returncode == 1
    failure = (tmp_path / "sm-output" / "failure").read_text()
    assert failure.startswith(f"MLflow tracking at {uri} failed: ")
    assert "\n" not in failure.strip() and "Traceback" not in result.stderr


# --- inference --------------------------------------------------------------------------------


def test_inference_round_trip(chain):
    inference = load_inference()
    model = inference.model_fn(str(chain.model))
    test = pd.read_csv(chain.splits / "test" / "test.csv")
    rows = test[model.features].head(3)
    expected = model.estimator.predict_proba(rows)[:, 1]

    body = rows.to_csv(header=False, index=False)
    scores = inference.predict_fn(inference.input_fn(body.encode(), "text/csv"), model)
    np.testing.assert_allclose(scores, expected, rtol=0, atol=0)
    text, content_type = inference.output_fn(scores, "text/csv")
    assert content_type == "text/csv"
    assert [float(line) for line in text.splitlines()] == expected.tolist()

    as_lists = json.dumps({"instances": rows.to_numpy().tolist()})
    scores = inference.predict_fn(inference.input_fn(as_lists, "application/json"), model)
    text, content_type = inference.output_fn(scores, "application/json")
    assert content_type == "application/json"
    assert json.loads(text) == {"predictions": expected.tolist()}

    as_objects = json.dumps({"instances": rows.iloc[:, ::-1].to_dict(orient="records")})
    scores = inference.predict_fn(inference.input_fn(as_objects, "application/json; charset=utf-8"), model)
    np.testing.assert_allclose(scores, expected, rtol=0, atol=0)


def test_fuzzed_requests_are_answered_or_refused_with_a_reason(chain):
    """The serve entry's request parsing, as the model server calls it (input_fn -> predict_fn ->
    output_fn), on thousands of generated bodies and headers: a prediction per row, or BadRequest
    with a status and a reason; never another exception (that would be a 500, a server fault)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    inference = load_inference()
    model = inference.model_fn(str(chain.model))
    row = pd.read_csv(chain.splits / "test" / "test.csv")[model.features].head(1)
    good = row.to_csv(header=False, index=False).strip()
    cells = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text(max_size=8),
                      st.just(""), st.sampled_from(good.split(",")))
    csv_rows = st.lists(st.lists(cells, min_size=0, max_size=32).map(",".join), min_size=0, max_size=3)
    json_cell = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False), st.text(max_size=6))
    bodies = st.one_of(
        csv_rows.map("\n".join), st.binary(max_size=64).map(lambda b: b.decode("latin-1")),
        st.lists(st.lists(json_cell, max_size=32), max_size=3).map(lambda r: json.dumps({"instances": r})),
        st.dictionaries(st.sampled_from(model.features), json_cell, max_size=32).map(
            lambda d: json.dumps({"instances": [d]})),
        st.just(good))
    media = st.sampled_from(["text/csv", "application/json", "text/csv; charset=utf-8", "application/x-npy",
                             "", None, "application/json; charset=latin-1"])

    @settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(bodies, media, media)
    def request(body, content_type, accept):
        try:
            rows = inference.input_fn(body.encode("utf-8", "surrogatepass"), content_type)
            scores = inference.predict_fn(rows, model)
            text, _ = inference.output_fn(scores, accept)
        except inference.BadRequest as refused:
            assert 400 <= refused.status < 500 and str(refused), refused
            return
        assert len(np.asarray(scores).ravel()) == len(rows) and text

    request()


def test_inference_rejects_bad_requests(chain):
    inference = load_inference()
    model = inference.model_fn(str(chain.model))
    with pytest.raises(ValueError, match="unsupported content type"):
        inference.input_fn("x", "application/x-parquet")
    with pytest.raises(ValueError, match="expected 30 values per row, got 2"):
        inference.predict_fn(inference.input_fn("1.0,2.0\n", "text/csv"), model)
    with pytest.raises(ValueError, match="unsupported accept type"):
        inference.output_fn(np.array([0.5]), "application/xml")
