"""Lambda functions run as AWS runs them: each in its own process (its execution environment),
with its own environment variables, initialized once (the cold start) and then invoked one event
at a time; what it prints goes to <state>/logs/<function>.log (its CloudWatch Logs).

The execution environment is local_aws/lambda_bootstrap.py run by the function's runtime
interpreter, on the code Terraform deployed (local_aws/lambda_code.py: the package and layers the
local Lambda hands out, not this checkout). The control plane (LambdaProcesses) starts one per
function and code version, stops it by pid, and kills it when an invocation runs past the
function's Timeout, as Lambda does.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from local_aws import lambda_bootstrap
from local_aws.lambda_code import CodeUnavailable, DeployedCode, Deployment
from local_aws.processes import stop_process
from local_aws.role_sessions import RoleSessions


def function_environment(configuration: dict[str, Any], base_env: dict[str, str],
                         region: str, deployment: Deployment) -> dict[str, str]:
    variables = (configuration.get("Environment") or {}).get("Variables") or {}
    inherited = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TZ")
                 or k.startswith(("OPENBLAS_", "OMP_"))}
    return {**inherited, **base_env, **variables, "AWS_REGION": region, "AWS_DEFAULT_REGION": region,
            "AWS_LAMBDA_FUNCTION_NAME": configuration["FunctionName"],
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(configuration.get("MemorySize") or 128),
            "AWS_LAMBDA_FUNCTION_VERSION": configuration.get("Version", "$LATEST"),
            "_HANDLER": configuration["Handler"], "PYTHONUNBUFFERED": "1",
            "LAMBDA_TASK_ROOT": deployment.task_root,
            lambda_bootstrap.PATH_VARIABLE: os.pathsep.join(deployment.path)}


class LambdaProcess:
    """One function's execution environment."""

    def __init__(self, configuration: dict[str, Any], env: dict[str, str], log_file: Path,
                 deployment: Deployment):
        self.configuration = configuration
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(log_file, "ab") as log:
            if deployment.note:
                log.write(f"[local] {deployment.note}\n".encode())
                log.flush()
            self.proc = subprocess.Popen(
                [deployment.python, *deployment.flags, lambda_bootstrap.__file__],
                cwd=deployment.task_root, env=env,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, start_new_session=True)
        self.lock = threading.Lock()

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        timeout = int(self.configuration.get("Timeout") or 3)
        request = json.dumps({"event": event, "configuration": self.configuration}) + "\n"
        with self.lock:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the execution environment exited ({self.proc.returncode})")
            self.proc.stdin.write(request.encode())
            self.proc.stdin.flush()
            ready, _, _ = select.select([self.proc.stdout], [], [], timeout + 1)
            if not ready:
                self.stop(grace_s=0)
                raise RuntimeError(f"Task timed out after {timeout:.2f} seconds")
            line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the execution environment exited ({self.proc.wait()}); see its log")
        answer = json.loads(line)
        if not answer["ok"]:
            raise RuntimeError(answer["error"])
        return answer["response"] or {}

    def stop(self, grace_s: float = 5.0) -> None:
        stop_process(self.proc, grace_s)
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError, ValueError):
                stream.close()


def folder_deployment(code_dir: Path) -> Deployment:
    """A function whose code is a plain folder (tests): this Python, the folder first."""
    return Deployment(sys.executable, ("-I",), (str(code_dir),), str(code_dir))


class LambdaProcesses:
    """The control plane's Lambda service: an execution environment per function and code.

    `code` fetches each function's deployed package and layers (DeployedCode); `code_dir`
    instead runs every function from one plain folder (tests of the runtime itself)."""

    def __init__(self, base_env: dict[str, str], region: str, log_dir: Path,
                 code: DeployedCode | None = None, code_dir: Path | None = None,
                 sessions: RoleSessions | None = None):
        if (code is None) == (code_dir is None):
            raise ValueError("LambdaProcesses needs either the deployed code or a code folder")
        self.base_env, self.region, self.log_dir = base_env, region, log_dir
        self.code, self.code_dir = code, code_dir
        # Each function calls as a session of its role, named after it, as in AWS (a renewed
        # session is a new environment: the key below changes with the credentials).
        self.sessions = sessions
        self.processes: dict[str, LambdaProcess] = {}
        self.lock = threading.Lock()

    def invoke(self, configuration: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
        """The handler's response; RuntimeError naming the function when it failed or raised."""
        name = configuration["FunctionName"]
        try:
            deployment = self.code.deployment(configuration) if self.code is not None \
                else folder_deployment(self.code_dir)
        except CodeUnavailable as exc:
            raise RuntimeError(str(exc)) from exc
        env = function_environment(configuration, self.base_env, self.region, deployment)
        if self.sessions is not None:
            env.update(self.sessions.credentials(configuration["Role"], name))
        key = f"{name}@{configuration.get('CodeSha256', '')}@{hash(json.dumps(env, sort_keys=True))}"
        with self.lock:
            process = self.processes.get(key)
            if process is None or process.proc.poll() is not None:
                for old_key in [k for k in self.processes if k.startswith(f"{name}@")]:
                    self.processes.pop(old_key).stop()  # a new version replaces the old one
                process = self.processes[key] = LambdaProcess(configuration, env,
                                                              self.log_dir / f"{name}.log", deployment)
        try:
            return process.invoke(event)
        except RuntimeError as exc:
            raise RuntimeError(f"{name}: {exc}") from exc

    def close(self) -> None:
        with self.lock:
            processes, self.processes = list(self.processes.values()), {}
        for process in processes:
            process.stop()
