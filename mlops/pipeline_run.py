"""`mlops pipeline run`: one training pipeline run, locally or in AWS, with progress per step.

Locally the deployed definition is executed by local_aws.pipeline_runner against the moto server, with
MLflow on an embedded SQLite backend whose artifacts go to the local artifacts bucket. In AWS the
pipeline is started in SageMaker and followed step by step until it ends.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from local_aws.pipeline_runner import LocalPipelineRunner, RunResult, s3_split, step_environment
from local_aws.role_sessions import RoleSessions
from mlops.deploy import Deployer, say
from mlops.project import Project
from pipelines.bundle import REPO_ROOT, build_bundle
from stacks.config import Environment
from stacks.naming import Naming, ProjectNames, project_stack_name
from stacks.project_config import CLASSIFICATION_METRICS, REGRESSION_METRICS, ProjectConfig

POLL_SECONDS = 15.0
METRIC_NAMES = (*CLASSIFICATION_METRICS, *REGRESSION_METRICS)


class PipelineRunError(RuntimeError):
    pass


def _summary(result: RunResult, read_json: Callable[[str], Any]) -> dict[str, Any]:
    """The run's outcome from the reports its steps wrote (the evaluation is the source of truth
    for metrics; MLflow and the model package were both written from it)."""
    steps = result.context.steps if result.context else {}

    def output(step: str, name: str, file: str) -> Any:
        try:
            outputs = steps[step]["ProcessingOutputConfig"]["Outputs"]
            uri = next(o["S3Output"]["S3Uri"] for o in outputs if o["OutputName"] == name)
        except (KeyError, StopIteration):
            return None
        return read_json(f"{uri.rstrip('/')}/{file}")

    evaluation = output("Evaluate", "evaluation", "evaluation.json") or {}
    tracking = output("Evaluate", "evaluation", "tracking.json") or {}
    registration = output("RegisterModel", "registration", "registration.json") or {}
    return {
        "pipeline_execution_id": result.execution_id,
        "status": result.status,
        "model_package_arn": registration.get("model_package_arn"),
        "metrics": evaluation.get("metrics", {}),
        "mlflow_run_id": tracking.get("mlflow_run_id"),
        "failed_step": result.failed_step,
        "reason": result.reason,
        "steps": [{"name": s.name, "type": s.type, "status": s.status, "seconds": round(s.seconds, 2)}
                  for s in result.steps],
    }


class PipelineRun:
    def __init__(self, checkout: Project, env_name: str, project_name: str):
        self.checkout = checkout
        self.env: Environment = checkout.environments([env_name])[env_name]
        self.config: ProjectConfig = checkout.project(project_name, env_name)
        self.names = ProjectNames(Naming.of(self.env), project_name)

    def run(self, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
        if self.env.is_local:
            return self._run_local(parameters or {})
        return self._run_in_aws(parameters or {})

    # -- local --------------------------------------------------------------------------------

    def _local_clients(self):
        deployer = Deployer(self.checkout)
        status = deployer.local_status()
        deployed = {s["name"] for s in status["stacks"]}
        stack = project_stack_name(self.config.name, self.env.name)
        if not status["running"] or stack not in deployed:
            say(f"==> {stack} is not deployed on the local AWS: deploying the {self.env.name} environment")
            deployer.deploy(self.env.name)
            status = deployer.local_status()
        server = deployer.local.running()
        if server is None:
            raise PipelineRunError("the local AWS stopped while the environment was being deployed")
        sagemaker = server.client("sagemaker")
        definition = self._definition(sagemaker)
        if not self._runs_current_code(definition):
            say("==> the deployed pipeline runs older step code or settings: redeploying")
            deployer.deploy(self.env.name)
            definition = self._definition(sagemaker)
        return server, definition

    def _definition(self, sagemaker: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        try:
            text = sagemaker.describe_pipeline(PipelineName=self.names.pipeline)["PipelineDefinition"]
        except ClientError as exc:
            raise PipelineRunError(f"pipeline {self.names.pipeline} is not in the local AWS: {exc}") from exc
        return json.loads(text)

    def _runs_current_code(self, definition: dict[str, Any]) -> bool:
        schema = REPO_ROOT / self.config.dataset.schema_file
        bundle = build_bundle(self.config.model_dump(mode="json"), schema)
        return bundle.prefix(self.config.name) in json.dumps(definition)

    def _run_local(self, parameters: dict[str, Any]) -> dict[str, Any]:
        server, definition = self._local_clients()
        s3 = server.client("s3")
        execution_id = secrets.token_hex(6)  # SageMaker's ids are 12 lowercase characters too
        work_dir = self.checkout.local_dir / "runs" / execution_id
        env = step_environment(server.client_env(), self.checkout.local_dir)
        say(f"==> running {self.names.pipeline} locally (execution {execution_id}, work dir {work_dir})")
        runner = LocalPipelineRunner(definition, s3, work_dir, env, say, parameters,
                                     sessions=RoleSessions(lambda: server.client("sts")))
        started = time.monotonic()
        result = runner.run(execution_id, self.names.pipeline)
        say(f"==> {result.status} in {time.monotonic() - started:.1f} s")

        def read_json(uri: str) -> Any:
            bucket, key = s3_split(uri)
            try:
                return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            except s3.exceptions.NoSuchKey:
                return None

        summary = _summary(result, read_json)
        summary["mlflow_tracking_uri"] = env["MLFLOW_TRACKING_URI"]
        summary["work_dir"] = str(work_dir)
        return summary

    # -- AWS ----------------------------------------------------------------------------------

    def _run_in_aws(self, parameters: dict[str, Any]) -> dict[str, Any]:
        import boto3

        sagemaker = boto3.client("sagemaker", region_name=self.env.region)
        response = sagemaker.start_pipeline_execution(
            PipelineName=self.names.pipeline,
            PipelineExecutionDisplayName=f"cli-{time.strftime('%Y%m%d-%H%M%S')}",
            PipelineParameters=[{"Name": k, "Value": str(v)} for k, v in parameters.items()],
        )
        arn = response["PipelineExecutionArn"]
        say(f"==> started {arn}")
        seen: dict[str, str] = {}
        while True:
            steps = sagemaker.list_pipeline_execution_steps(PipelineExecutionArn=arn,
                                                            SortOrder="Ascending")["PipelineExecutionSteps"]
            for step in steps:
                if seen.get(step["StepName"]) != step["StepStatus"]:
                    seen[step["StepName"]] = step["StepStatus"]
                    reason = f": {step['FailureReason']}" if step.get("FailureReason") else ""
                    say(f"    {step['StepName']}: {step['StepStatus']}{reason}")
            status = sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)
            if status["PipelineExecutionStatus"] not in ("Executing", "Stopping"):
                break
            time.sleep(POLL_SECONDS)
        failed = next((s for s in steps if s["StepStatus"] == "Failed"), None)
        return {
            "pipeline_execution_id": arn.rsplit("/", 1)[-1],
            "pipeline_execution_arn": arn,
            "status": "Succeeded" if status["PipelineExecutionStatus"] == "Succeeded" else "Failed",
            "failed_step": failed["StepName"] if failed else None,
            "reason": (failed or {}).get("FailureReason") or status.get("FailureReason"),
            **self._aws_outcome(sagemaker, arn),
        }

    def _aws_outcome(self, sagemaker: Any, arn: str) -> dict[str, Any]:
        """The registered package (tagged with this execution's id) and its metrics."""
        execution_id = arn.rsplit("/", 1)[-1]
        packages = sagemaker.list_model_packages(ModelPackageGroupName=self.names.model_package_group,
                                                 SortBy="CreationTime", SortOrder="Descending",
                                                 MaxResults=20)["ModelPackageSummaryList"]
        for summary in packages:
            package = sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
            meta = package.get("CustomerMetadataProperties", {})
            if meta.get("pipeline_run_id") == execution_id:
                metrics = {k: float(v) for k, v in meta.items() if k in METRIC_NAMES}
                return {"model_package_arn": summary["ModelPackageArn"], "metrics": metrics,
                        "mlflow_run_id": meta.get("mlflow_run_id")}
        return {"model_package_arn": None, "metrics": {}, "mlflow_run_id": None}


def parse_parameters(items: list[str]) -> dict[str, Any]:
    """`--parameter Name=value` pairs; numbers become numbers (Float pipeline parameters)."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--parameter {item!r}: expected Name=value")
        try:
            out[name] = float(value) if any(c.isdigit() for c in value) and "/" not in value else value
        except ValueError:
            out[name] = value
    return out
