"""Runs a SageMaker pipeline definition on this machine, against the local AWS.

moto stores a pipeline but runs no job (it has no containers), so the local environment executes
the deployed definition itself: the same JSON SageMaker would run, step by step, with each
Processing or Training job's container replaced by a subprocess of this Python running the step
script. Inputs are downloaded from and outputs uploaded to the (local) S3 exactly where the job
would put them, under a sandbox that stands in for the container's /opt/ml. Only the local
environment uses this module.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local_aws import api_constraints
from local_aws.pipeline_expressions import RunContext, evaluate_condition, references, resolve
from local_aws.role_sessions import SAGEMAKER_SESSION, RoleSessions

CONTAINER_ROOT = "/opt/ml"
LOG_TAIL_LINES = 15


class StepFailed(RuntimeError):
    def __init__(self, step: str, reason: str):
        self.step, self.reason = step, reason
        super().__init__(f"step {step} failed: {reason}")


@dataclass
class StepResult:
    name: str
    type: str
    status: str  # Succeeded | Failed | Skipped (the other branch of a condition)
    seconds: float = 0.0
    detail: str = ""


@dataclass
class RunResult:
    execution_id: str
    status: str  # Succeeded | Failed
    steps: list[StepResult] = field(default_factory=list)
    failed_step: str | None = None
    reason: str | None = None
    context: RunContext | None = None


def s3_split(uri: str) -> tuple[str, str]:
    match = re.fullmatch(r"s3://([^/]+)/?(.*)", uri)
    if match is None:
        raise ValueError(f"not an s3:// URI: {uri!r}")
    return match.group(1), match.group(2)


class LocalPipelineRunner:
    """Executes one run of a pipeline definition.

    s3: a boto3 S3 client for the local AWS. env: environment for the step processes (endpoint,
    credentials, MLflow settings). progress: called with one line per event, for people."""

    def __init__(
        self,
        definition: dict[str, Any],
        s3: Any,
        work_dir: Path,
        env: dict[str, str],
        progress: Callable[[str], None],
        parameters: dict[str, Any] | None = None,
        sessions: RoleSessions | None = None,
    ):
        self.definition, self.s3, self.env, self.say = definition, s3, env, progress
        # Each job calls as a session of its RoleArn, as in SageMaker (what it registers is
        # recorded as the pipeline role's: lambdas/shared/control/provenance.py).
        self.sessions = sessions
        self.work_dir = work_dir
        self.steps = {s["Name"]: s for s in definition["Steps"]}
        self.overrides = parameters or {}

    # -- the run ------------------------------------------------------------------------------

    def run(self, execution_id: str, pipeline_name: str) -> RunResult:
        ctx = RunContext(
            parameters=self._parameters(),
            execution={"PipelineExecutionId": execution_id, "PipelineName": pipeline_name,
                       "PipelineExecutionArn": f"local:{pipeline_name}/{execution_id}",
                       "StartDateTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
            read_json=self._read_json,
        )
        result = RunResult(execution_id, "Succeeded", context=ctx)
        order = self._order(list(self.steps))
        total = len(order)
        for index, name in enumerate(order, 1):
            try:
                self._run_step(self.steps[name], ctx, result, f"[{index}/{total}]")
            except StepFailed as failure:
                result.status, result.failed_step, result.reason = "Failed", failure.step, failure.reason
                break
        return result

    def _parameters(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        types: dict[str, str] = {}
        for p in self.definition.get("Parameters", []):
            values[p["Name"]], types[p["Name"]] = p.get("DefaultValue"), p.get("Type", "String")
        unknown = sorted(set(self.overrides) - set(values))
        if unknown:
            raise ValueError(f"unknown pipeline parameter(s) {unknown}; known: {sorted(values)}")
        for name, value in self.overrides.items():
            # StartPipelineExecution sends every value as text; the definition says what it is.
            cast = {"Float": float, "Integer": int}.get(types[name])
            try:
                values[name] = cast(value) if cast and isinstance(value, str) else value
            except ValueError:
                raise ValueError(f"pipeline parameter {name}: {value!r} is not a {types[name]}") from None
        return values

    def _order(self, names: list[str]) -> list[str]:
        """Dependency order (explicit DependsOn plus the steps each step reads from)."""
        deps = {n: (set(self.steps[n].get("DependsOn", [])) | references(self.steps[n].get("Arguments")))
                & set(names) for n in names}
        ordered: list[str] = []
        while deps:
            ready = [n for n in names if n in deps and not deps[n] - set(ordered)]
            if not ready:
                raise ValueError(f"the pipeline's steps depend on each other in a cycle: {sorted(deps)}")
            for n in ready:
                ordered.append(n)
                del deps[n]
        return ordered

    def _run_step(self, step: dict, ctx: RunContext, result: RunResult, label: str) -> None:
        name, kind = step["Name"], step["Type"]
        started = time.monotonic()
        self.say(f"{label} {name} ({kind}) ...")
        try:
            if kind == "Processing":
                detail = self._processing(step, ctx)
            elif kind == "Training":
                detail = self._training(step, ctx)
            elif kind == "Condition":
                detail = self._condition(step, ctx, result, label)
            elif kind == "Fail":
                message = resolve(step["Arguments"].get("ErrorMessage", ""), ctx, name)
                raise StepFailed(name, str(message))
            else:
                raise StepFailed(name, f"step type {kind} cannot run locally")
        except StepFailed as failure:
            seconds = time.monotonic() - started
            result.steps.append(StepResult(name, kind, "Failed", seconds, failure.reason))
            self.say(f"{label} {name}: FAILED after {seconds:.1f} s: {failure.reason}")
            raise
        except Exception as exc:  # anything else is still this step's failure, named as such
            seconds = time.monotonic() - started
            reason = f"{type(exc).__name__}: {exc}"
            result.steps.append(StepResult(name, kind, "Failed", seconds, reason))
            self.say(f"{label} {name}: FAILED after {seconds:.1f} s: {reason}")
            raise StepFailed(name, reason) from exc
        seconds = time.monotonic() - started
        result.steps.append(StepResult(name, kind, "Succeeded", seconds, detail))
        self.say(f"{label} {name}: ok in {seconds:.1f} s{(' - ' + detail) if detail else ''}")

    def _condition(self, step: dict, ctx: RunContext, result: RunResult, label: str) -> str:
        args = step["Arguments"]
        holds = all(evaluate_condition(c, ctx, step["Name"]) for c in args["Conditions"])
        chosen, skipped = ("IfSteps", "ElseSteps") if holds else ("ElseSteps", "IfSteps")
        ctx.steps[step["Name"]] = {"Outcome": holds}
        for other in args.get(skipped, []):
            result.steps.append(StepResult(other["Name"], other["Type"], "Skipped"))
        for sub in args.get(chosen, []):
            self.steps[sub["Name"]] = sub
            self._run_step(sub, ctx, result, f"{label}.{'if' if holds else 'else'}")
        return f"conditions {'hold' if holds else 'do not hold'}"

    # -- jobs ---------------------------------------------------------------------------------

    def _sandbox(self, name: str) -> Path:
        sandbox = self.work_dir / name
        shutil.rmtree(sandbox, ignore_errors=True)
        (sandbox / "opt/ml/output").mkdir(parents=True)
        return sandbox

    def _local(self, sandbox: Path, container_path: str) -> Path:
        return sandbox / container_path.lstrip("/")

    def _refuse_as_sagemaker_would(self, name: str, operation: str, request: dict[str, Any]) -> None:
        """The job request SageMaker would make for this step, checked as its API checks it: in
        AWS a request it refuses fails the step with the ValidationException."""
        refused = api_constraints.refusal("sagemaker", operation, request)
        if refused:
            raise StepFailed(name, f"{operation} would be refused: {refused}")

    def _processing(self, step: dict, ctx: RunContext) -> str:
        """One Processing job: InstanceCount instances, each a process of its own in a sandbox of
        its own, started together and waited for, as SageMaker runs them (they do not wait for
        each other). Each sees /opt/ml/config/resourceconfig.json ({"current_host": "algo-<i>",
        "hosts": [...]}), every FullyReplicated input whole and its share of a ShardedByS3Key
        input; every instance's output folder is uploaded to the output's S3 URI."""
        name = step["Name"]
        request = resolve(step["Arguments"], ctx, name)
        self._refuse_as_sagemaker_would(name, "CreateProcessingJob",
                                        {**request, "ProcessingJobName": self._job_name(ctx, name)})
        count = int(request["ProcessingResources"]["ClusterConfig"].get("InstanceCount", 1))
        hosts = [f"algo-{i}" for i in range(1, count + 1)]
        sandboxes = [self._sandbox(name if count == 1 else f"{name}/{host}") for host in hosts]
        for item in request.get("ProcessingInputs", []):
            s3_input = item["S3Input"]
            objects = self._input_objects(s3_input)
            sharded = s3_input.get("S3DataDistributionType") == "ShardedByS3Key"
            for index, sandbox in enumerate(sandboxes):
                # ShardedByS3Key: "each instance gets approximately 1/n of the number of S3
                # objects"; here object i (by key) goes to instance i mod n.
                share = objects[index::count] if sharded else objects
                local = self._local(sandbox, s3_input["LocalPath"])
                local.mkdir(parents=True, exist_ok=True)
                for bucket, key, relative in share:
                    target = local / relative
                    target.parent.mkdir(parents=True, exist_ok=True)
                    self.s3.download_file(bucket, key, str(target))
        outputs = request.get("ProcessingOutputConfig", {}).get("Outputs", [])
        for host, sandbox in zip(hosts, sandboxes, strict=True):
            for item in outputs:
                self._local(sandbox, item["S3Output"]["LocalPath"]).mkdir(parents=True, exist_ok=True)
            config = sandbox / "opt/ml/config"
            config.mkdir(parents=True, exist_ok=True)
            (config / "resourceconfig.json").write_text(json.dumps({"current_host": host, "hosts": hosts}))
        app = request["AppSpecification"]
        command = [*app.get("ContainerEntrypoint", []), *app.get("ContainerArguments", [])]
        self._execute_all(name, sandboxes, command, request.get("Environment", {}), request.get("RoleArn"))
        for sandbox in sandboxes:
            for item in outputs:
                self._upload(self._local(sandbox, item["S3Output"]["LocalPath"]), item["S3Output"]["S3Uri"])
        ctx.steps[name] = {
            "ProcessingJobName": self._job_name(ctx, name),
            "ProcessingJobStatus": "Completed",
            "ProcessingOutputConfig": {"Outputs": outputs},
        }
        ctx.property_files[name] = {
            pf["PropertyFileName"]: (pf["OutputName"], pf["FilePath"])
            for pf in step.get("PropertyFiles", [])
        }
        return f"{count} instances" if count > 1 else ""

    def _training(self, step: dict, ctx: RunContext) -> str:
        name = step["Name"]
        request = resolve(step["Arguments"], ctx, name)
        self._refuse_as_sagemaker_would(name, "CreateTrainingJob",
                                        {**request, "TrainingJobName": self._job_name(ctx, name)})
        sandbox = self._sandbox(name)
        channels = {}
        for channel in request.get("InputDataConfig", []):
            local = sandbox / "opt/ml/input/data" / channel["ChannelName"]
            self._download(channel["DataSource"]["S3DataSource"]["S3Uri"], local)
            channels[channel["ChannelName"]] = local
        hyperparameters = dict(request.get("HyperParameters", {}))
        config_dir = sandbox / "opt/ml/input/config"
        config_dir.mkdir(parents=True, exist_ok=True)
        (config_dir / "hyperparameters.json").write_text(json.dumps(hyperparameters))
        # Script mode, as the SageMaker training toolkit does it: fetch the source tarball, run the
        # program with the hyperparameters as --key value arguments and SM_* variables.
        code_dir = sandbox / "opt/ml/code"
        self._extract(hyperparameters["sagemaker_submit_directory"], code_dir)
        program = code_dir / hyperparameters["sagemaker_program"]
        model_dir = sandbox / "opt/ml/model"
        model_dir.mkdir(parents=True)
        user_hps = {k: v for k, v in hyperparameters.items() if not k.startswith("sagemaker_")}
        env = {**request.get("Environment", {}),
               "SM_MODEL_DIR": str(model_dir),
               "SM_OUTPUT_DATA_DIR": str(sandbox / "opt/ml/output/data"),
               "SM_INPUT_CONFIG_DIR": str(config_dir),
               "SM_HPS": json.dumps(user_hps),
               "SM_CHANNELS": json.dumps(sorted(channels)),
               **{f"SM_CHANNEL_{c.upper()}": str(path) for c, path in channels.items()}}
        args = [a for k, v in sorted(user_hps.items()) for a in (f"--{k}", str(v))]
        self._execute(name, sandbox, ["python3", str(program), *args], env, request.get("RoleArn"))
        job = self._job_name(ctx, name)
        model_uri = f"{request['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{job}/output/model.tar.gz"
        bucket, key = s3_split(model_uri)
        self.s3.put_object(Bucket=bucket, Key=key, Body=_tar_gz(model_dir))
        ctx.steps[name] = {"TrainingJobName": job, "TrainingJobStatus": "Completed",
                           "ModelArtifacts": {"S3ModelArtifacts": model_uri}}
        return f"model {model_uri}"

    def _job_name(self, ctx: RunContext, step: str) -> str:
        # SageMaker names a step's job itself, always within the job name pattern; so does this
        # (a step name may hold "_", and a cut may end on "-").
        raw = f"pipelines-{ctx.execution['PipelineExecutionId']}-{step}".lower()
        return re.sub(r"[^a-z0-9-]+", "-", raw)[:63].rstrip("-")

    def _execute(self, name: str, sandbox: Path, command: list[str], env: dict[str, str],
                 role_arn: str | None = None) -> None:
        self._execute_all(name, [sandbox], command, env, role_arn)

    def _execute_all(self, name: str, sandboxes: list[Path], command: list[str], env: dict[str, str],
                     role_arn: str | None = None) -> None:
        """The job's command in each sandbox, all at once; the job fails when any instance does."""
        if not command:
            raise StepFailed(name, "the job has no command")
        process_env = {**os.environ, **self.env, **{k: str(v) for k, v in env.items()},
                       "PYTHONUNBUFFERED": "1"}
        if self.sessions is not None and role_arn:
            process_env.update(self.sessions.credentials(role_arn, SAGEMAKER_SESSION))
        running = []
        with contextlib.ExitStack() as logs:
            for sandbox in sandboxes:
                argv = [sys.executable if command[0] in ("python3", "python") else command[0]]
                argv += [self._rewrite(sandbox, a) for a in command[1:]]
                log_path = sandbox / "job.log"
                log = logs.enter_context(log_path.open("w"))
                running.append((sandbox, log_path, subprocess.Popen(
                    argv, cwd=sandbox, stdout=log, stderr=subprocess.STDOUT,
                    env={**process_env, "SM_OUTPUT_DIR": str(sandbox / "opt/ml/output")})))
            codes = [(sandbox, log_path, process.wait()) for sandbox, log_path, process in running]
        failed = [(sandbox, log_path, code) for sandbox, log_path, code in codes if code != 0]
        if failed:
            sandbox, log_path, code = failed[0]
            where = f"{sandbox.name}: " if len(sandboxes) > 1 else ""
            raise StepFailed(name, where + self._failure_reason(sandbox, log_path, code))

    def _rewrite(self, sandbox: Path, arg: str) -> str:
        """Container paths (/opt/ml/...) become the sandbox's; everything else stays as is."""
        if arg == CONTAINER_ROOT or arg.startswith(CONTAINER_ROOT + "/"):
            return str(sandbox / arg.lstrip("/"))
        return arg

    def _failure_reason(self, sandbox: Path, log_path: Path, code: int) -> str:
        # SageMaker's convention: the job's reason is what it wrote to /opt/ml/output/failure.
        failure = sandbox / "opt/ml/output/failure"
        if failure.is_file() and failure.read_text().strip():
            return failure.read_text().strip()
        lines = log_path.read_text(errors="replace").strip().splitlines()[-LOG_TAIL_LINES:]
        return f"exit code {code}; last lines of {log_path}:\n" + "\n".join(lines)

    # -- S3 -----------------------------------------------------------------------------------

    def _objects(self, uri: str) -> list[str]:
        bucket, prefix = s3_split(uri)
        keys: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(o["Key"] for o in page.get("Contents", []))
        if not keys:
            raise FileNotFoundError(f"nothing in S3 at {uri}")
        return keys

    def _input_objects(self, s3_input: dict[str, Any]) -> list[tuple[str, str, str]]:
        """(bucket, key, path below LocalPath) of every object an S3 input names, by key.

        S3Prefix: every object whose key starts with the prefix, at its path below the prefix (an
        object named exactly by the prefix keeps its file name). ManifestFile: the manifest's
        [{"prefix": "s3://bucket/p/"}, "suffix", ...], each object at its suffix."""
        uri = s3_input["S3Uri"]
        if s3_input.get("S3DataType", "S3Prefix") == "ManifestFile":
            manifest = self._read_json(uri)
            if (not isinstance(manifest, list) or len(manifest) < 2 or not isinstance(manifest[0], dict)
                    or "prefix" not in manifest[0]):
                raise ValueError(f"{uri}: a manifest is [{{'prefix': 's3://...'}}, 'suffix', ...]")
            bucket, prefix = s3_split(manifest[0]["prefix"])
            return sorted((bucket, prefix + str(suffix), str(suffix)) for suffix in manifest[1:])
        bucket, prefix = s3_split(uri)
        objects = []
        for key in self._objects(uri):
            if key.endswith("/"):
                continue
            relative = key.rsplit("/", 1)[-1] if key == prefix else key[len(prefix):].lstrip("/")
            objects.append((bucket, key, relative))
        return sorted(objects)

    def _download(self, uri: str, local: Path) -> None:
        """An S3Prefix input, whole, into `local`."""
        local.mkdir(parents=True, exist_ok=True)
        for bucket, key, relative in self._input_objects({"S3Uri": uri}):
            target = local / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            self.s3.download_file(bucket, key, str(target))

    def _upload(self, local: Path, uri: str) -> None:
        bucket, prefix = s3_split(uri)
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            key = f"{prefix.rstrip('/')}/{path.relative_to(local).as_posix()}"
            self.s3.upload_file(str(path), bucket, key)

    def _extract(self, uri: str, target: Path) -> None:
        bucket, key = s3_split(uri)
        body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
            tar.extractall(target, filter="data")

    def _read_json(self, uri: str) -> Any:
        bucket, key = s3_split(uri)
        with contextlib.closing(self.s3.get_object(Bucket=bucket, Key=key)["Body"]) as body:
            return json.loads(body.read())


def _tar_gz(folder: Path) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=path.relative_to(folder).as_posix(), recursive=False)
    return out.getvalue()


def step_environment(client_env: dict[str, str], local_dir: Path) -> dict[str, str]:
    """What the step processes of a local run get: the local AWS, and MLflow with an embedded
    SQLite backend (the definition's MLFLOW_ARTIFACT_LOCATION puts the artifacts in the local
    artifacts bucket, as in AWS)."""
    mlflow_dir = local_dir / "mlflow"
    mlflow_dir.mkdir(parents=True, exist_ok=True)
    return {
        **client_env,
        "MLFLOW_TRACKING_URI": f"sqlite:///{mlflow_dir / 'mlflow.db'}",
        "MLFLOW_S3_ENDPOINT_URL": client_env["AWS_ENDPOINT_URL"],
        # MLflow 3 reports usage to its maintainers by default; nothing leaves this machine.
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
    }
