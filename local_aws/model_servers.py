"""Model server processes behind local endpoints: the inference image's own `serve` entry.

SageMaker starts a production variant as `<image> serve` with the model archive extracted to
/opt/ml/model and the Model's `Environment`; here the same entry (pipelines/model_server) runs
as a process of this machine, on 127.0.0.1 at a free port, with the archive (read from the local
S3) extracted to a folder of the local AWS's state and the container paths in the environment
rebased onto it. No image is pulled: the image URI only names what AWS would run.

Each process is started in its own session and stopped by its pid (SIGTERM, then SIGKILL after
SageMaker's 30 s), never by name. Its output goes to <state>/logs/endpoints/<endpoint>/, where a
person looks for what CloudWatch Logs would hold under /aws/sagemaker/Endpoints/<endpoint>.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import os
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local_aws.lifecycle import free_port
from local_aws.processes import stop_process

REPO_ROOT = Path(__file__).resolve().parents[1]
CONTAINER_MODEL_DIR = "/opt/ml/model"
PING_TIMEOUT_S = 2.0  # SageMaker's health check gives up after 2 s
INVOCATION_TIMEOUT_S = 60.0  # and an invocation after 60 s
STOP_GRACE_S = 30.0
# Variables of the caller that must not leak into a "container": credentials and our own settings.
_NOT_INHERITED = ("AWS_", "MLOPS_", "SM_", "SAGEMAKER_")


class ModelServerError(RuntimeError):
    """A variant's server could not start or stopped answering; the message is the failure reason."""


@dataclass(frozen=True)
class ContainerSpec:
    """What a SageMaker Model says about its (primary) container."""

    image: str
    model_data_url: str
    environment: dict[str, str]


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    latency_us: int  # from sending the request to the container until its whole answer was read


def extract_model(archive: bytes, into: Path) -> Path:
    """model.tar.gz as SageMaker extracts it to /opt/ml/model (no paths outside the folder)."""
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tar:
            tar.extractall(into, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise ModelServerError(f"the model archive is not a readable tar.gz: {exc}") from None
    return into


def container_environment(spec: ContainerSpec, model_dir: Path, port: int, workers: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_NOT_INHERITED)}
    for name, value in spec.environment.items():
        # Paths the Model names inside the container point into the extracted archive here.
        if value == CONTAINER_MODEL_DIR or value.startswith(CONTAINER_MODEL_DIR + "/"):
            value = str(model_dir) + value[len(CONTAINER_MODEL_DIR):]
        env[name] = value
    env.update(SM_MODEL_DIR=str(model_dir), MLOPS_SERVE_BIND=f"127.0.0.1:{port}",
               PYTHONPATH=str(REPO_ROOT))
    env.setdefault("SAGEMAKER_MODEL_SERVER_WORKERS", str(workers))
    return env


class ModelServer:
    """One `serve` process: one production variant of one endpoint config."""

    def __init__(self, endpoint: str, config: str, variant: str, model: str, spec: ContainerSpec,
                 workdir: Path, log_dir: Path, workers: int = 1):
        self.endpoint, self.config, self.variant, self.model = endpoint, config, variant, model
        self.spec, self.workdir, self.workers = spec, workdir, workers
        self.log_file = log_dir / f"{variant}-{config}.log"
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def record(self) -> dict[str, Any]:
        return {"name": self.endpoint, "variant": self.variant, "config": self.config,
                "model": self.model, "pid": self.pid, "port": self.port}

    def start(self, archive: bytes) -> None:
        self._launch(extract_model(archive, self.workdir / "model"))

    def exited(self) -> bool:
        """The process ran and is gone (killed, crashed), not stopped by its owner."""
        return self.proc is not None and self.proc.poll() is not None and self.workdir.exists()

    def restart(self, timeout_s: float) -> None:
        """A new process for the same model, as SageMaker replaces a container that died."""
        self._launch(self.workdir / "model")
        self.wait_healthy(timeout_s)

    def _launch(self, model_dir: Path) -> None:
        self.port = free_port()
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pipelines.model_server", "serve"], cwd=REPO_ROOT,
                env=container_environment(self.spec, model_dir, self.port, self.workers),
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def wait_healthy(self, timeout_s: float) -> None:
        """Pings until 200 (as SageMaker's health check does); ModelServerError with the reason
        SageMaker gives, and the end of the server's log, when it does not come up."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise ModelServerError(self._failure(f"the container exited with code {code}"))
            if self.ping():
                return
            time.sleep(0.1)
        self.stop()
        raise ModelServerError(self._failure(f"no 200 from /ping within {timeout_s:.0f} s"))

    def _failure(self, what: str) -> str:
        tail = ""
        with contextlib.suppress(OSError):
            lines = self.log_file.read_text(errors="replace").strip().splitlines()
            tail = f" Last log line: {lines[-1]}" if lines else ""
        return (f"The primary container for production variant {self.variant} did not pass the ping "
                f"health check ({what}). Logs: {self.log_file}.{tail}")

    def ping(self) -> bool:
        try:
            return self._request("GET", "/ping", None, {}, PING_TIMEOUT_S)[0] == 200
        except OSError:
            return False

    def invoke(self, body: bytes, headers: dict[str, str]) -> Answer:
        started = time.perf_counter_ns()
        status, answer_headers, data = self._request("POST", "/invocations", body, headers,
                                                     INVOCATION_TIMEOUT_S)
        return Answer(status, answer_headers, data, (time.perf_counter_ns() - started) // 1000)

    def _request(self, method: str, path: str, body: bytes | None, headers: dict[str, str],
                 timeout: float) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            conn.close()

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM, then SIGKILL after the grace, by pid; the extracted model is removed."""
        if self.proc is not None:
            stop_process(self.proc, grace_s)
        shutil.rmtree(self.workdir, ignore_errors=True)
