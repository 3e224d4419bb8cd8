"""The server's settings, read from the container's environment (the SageMaker Model's
`Environment` plus what SageMaker itself sets). A bad value stops the server before it binds, with
a message naming the variable: SageMaker shows it in the endpoint's CloudWatch logs.

| variable | meaning | default |
| --- | --- | --- |
| `SM_MODEL_DIR` | where the model archive is extracted | `/opt/ml/model` |
| `SAGEMAKER_PROGRAM` | the inference module in the submit directory | `inference.py` |
| `SAGEMAKER_SUBMIT_DIRECTORY` | the folder holding it (a local path) | `<SM_MODEL_DIR>/code` |
| `SAGEMAKER_BIND_TO_PORT` | the port SageMaker asks the container to listen on | `8080` |
| `MLOPS_SERVE_BIND` | `HOST:PORT` to bind instead of `0.0.0.0:<port>` (the local AWS binds 127.0.0.1) | |
| `SAGEMAKER_MODEL_SERVER_WORKERS` | worker processes | the CPUs this process may use |
| `SAGEMAKER_MODEL_SERVER_TIMEOUT` | seconds a request may take before its worker is replaced | `60` |
| `MLOPS_FAULT_ERROR_PERCENT` | drills only: this share of `/invocations` is answered 500 | `0` |
| `MLOPS_FAULT_LATENCY_MS` | drills only: milliseconds added to every `/invocations` | `0` |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL_DIR = "/opt/ml/model"
DEFAULT_PORT = 8080
# SageMaker's real-time InvokeEndpoint refuses payloads over 6 MB before they reach a container.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
FAULT_ERROR_PERCENT = "MLOPS_FAULT_ERROR_PERCENT"
FAULT_LATENCY_MS = "MLOPS_FAULT_LATENCY_MS"


class SettingsError(ValueError):
    """One or more variables are wrong; the message names each."""


@dataclass(frozen=True)
class Faults:
    """Injected faults for game days: a documented, explicit setting of the Model, never on by
    default. `error_percent` of the requests each worker answers get a 500 from the server (every
    n-th, not at random, so a drill's error rate is what it asked for)."""

    error_percent: float = 0.0
    latency_ms: float = 0.0

    @property
    def active(self) -> bool:
        return self.error_percent > 0 or self.latency_ms > 0

    def describe(self) -> str:
        return f"{FAULT_ERROR_PERCENT}={self.error_percent:g} {FAULT_LATENCY_MS}={self.latency_ms:g}"


@dataclass(frozen=True)
class ServerSettings:
    model_dir: Path
    program: str
    submit_dir: Path
    bind: str
    workers: int
    timeout_s: int
    faults: Faults

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServerSettings:
        env = os.environ if env is None else env
        problems: list[str] = []

        def number(name: str, default: float, low: float, high: float, whole: bool = False) -> float:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = int(raw) if whole else float(raw)
            except ValueError:
                problems.append(f"{name}={raw!r}: not a {'whole ' if whole else ''}number")
                return default
            if not low <= value <= high:
                problems.append(f"{name}={raw!r}: must be between {low:g} and {high:g}")
                return default
            return value

        model_dir = Path(env.get("SM_MODEL_DIR") or DEFAULT_MODEL_DIR)
        program = env.get("SAGEMAKER_PROGRAM") or "inference.py"
        submit = env.get("SAGEMAKER_SUBMIT_DIRECTORY") or str(model_dir / "code")
        if "://" in submit:
            problems.append(f"SAGEMAKER_SUBMIT_DIRECTORY={submit!r}: must be a folder in the container "
                            "(the train step puts the code in the artifact's code/)")
        if "/" in program or not program.endswith(".py"):
            problems.append(f"SAGEMAKER_PROGRAM={program!r}: must be a .py file name in the submit folder")
        port = int(number("SAGEMAKER_BIND_TO_PORT", DEFAULT_PORT, 1, 65535, whole=True))
        bind = env.get("MLOPS_SERVE_BIND") or f"0.0.0.0:{port}"
        host, _, bind_port = bind.rpartition(":")
        if not host or not bind_port.isdigit():
            problems.append(f"MLOPS_SERVE_BIND={bind!r}: expected HOST:PORT")
        workers = int(number("SAGEMAKER_MODEL_SERVER_WORKERS", float(_cpus()), 1, 256, whole=True))
        timeout = int(number("SAGEMAKER_MODEL_SERVER_TIMEOUT", 60, 1, 3600, whole=True))
        faults = Faults(number(FAULT_ERROR_PERCENT, 0.0, 0, 100),
                        number(FAULT_LATENCY_MS, 0.0, 0, 120_000))
        if problems:
            raise SettingsError("; ".join(problems))
        return cls(model_dir, program, Path(submit), bind, workers, timeout, faults)


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
