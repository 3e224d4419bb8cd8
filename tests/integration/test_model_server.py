"""The inference image's `serve` entry run as a process against a real model artifact (the demo
model trained by the train step, extracted as SageMaker extracts it), spoken to over HTTP as
SageMaker speaks to a container. The image itself cannot be built here (no Docker engine): the
Dockerfile is read for what the contract needs (hadolint lints it: tests/security/)."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from local_aws.lifecycle import free_port
from pipelines.model_server.settings import ServerSettings, SettingsError

ROOT = Path(__file__).resolve().parents[2]
IMAGE = ROOT / "pipelines" / "image"


class Server:
    def __init__(self, proc: subprocess.Popen, port: int, log: Path):
        self.proc, self.port, self.log = proc, port, log

    def request(self, method: str, path: str, body: bytes | str | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def invoke(self, body: bytes | str, content_type: str = "text/csv", **headers: str):
        return self.request("POST", "/invocations", body, {"Content-Type": content_type, **headers})


def _env(model_dir: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "SAGEMAKER_", "MLOPS_"))}
    return {**env, "SM_MODEL_DIR": str(model_dir), "MLOPS_SERVE_BIND": f"127.0.0.1:{port}", **extra}


@contextmanager
def serving(model_dir: Path, tmp_path: Path, **extra: str) -> Iterator[Server]:
    """`serve` on 127.0.0.1 at a free port, stopped by its pid when the test ends."""
    port, log = free_port(), tmp_path / f"serve-{time.monotonic_ns()}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pipelines.model_server", "serve"], cwd=ROOT,
                                env=_env(model_dir, port, **extra), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    server = Server(proc, port, log)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"serve exited {proc.returncode}: {log.read_text()[-2000:]}"
            try:
                if server.request("GET", "/ping")[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail(f"serve did not answer /ping within 30 s: {log.read_text()[-2000:]}")
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def model_dir(demo_model, tmp_path_factory) -> Path:
    return demo_model.extract(tmp_path_factory.mktemp("opt-ml-model"))


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory) -> Iterator[Server]:
    with serving(model_dir, tmp_path_factory.mktemp("serve"), SAGEMAKER_MODEL_SERVER_WORKERS="2") as s:
        yield s


@pytest.fixture(scope="module")
def rows(demo_model) -> pd.DataFrame:
    return pd.read_csv(demo_model.test_csv)[demo_model.features].head(5)


def _expected(model_dir: Path, rows: pd.DataFrame) -> np.ndarray:
    import joblib

    return joblib.load(model_dir / "model.joblib").predict_proba(rows)[:, 1]


def test_ping_is_healthy_with_an_empty_body(server):
    started = time.monotonic()
    status, _, body = server.request("GET", "/ping")
    assert (status, body) == (200, b"")
    assert time.monotonic() - started < 2.0  # SageMaker's health check times out after 2 s


def test_csv_and_json_answer_the_models_own_scores(server, model_dir, rows):
    expected = _expected(model_dir, rows)
    status, headers, body = server.invoke(rows.to_csv(header=False, index=False))
    assert status == 200 and headers["Content-Type"] == "text/csv"
    assert [float(v) for v in body.decode().split()] == expected.tolist()

    payload = json.dumps({"instances": rows.to_numpy().tolist()})
    status, headers, body = server.invoke(payload, "application/json", Accept="application/json")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(body)["predictions"] == expected.tolist()


def test_the_inference_id_is_echoed(server, rows):
    status, headers, _ = server.invoke(rows.head(1).to_csv(header=False, index=False),
                                       **{"X-Amzn-SageMaker-Inference-Id": "req-0042"})
    assert status == 200 and headers["X-Amzn-SageMaker-Inference-Id"] == "req-0042"


@pytest.mark.parametrize(("body", "content_type", "accept", "status", "reason"), [
    ("1.0,2.0\n", "text/csv", None, 400, "expected 30 values per row, got 2"),
    ("abc" + ",1" * 29 + "\n", "text/csv", None, 400,
     "row 1, feature 'mean_radius': 'abc' is not a finite number"),
    ("1" + ",1" * 28 + ",\n", "text/csv", None, 400, "is not a finite number"),
    ("", "text/csv", None, 400, "empty request body"),
    ("1,2\n1\n", "text/csv", None, 400, "row 2 has 1 values, row 1 has 2"),
    ("{not json", "application/json", None, 400, "malformed JSON"),
    ('{"rows": []}', "application/json", None, 400, 'expected a JSON body {"instances"'),
    ("x", "application/x-parquet", None, 415, "unsupported content type 'application/x-parquet'"),
    ("1" + ",1" * 29 + "\n", "text/csv", "application/xml", 406, "unsupported accept type"),
])
def test_bad_requests_get_a_4xx_with_a_one_line_reason(server, body, content_type, accept, status, reason):
    headers = {"Content-Type": content_type, **({"Accept": accept} if accept else {})}
    got, _, text = server.request("POST", "/invocations", body, headers)
    assert got == status
    assert reason in text.decode()
    assert text.decode().count("\n") == 1 and "Traceback" not in text.decode()


def test_unknown_routes_and_methods(server):
    assert server.request("GET", "/invocations")[0] == 405
    assert server.request("GET", "/metrics")[0] == 404


def test_a_fault_of_the_model_is_a_5xx(model_dir, tmp_path, rows):
    broken = tmp_path / "model"
    shutil.copytree(model_dir, broken)
    code = broken / "code" / "inference.py"
    code.write_text(code.read_text() + "\n\ndef predict_fn(input_data, model):\n"
                    "    raise RuntimeError('the model lost its trees')\n")
    with serving(broken, tmp_path, SAGEMAKER_MODEL_SERVER_WORKERS="1") as server:
        status, _, text = server.invoke(rows.head(1).to_csv(header=False, index=False))
    assert status == 500
    assert text.decode().strip() == "model error: RuntimeError: the model lost its trees"


def test_injected_faults_fail_exactly_the_share_asked_for(model_dir, tmp_path, rows):
    row = rows.head(1).to_csv(header=False, index=False)
    with serving(model_dir, tmp_path, SAGEMAKER_MODEL_SERVER_WORKERS="1",
                 MLOPS_FAULT_ERROR_PERCENT="25") as server:
        statuses = [server.invoke(row)[0] for _ in range(20)]
    assert statuses.count(500) == 5 and statuses.count(200) == 15


def test_sigterm_lets_the_request_in_flight_finish_then_exits(model_dir, tmp_path, rows):
    row = rows.head(1).to_csv(header=False, index=False)
    with serving(model_dir, tmp_path, SAGEMAKER_MODEL_SERVER_WORKERS="1",
                 MLOPS_FAULT_LATENCY_MS="1500") as server:
        answers: list[int] = []
        inflight = threading.Thread(target=lambda: answers.append(server.invoke(row)[0]))
        inflight.start()
        time.sleep(0.5)
        server.proc.send_signal(signal.SIGTERM)
        inflight.join(timeout=20)
        assert server.proc.wait(timeout=25) == 0
    assert answers == [200]


@pytest.mark.parametrize(("extra", "message"), [
    ({"MLOPS_FAULT_ERROR_PERCENT": "lots"}, "MLOPS_FAULT_ERROR_PERCENT='lots': not a number"),
    ({"SAGEMAKER_MODEL_SERVER_WORKERS": "0"}, "SAGEMAKER_MODEL_SERVER_WORKERS='0': must be between 1"),
    ({"SAGEMAKER_SUBMIT_DIRECTORY": "s3://bucket/code.tar.gz"}, "must be a folder in the container"),
    ({"SM_MODEL_DIR": "/nonexistent/model"}, "/nonexistent/model/code/inference.py: no inference module"),
])
def test_a_bad_setting_or_artifact_stops_serve_with_the_reason(model_dir, tmp_path, extra, message):
    env = _env(model_dir, free_port(), **extra)
    result = subprocess.run([sys.executable, "-m", "pipelines.model_server", "serve"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr


def test_workers_default_to_the_cpus_and_the_port_to_8080():
    settings = ServerSettings.from_env({})
    assert settings.workers == len(os.sched_getaffinity(0))
    assert settings.bind == "0.0.0.0:8080" and settings.model_dir == Path("/opt/ml/model")
    assert settings.submit_dir == Path("/opt/ml/model/code") and settings.timeout_s == 60
    assert ServerSettings.from_env({"SAGEMAKER_BIND_TO_PORT": "9000"}).bind == "0.0.0.0:9000"
    with pytest.raises(SettingsError, match="MLOPS_SERVE_BIND='nope': expected HOST:PORT"):
        ServerSettings.from_env({"MLOPS_SERVE_BIND": "nope"})


# --- the image ----------------------------------------------------------------------------------


def _stages(dockerfile: str) -> dict[str, list[str]]:
    stages: dict[str, list[str]] = {}
    current = ""
    for line in re.sub(r"\\\n\s*", " ", dockerfile).splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+\S+(?:\s+AS\s+(\S+))?", line, re.IGNORECASE)
        if match:
            current = match.group(1) or f"stage{len(stages)}"
            stages[current] = []
        else:
            stages[current].append(line)
    return stages


def test_the_inference_stage_serves_as_a_non_root_user_without_build_tools():
    stages = _stages((IMAGE / "Dockerfile").read_text())
    final_name = list(stages)[-1]
    final = stages[final_name]
    assert final_name == "inference"
    users = [line.split()[1] for line in final if line.upper().startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert not any(re.search(r"\b(gcc|g\+\+|build-essential|apt-get install)\b", line) for line in final)
    assert 'CMD ["serve"]' in final and "EXPOSE 8080" in final
    serve = IMAGE / "serve"
    assert os.access(serve, os.X_OK) and "python -m model_server" in serve.read_text()
    # What the inference stage installs is exactly what the server, inference.py and the EKS
    # model fetcher (model_server/fetch_model.py: boto3) import.
    serving = {line.split("==")[0] for line in (IMAGE / "requirements-serving.txt").read_text().split()
               if "==" in line}
    assert serving == {"numpy", "pandas", "scikit-learn", "joblib", "gunicorn", "boto3"}
