"""Lambda functions run as AWS runs them: each in its own process (its execution environment),
with its own environment variables, initialized once (the cold start) and then invoked one event
at a time; what it prints goes to <state>/logs/<function>.log (its CloudWatch Logs).

`python -m local_aws.lambda_runtime` is the execution environment: it imports the handler named by
the function's Handler from PYTHONPATH (this checkout), reads invocations as JSON lines on stdin
and answers each with one JSON line on the stdout it was given, before pointing its own stdout at
the log. The control plane (LambdaProcesses) starts one per function and code version, stops it
by pid, and kills it when an invocation runs past the function's Timeout, as Lambda does.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import select
import subprocess
import sys
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

from local_aws.processes import stop_process
from local_aws.role_sessions import RoleSessions

ROOT = Path(__file__).resolve().parents[1]


class LambdaContext:
    """What the Lambda runtime passes as `context`."""

    def __init__(self, configuration: dict[str, Any]):
        self.function_name = configuration["FunctionName"]
        self.invoked_function_arn = configuration["FunctionArn"]
        self.memory_limit_in_mb = int(configuration.get("MemorySize") or 128)
        self.function_version = configuration.get("Version", "$LATEST")
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = f"local/{self.aws_request_id}"
        self._deadline = time.monotonic() + int(configuration.get("Timeout") or 3)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def function_environment(configuration: dict[str, Any], base_env: dict[str, str],
                         region: str, code_dir: Path = ROOT) -> dict[str, str]:
    variables = (configuration.get("Environment") or {}).get("Variables") or {}
    inherited = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TZ")
                 or k.startswith(("OPENBLAS_", "OMP_"))}
    return {**inherited, **base_env, **variables, "AWS_REGION": region, "AWS_DEFAULT_REGION": region,
            "AWS_LAMBDA_FUNCTION_NAME": configuration["FunctionName"],
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(configuration.get("MemorySize") or 128),
            "AWS_LAMBDA_FUNCTION_VERSION": configuration.get("Version", "$LATEST"),
            "_HANDLER": configuration["Handler"], "PYTHONUNBUFFERED": "1",
            # The function's code first (LAMBDA_TASK_ROOT in AWS), then this runtime's module.
            "LAMBDA_TASK_ROOT": str(code_dir),
            "PYTHONPATH": os.pathsep.join(dict.fromkeys([str(code_dir), str(ROOT)]))}


class LambdaProcess:
    """One function's execution environment."""

    def __init__(self, configuration: dict[str, Any], env: dict[str, str], log_file: Path):
        self.configuration = configuration
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(log_file, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "local_aws.lambda_runtime"], cwd=ROOT, env=env,
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


class LambdaProcesses:
    """The control plane's Lambda service: an execution environment per function and code."""

    def __init__(self, base_env: dict[str, str], region: str, log_dir: Path, code_dir: Path = ROOT,
                 sessions: RoleSessions | None = None):
        self.base_env, self.region, self.log_dir, self.code_dir = base_env, region, log_dir, code_dir
        # Each function calls as a session of its role, named after it, as in AWS (a renewed
        # session is a new environment: the key below changes with the credentials).
        self.sessions = sessions
        self.processes: dict[str, LambdaProcess] = {}
        self.lock = threading.Lock()

    def invoke(self, configuration: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
        """The handler's response; RuntimeError naming the function when it failed or raised."""
        name = configuration["FunctionName"]
        env = function_environment(configuration, self.base_env, self.region, self.code_dir)
        if self.sessions is not None:
            env.update(self.sessions.credentials(configuration["Role"], name))
        key = f"{name}@{configuration.get('CodeSha256', '')}@{hash(json.dumps(env, sort_keys=True))}"
        with self.lock:
            process = self.processes.get(key)
            if process is None or process.proc.poll() is not None:
                for old_key in [k for k in self.processes if k.startswith(f"{name}@")]:
                    self.processes.pop(old_key).stop()  # a new version replaces the old one
                process = self.processes[key] = LambdaProcess(configuration, env,
                                                              self.log_dir / f"{name}.log")
        try:
            return process.invoke(event)
        except RuntimeError as exc:
            raise RuntimeError(f"{name}: {exc}") from exc

    def close(self) -> None:
        with self.lock:
            processes, self.processes = list(self.processes.values()), {}
        for process in processes:
            process.stop()


def _serve() -> int:
    """The execution environment's loop (this module run as a program)."""
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # what the function prints goes to its log
    module_name, _, attribute = os.environ["_HANDLER"].rpartition(".")
    handler, init_error = None, None
    try:
        handler = getattr(importlib.import_module(module_name), attribute)
    except Exception as exc:  # a failed cold start fails every invocation, as in AWS
        init_error = f"init failed: {type(exc).__name__}: {exc}"
        traceback.print_exc()
    for line in sys.stdin:
        request = json.loads(line)
        if handler is None:
            answer = {"ok": False, "error": init_error}
        else:
            try:
                response = handler(request["event"], LambdaContext(request["configuration"]))
                answer = {"ok": True, "response": response}
            except Exception as exc:
                traceback.print_exc()
                answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.flush()
        protocol.write(json.dumps(answer, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(_serve())
