"""StartPipelineExecution runs the pipeline, as SageMaker Pipelines does (moto records an execution
and calls it Succeeded at once, running nothing).

In the local AWS's worker: every execution started through the API (the retrain handler's, a
user's own boto3 call) is `Executing` until the local pipeline runner (local_aws/pipeline_runner.py,
the same runner `mlops pipeline run --env local` uses) has run the definition SageMaker would
run, with the execution's PipelineParameters, then `Succeeded` or `Failed` with the failed step and
its reason as PipelineExecutionFailureReason. Executions run one at a time, in the order they
were started (a queue): two retrains never train concurrently on two cores. A start that repeats
the ClientRequestToken of an earlier one returns that execution, as SageMaker's idempotency does.
Work folders: <state dir>/runs/<execution id>; log: <state dir>/logs/pipelines.log.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local_aws.background import own_record
from local_aws.pipeline_runner import LocalPipelineRunner, step_environment
from local_aws.role_sessions import RoleSessions

log = logging.getLogger("local_aws.pipelines")


@dataclass(frozen=True)
class Execution:
    execution: Any  # moto's FakePipelineExecution, whose status this service moves
    pipeline_name: str
    definition: dict[str, Any]
    parameters: dict[str, str]


class PipelineExecutions:
    def __init__(self, state_dir: Path):
        self.state_dir = state_dir
        self._stop = threading.Event()
        self._queue: queue.Queue[Execution | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="pipeline-executions", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, execution: Any, pipeline_name: str, definition: dict[str, Any],
               parameters: list[dict]) -> None:
        execution.pipeline_execution_status = "Executing"
        self._queue.put(Execution(execution, pipeline_name, definition,
                                  {p["Name"]: p["Value"] for p in parameters or []}))

    def stop(self) -> None:
        """Executions still queued end Stopped (the local AWS stops: nothing will run them); the
        one running finishes its current step's process by itself, bounded by the join."""
        self._stop.set()
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self._finish(item, "Stopped", "the local AWS stopped before this execution ran")
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                self._execute(item)
            except Exception as exc:  # an execution that cannot run fails; the next one still runs
                log.exception("pipeline %s: execution failed to run", item.pipeline_name)
                self._finish(item, "Failed", f"the local pipeline runner failed: {exc}")

    def _execute(self, item: Execution) -> None:
        record = own_record(self.state_dir, self._stop)
        if record is None:
            raise RuntimeError("no server record: the local AWS's address is unknown")
        execution_id = item.execution.arn.rsplit("/", 1)[-1]
        env = record.client_env()
        if any(step.get("Type") in ("Processing", "Training") for step in item.definition.get("Steps", [])):
            env = step_environment(env, self.state_dir)
        logs = self.state_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with (logs / "pipelines.log").open("a") as out:
            def say(line: str) -> None:
                out.write(f"{time.strftime('%H:%M:%S')} {item.pipeline_name} {execution_id} {line}\n")
                out.flush()

            say(f"started, parameters {item.parameters}")
            runner = LocalPipelineRunner(item.definition, record.client("s3"),
                                         self.state_dir / "runs" / execution_id, env, say, item.parameters,
                                         sessions=RoleSessions(lambda: record.client("sts")))
            result = runner.run(execution_id, item.pipeline_name)
            say(f"{result.status}" + (f": {result.failed_step}: {result.reason}" if result.reason else ""))
        reason = f"step {result.failed_step} failed: {result.reason}" if result.status == "Failed" else None
        self._finish(item, result.status, reason)

    @staticmethod
    def _finish(item: Execution, status: str, reason: str | None) -> None:
        from moto.core.utils import utcnow

        item.execution.pipeline_execution_status = status
        item.execution.pipeline_execution_failure_reason = reason[:1300] if reason else None
        item.execution.last_modified_time = utcnow()
