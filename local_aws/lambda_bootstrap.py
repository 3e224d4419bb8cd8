"""A local Lambda execution environment's bootstrap (what Lambda's Python runtime does around a
handler), run as `<runtime python> -I -S lambda_bootstrap.py`: nothing of this checkout and no
site-packages are on its path, only what MLOPS_LAMBDA_PATH lists (the function's deployed
package, its layers' `python/` folders, the runtime's bundled SDK). Standard library only, so
that it imports nothing the function did not bring.

It imports the handler named by `_HANDLER` (the cold start), reads invocations as JSON lines on
stdin and answers each with one JSON line on the stdout it was given, before pointing its own
stdout at its log (local_aws/lambda_runtime.py starts it and reads the answers).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
import uuid
from typing import Any

PATH_VARIABLE = "MLOPS_LAMBDA_PATH"


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


def serve() -> int:
    """The execution environment's loop."""
    sys.path[:0] = [p for p in os.environ.get(PATH_VARIABLE, "").split(os.pathsep) if p]
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # what the function prints goes to its log
    # -I ignores PYTHONUNBUFFERED: lines reach the log as they are printed, also from an
    # invocation killed past its Timeout (when they matter most).
    sys.stdout.reconfigure(line_buffering=True)
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
    sys.exit(serve())
