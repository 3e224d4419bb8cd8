"""The training pipeline as a SageMaker pipeline definition, built with the sagemaker SDK (v3).

    DatasetVersion -> ValidateData -> Preprocess -> Train -> Evaluate -> CheckGate -+-> RegisterModel
                                                                                    +-> GateFailed

DatasetVersion writes the run's data as a content-addressed version (the training data, plus with
`ProductionDataSince` the production records labelled since then) and every later step reads
that version: its URI and hash are part of the cached steps' arguments and output locations, so
the step cache can never hand a new dataset an old split.

The definition is built offline at synth time: no AWS call, no upload (Terraform uploads the step
bundle, see pipelines/bundle.py), no network traffic at all (a unit test holds it to that; the
SDK's telemetry only reports from calls that talk to SageMaker, which synth never makes).
Every step runs a script from pipelines/steps/, the same programs the local runner executes.

The drift batch pipeline (when `drift.batch.enabled`) lists the window's capture files, counts them
on `drift.batch.instance_count` instances (ShardedByS3Key over a manifest) and merges the counts
exactly into the drift Lambda's report and metrics (pipelines/steps/drift_batch.py).

The explainability pipeline is one Processing step (pipelines/steps/explainability.py) that an
EventBridge schedule starts: the served model's feature attributions on the window's captured
traffic against its reference's. It runs in the training image, the one with scikit-learn, with
the same bundle, role and key as the training pipeline.

Pipeline parameters let a data scientist in Studio point a run at other data, other instance
types or other thresholds without a deploy; their defaults come from the project configuration.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.offline_sdk import offline_sdk

# The SDK creates boto3 clients while it is imported (sagemaker.ai_registry).
with offline_sdk():
    import boto3
    from sagemaker.core.processing import Processor
    from sagemaker.core.shapes import (
        ProcessingInput,
        ProcessingOutput,
        ProcessingS3Input,
        ProcessingS3Output,
    )
    from sagemaker.core.workflow.conditions import (
        ConditionGreaterThanOrEqualTo,
        ConditionLessThanOrEqualTo,
    )
    from sagemaker.core.workflow.execution_variables import ExecutionVariables
    from sagemaker.core.workflow.functions import Join, JsonGet
    from sagemaker.core.workflow.parameters import ParameterFloat, ParameterInteger, ParameterString
    from sagemaker.core.workflow.pipeline_context import PipelineSession
    from sagemaker.core.workflow.properties import Properties, PropertyFile
    from sagemaker.mlops.workflow.condition_step import ConditionStep
    from sagemaker.mlops.workflow.fail_step import FailStep
    from sagemaker.mlops.workflow.pipeline import Pipeline
    from sagemaker.mlops.workflow.retry import (
        SageMakerJobExceptionTypeEnum,
        SageMakerJobStepRetryPolicy,
        StepExceptionTypeEnum,
        StepRetryPolicy,
    )
    from sagemaker.mlops.workflow.steps import (
        CacheConfig,
        ConfigurableRetryStep,
        ProcessingStep,
        StepTypeEnum,
    )

from pipelines.bundle import CODE, CONFIG, SCHEMA, SOURCEDIR
from stacks.project_config import ProjectConfig

MANIFEST = "manifest.json"  # ListDriftWindow's S3 manifest (lambdas/shared/drift/batch.py writes it)

EXPLAINABILITY_NAMESPACE = "MLOps/Explainability"
STEP_NAMES = ("DatasetVersion", "ValidateData", "Preprocess", "Train", "Evaluate", "CheckGate",
              "RegisterModel", "GateFailed")
CONTAINER = "/opt/ml/processing"
# Data validation and the split only change when the data, the schema or the code does (all part
# of the step arguments, which is what the cache key covers).
CACHE = CacheConfig(enable_caching=True, expire_after="P30D")
# Throttling and capacity shortages are transient: retry with backoff instead of failing a run.
JOB_RETRY = SageMakerJobStepRetryPolicy(
    exception_types=[SageMakerJobExceptionTypeEnum.CAPACITY_ERROR,
                     SageMakerJobExceptionTypeEnum.INTERNAL_ERROR,
                     SageMakerJobExceptionTypeEnum.RESOURCE_LIMIT],
    interval_seconds=30, backoff_rate=2.0, max_attempts=4,
)
SERVICE_RETRY = StepRetryPolicy(
    exception_types=[StepExceptionTypeEnum.SERVICE_FAULT, StepExceptionTypeEnum.THROTTLING],
    interval_seconds=10, backoff_rate=2.0, max_attempts=5,
)
RETRIES = [SERVICE_RETRY, JOB_RETRY]


@dataclass(frozen=True)
class PipelineTarget:
    """Where the pipeline runs: names from the platform and project stacks."""

    pipeline_name: str
    region: str
    role_arn: str
    artifacts_bucket: str
    bundle_prefix: str  # key prefix of the step bundle in the artifacts bucket
    default_data_uri: str
    model_package_group: str
    image_uri: str  # processing and training jobs
    inference_image_uri: str  # what the registered model package serves with
    kms_key_arn: str
    processing_instance_type: str
    training_instance_type: str
    git_commit: str = "unknown"
    mlflow_tracking_uri: str | None = None  # in AWS: the managed MLflow tracking server's ARN
    # The endpoint's data capture (s3://<capture>/<project>/<endpoint>/) and its ground truth:
    # where DatasetVersion finds the labelled production records.
    capture_uri: str = ""
    ground_truth_uri: str = ""
    # s3://<datasets bucket>/<project>/: the project's data. With default_data_uri and the
    # project's dataset versions, the only InputDataUri a run trains on (DatasetVersion refuses
    # any other: a data scientist sets the parameter, the pipeline's role reads it).
    datasets_uri: str = ""

    def __post_init__(self) -> None:
        # The jobs get it as VolumeKmsKeyId, which SageMaker takes as a key id or key ARN only
        # (CreateProcessingJob / CreateTrainingJob refuse an alias there; botocore does not know).
        if ":alias/" in self.kms_key_arn or self.kms_key_arn.startswith("alias/"):
            raise ValueError(f"kms_key_arn {self.kms_key_arn!r} is an alias: the jobs' VolumeKmsKeyId takes "
                             "a key id or key ARN (the stack passes the alias's target_key_arn)")

    def s3(self, *parts: str) -> str:
        return "s3://" + "/".join((self.artifacts_bucket, *parts))


class _RequestStep(ConfigurableRetryStep):
    """A step given as the raw SageMaker API request.

    Used for the training job: the SDK's ModelTrainer calls IAM (SimulatePrincipalPolicy) when it
    is constructed, which would make synth need AWS credentials and network. The request below is
    what ModelTrainer would send for a script-mode scikit-learn job.
    """

    def __init__(self, name: str, step_type: StepTypeEnum, request: dict, shape: str, **kwargs):
        super().__init__(name, step_type, None, None, **kwargs)
        self._request = request
        self._properties = Properties(step_name=name, step=self, shape_name=shape)

    @property
    def arguments(self) -> dict:
        return self._request

    @property
    def properties(self) -> Properties:
        return self._properties


def _session(target: PipelineTarget) -> PipelineSession:
    # Placeholder credentials: building a definition makes no AWS call.
    boto_session = boto3.Session(
        region_name=target.region, aws_access_key_id="offline", aws_secret_access_key="offline"
    )
    return PipelineSession(
        boto_session=boto_session, default_bucket=target.artifacts_bucket
    )


def _input(name: str, uri, local: str, data_type: str = "S3Prefix",
           distribution: str = "FullyReplicated") -> ProcessingInput:
    return ProcessingInput(
        input_name=name,
        s3_input=ProcessingS3Input(
            s3_uri=uri, local_path=local, s3_data_type=data_type, s3_input_mode="File",
            s3_data_distribution_type=distribution,
        ),
    )


def _output(name: str, uri, local: str) -> ProcessingOutput:
    return ProcessingOutput(
        output_name=name,
        s3_output=ProcessingS3Output(s3_uri=uri, local_path=local, s3_upload_mode="EndOfJob"),
    )


class _Builder:
    def __init__(self, project: ProjectConfig, target: PipelineTarget):
        self.project, self.t = project, target
        self.session = _session(target)
        self.bundle = target.s3(target.bundle_prefix)
        self.data_uri = ParameterString(name="InputDataUri", default_value=target.default_data_uri)
        # ISO-8601: add the production records labelled since then (a retrain sets it); empty: none.
        self.production_since = ParameterString(name="ProductionDataSince", default_value="")
        self.processing_type = ParameterString(
            name="ProcessingInstanceType", default_value=target.processing_instance_type
        )
        self.training_type = ParameterString(
            name="TrainingInstanceType", default_value=target.training_instance_type
        )
        self.thresholds = {
            metric: ParameterFloat(
                name=("Min" if project.metric_is_minimum(metric) else "Max") + _camel(metric),
                default_value=float(value),
            )
            for metric, value in sorted(project.gate.thresholds.items())
        }
        self.max_latency = ParameterFloat(
            name="MaxLatencyP95Ms", default_value=float(project.gate.max_latency_p95_ms)
        )
        self.max_fairness_gap = ParameterFloat(
            name="MaxFairnessGap",
            default_value=float(project.fairness.max_gap if project.fairness else 1.0),
        )

    def parameters(self) -> list:
        return [self.data_uri, self.production_since, self.processing_type, self.training_type,
                *self.thresholds.values(), self.max_latency, self.max_fairness_gap]

    def run_uri(self, *parts: str) -> Join:
        """Per-execution output location (never shared between runs)."""
        return Join(on="/", values=[self.t.s3(self.project.name, "runs"),
                                    ExecutionVariables.PIPELINE_EXECUTION_ID, *parts])

    def cached_uri(self, *parts: str) -> str:
        # Cached steps must not write under the execution id: a cache hit hands the next run the
        # earlier run's output locations, which therefore have to stay where they are.
        return self.t.s3(self.project.name, "cache", *parts)

    def processing(self, name: str, script: str, inputs: list, outputs: list, arguments: list,
                   env: dict | None = None, cache: bool = False, depends_on=None,
                   property_files: list | None = None, instance_count=1,
                   instance_type=None) -> ProcessingStep:
        processor = Processor(
            role=self.t.role_arn,
            image_uri=self.t.image_uri,
            instance_count=instance_count,
            instance_type=instance_type or self.processing_type,
            entrypoint=["python3", f"{CONTAINER}/input/code/{script}"],
            volume_kms_key=self.t.kms_key_arn,
            output_kms_key=self.t.kms_key_arn,
            max_runtime_in_seconds=3600,
            base_job_name=f"{self.project.name}-{script.removesuffix('.py')}",
            sagemaker_session=self.session,
            env={"MLOPS_PROJECT": self.project.name, **(env or {})},
        )
        code = _input("code", f"{self.bundle}/{CODE}/", f"{CONTAINER}/input/code")
        step_args = processor.run(inputs=[code, *inputs], outputs=outputs, arguments=arguments)
        return ProcessingStep(
            name=name, step_args=step_args, retry_policies=RETRIES,
            cache_config=CACHE if cache else None, depends_on=depends_on, property_files=property_files,
        )

    def explainability(self, pipeline_name: str, endpoint_name: str) -> Pipeline:
        p, t, e = self.project, self.t, self.project.explainability
        # Empty: the window ends when the job starts (the schedule's case); an ISO time re-checks a
        # past window, or pins one in a test.
        window_end = ParameterString(name="WindowEnd", default_value="")
        step = self.processing(
            "ExplainServedModel", "explainability.py", inputs=[],
            outputs=[_output("report", self.run_uri("explainability"), f"{CONTAINER}/output/report")],
            arguments=["--endpoint", endpoint_name, "--capture-uri", t.capture_uri,
                       "--reports-uri", t.s3(p.name, "explainability"), "--window-end", window_end,
                       "--window-minutes", str(e.window_minutes),
                       "--lag-minutes", str(e.capture_lag_minutes), "--min-rows", str(e.min_rows),
                       "--max-rows", str(e.max_rows), "--threshold", str(e.ndcg_threshold),
                       "--namespace", EXPLAINABILITY_NAMESPACE, "--kms-key-arn", t.kms_key_arn,
                       "--output", f"{CONTAINER}/output/report"],
            env={"AWS_DEFAULT_REGION": t.region},
        )
        return Pipeline(name=pipeline_name, parameters=[window_end, self.processing_type], steps=[step],
                        sagemaker_session=self.session)

    def drift_batch(self, pipeline_name: str, environment: dict[str, str]) -> Pipeline:
        """List the window's capture files -> count them on N instances (ShardedByS3Key) -> merge."""
        batch = self.project.drift.batch
        window_end = ParameterString(name="WindowEnd", default_value="")
        instance_count = ParameterInteger(name="DriftInstanceCount", default_value=batch.instance_count)
        instance_type = ParameterString(name="DriftInstanceType",
                                        default_value=batch.instance_type or self.t.processing_instance_type)
        window = ["--window-end", window_end, "--started", ExecutionVariables.START_DATETIME]
        env = {"AWS_DEFAULT_REGION": self.t.region, **environment}
        listing_uri = self.run_uri("drift", "window")
        listing = self.processing(
            "ListDriftWindow", "drift_batch.py", inputs=[],
            outputs=[_output("window", listing_uri, f"{CONTAINER}/output/window")],
            arguments=["list", *window, "--output", f"{CONTAINER}/output/window",
                       "--output-uri", listing_uri],
            env=env, instance_type=instance_type,
        )
        listed = listing.properties.ProcessingOutputConfig.Outputs["window"].S3Output.S3Uri
        shards = self.processing(
            "CountDriftShard", "drift_batch.py",
            inputs=[_input("capture", Join(on="/", values=[listed, MANIFEST]), f"{CONTAINER}/input/capture",
                           "ManifestFile", "ShardedByS3Key")],
            outputs=[_output("partials", self.run_uri("drift", "partials"), f"{CONTAINER}/output/partials")],
            # This instance's name and its peers' are in the job's resource config.
            arguments=["shard", *window, "--input", f"{CONTAINER}/input/capture",
                       "--output", f"{CONTAINER}/output/partials",
                       "--resource-config", "/opt/ml/config/resourceconfig.json"],
            env=env, instance_count=instance_count, instance_type=instance_type,
        )
        partials = shards.properties.ProcessingOutputConfig.Outputs["partials"].S3Output.S3Uri
        merge = self.processing(
            "MergeDriftShards", "drift_batch.py",
            inputs=[_input("partials", partials, f"{CONTAINER}/input/partials"),
                    _input("window", listed, f"{CONTAINER}/input/window")],
            outputs=[],
            arguments=["merge", *window, "--partials", f"{CONTAINER}/input/partials",
                       "--listing", f"{CONTAINER}/input/window"],
            env=env, instance_type=instance_type,
        )
        return Pipeline(name=pipeline_name, parameters=[window_end, instance_count, instance_type],
                        steps=[listing, shards, merge], sagemaker_session=self.session)

    def allowed_data(self) -> list[str]:
        """The data a run may train on: the project's datasets prefix, its dataset versions (what
        a retrain passes), and the configured default (a prefix ends with `/`)."""
        t = self.t
        return list(dict.fromkeys(uri for uri in (t.datasets_uri, t.s3(self.project.name, "datasets", ""),
                                                  t.default_data_uri) if uri))

    def build(self) -> Pipeline:
        p, t = self.project, self.t
        config = _input("config", f"{self.bundle}/{CONFIG}", f"{CONTAINER}/input/config", "S3Prefix")

        version_file = PropertyFile(name="DatasetVersion", output_name="version", path="version.json")
        dataset = self.processing(
            "DatasetVersion", "dataset_version.py",
            inputs=[_input("data", self.data_uri, f"{CONTAINER}/input/data"), config],
            outputs=[_output("version", self.run_uri("dataset"), f"{CONTAINER}/output/version")],
            arguments=["--data", f"{CONTAINER}/input/data", "--data-uri", self.data_uri,
                       "--config", f"{CONTAINER}/input/config",
                       "--versions-uri", t.s3(p.name, "datasets"),
                       *[a for allowed in self.allowed_data() for a in ("--allowed-data", allowed)],
                       "--since", self.production_since,
                       "--capture-uri", t.capture_uri, "--ground-truth-uri", t.ground_truth_uri,
                       "--output", f"{CONTAINER}/output/version"],
            env={"AWS_DEFAULT_REGION": t.region}, property_files=[version_file],
        )
        data_uri = JsonGet(step_name=dataset.name, property_file=version_file, json_path="uri")
        data_hash = JsonGet(step_name=dataset.name, property_file=version_file, json_path="sha256")

        def cached(*parts: str) -> Join:
            # Keyed on the data's hash as well as living outside the execution id (see cached_uri).
            return Join(on="/", values=[self.cached_uri(parts[0]), data_hash, *parts[1:]])

        validate = self.processing(
            "ValidateData", "validate.py",
            inputs=[_input("data", data_uri, f"{CONTAINER}/input/data"),
                    _input("schema", f"{self.bundle}/{SCHEMA}", f"{CONTAINER}/input/schema")],
            outputs=[_output("report", cached("validation"), f"{CONTAINER}/output/report")],
            arguments=["--data", f"{CONTAINER}/input/data", "--schema", f"{CONTAINER}/input/schema",
                       "--output", f"{CONTAINER}/output/report"],
            cache=True,
        )
        preprocess = self.processing(
            "Preprocess", "preprocess.py",
            inputs=[_input("data", data_uri, f"{CONTAINER}/input/data"), config],
            outputs=[_output(split, cached("splits", split), f"{CONTAINER}/output/{split}")
                     for split in ("train", "validation", "test", "lineage")],
            arguments=["--data", f"{CONTAINER}/input/data", "--config", f"{CONTAINER}/input/config",
                       "--data-uri", data_uri, "--output", f"{CONTAINER}/output"],
            cache=True, depends_on=[validate],
        )
        outputs = preprocess.properties.ProcessingOutputConfig.Outputs

        train = _RequestStep("Train", StepTypeEnum.TRAINING, self.training_request(outputs),
                             "DescribeTrainingJobResponse", retry_policies=RETRIES)

        evaluation_report = PropertyFile(name="EvaluationReport", output_name="evaluation",
                                         path="evaluation.json")
        # The project's experiment keeps its artifacts under the project's own prefix, where its
        # execution role may write; the tracking server's default root (s3://<artifacts>/mlflow)
        # belongs to no project.
        env = {"MLOPS_RUN_ID": ExecutionVariables.PIPELINE_EXECUTION_ID,
               "MLOPS_GIT_COMMIT": t.git_commit, "MLFLOW_EXPERIMENT_NAME": p.name,
               "MLFLOW_ARTIFACT_LOCATION": t.s3(p.name, "mlflow"),
               "MLFLOW_DISABLE_TELEMETRY": "true"}
        if t.mlflow_tracking_uri:
            env["MLFLOW_TRACKING_URI"] = t.mlflow_tracking_uri
        evaluate = self.processing(
            "Evaluate", "evaluate.py",
            inputs=[_input("model", train.properties.ModelArtifacts.S3ModelArtifacts,
                           f"{CONTAINER}/input/model"),
                    _input("test", outputs["test"].S3Output.S3Uri, f"{CONTAINER}/input/test"),
                    config,
                    _input("lineage", outputs["lineage"].S3Output.S3Uri, f"{CONTAINER}/input/lineage"),
                    _input("validation", validate.properties.ProcessingOutputConfig.Outputs["report"]
                           .S3Output.S3Uri, f"{CONTAINER}/input/validation")],
            outputs=[_output("evaluation", self.run_uri("evaluation"), f"{CONTAINER}/output/evaluation")],
            arguments=["--model", f"{CONTAINER}/input/model", "--test", f"{CONTAINER}/input/test",
                       "--config", f"{CONTAINER}/input/config", "--lineage", f"{CONTAINER}/input/lineage",
                       "--validation", f"{CONTAINER}/input/validation",
                       "--output", f"{CONTAINER}/output/evaluation"],
            env=env, property_files=[evaluation_report],
        )
        evaluation_uri = evaluate.properties.ProcessingOutputConfig.Outputs["evaluation"].S3Output.S3Uri

        register = self.processing(
            "RegisterModel", "register.py",
            inputs=[_input("evaluation", evaluation_uri, f"{CONTAINER}/input/evaluation"),
                    _input("lineage", outputs["lineage"].S3Output.S3Uri, f"{CONTAINER}/input/lineage"),
                    config],
            outputs=[_output("registration", self.run_uri("registration"),
                             f"{CONTAINER}/output/registration")],
            arguments=["--evaluation", f"{CONTAINER}/input/evaluation",
                       "--lineage", f"{CONTAINER}/input/lineage", "--config", f"{CONTAINER}/input/config",
                       "--model-data-url", train.properties.ModelArtifacts.S3ModelArtifacts,
                       "--model-package-group", t.model_package_group,
                       "--image-uri", t.inference_image_uri,
                       "--evaluation-uri", Join(on="/", values=[evaluation_uri, "evaluation.json"]),
                       "--pipeline-run-id", ExecutionVariables.PIPELINE_EXECUTION_ID,
                       "--git-commit", t.git_commit,
                       "--data-until", JsonGet(step_name=dataset.name, property_file=version_file,
                                               json_path="until"),
                       "--output", f"{CONTAINER}/output/registration"],
            env={"AWS_DEFAULT_REGION": t.region},
        )

        def metric(path: str) -> JsonGet:
            return JsonGet(step_name=evaluate.name, property_file=evaluation_report, json_path=path)

        conditions, message = [], ["Gate failed (see the Evaluate step's evaluation.json):"]
        for name, threshold in self.thresholds.items():
            value = metric(f"metrics.{name}")
            minimum = p.metric_is_minimum(name)
            condition = ConditionGreaterThanOrEqualTo if minimum else ConditionLessThanOrEqualTo
            conditions.append(condition(left=value, right=threshold))
            message += [f"{name}", value, "needs", ">=" if minimum else "<=", threshold, ";"]
        conditions.append(ConditionLessThanOrEqualTo(left=metric("latency_ms.p95"),
                                                     right=self.max_latency))
        message += ["latency p95 ms", metric("latency_ms.p95"), "needs <=", self.max_latency, ";"]
        if p.fairness:
            conditions.append(ConditionLessThanOrEqualTo(left=metric("fairness.gap"),
                                                         right=self.max_fairness_gap))
            message += [f"{p.fairness.metric} gap across {p.fairness.attribute} groups",
                        metric("fairness.gap"), "needs <=", self.max_fairness_gap]
        fail = FailStep(name="GateFailed", error_message=Join(on=" ", values=message))
        gate = ConditionStep(name="CheckGate", conditions=conditions, if_steps=[register],
                             else_steps=[fail])

        return Pipeline(
            name=t.pipeline_name,
            parameters=self.parameters(),
            steps=[dataset, validate, preprocess, train, evaluate, gate],
            sagemaker_session=self.session,
        )

    def training_request(self, outputs) -> dict:
        p, t = self.project, self.t
        hyperparameters = {
            # Script mode of the scikit-learn container: it fetches and runs our train.py.
            "sagemaker_program": "train.py",
            "sagemaker_submit_directory": f"{self.bundle}/{SOURCEDIR}",
            "sagemaker_region": t.region,
            "algorithm": p.training.algorithm,
            "seed": str(p.training.seed),
            # SageMaker passes hyperparameters as strings; train.py turns them back into numbers.
            **{k: _hp(v) for k, v in sorted(p.training.hyperparameters.items())},
        }

        def channel(name: str, uri) -> dict:
            return {"ChannelName": name, "InputMode": "File", "DataSource": {"S3DataSource": {
                "S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "FullyReplicated"}}}

        return {
            "AlgorithmSpecification": {"TrainingImage": t.image_uri, "TrainingInputMode": "File"},
            "RoleArn": t.role_arn,
            "HyperParameters": hyperparameters,
            "InputDataConfig": [
                channel("train", outputs["train"].S3Output.S3Uri),
                channel("validation", outputs["validation"].S3Output.S3Uri),
                channel("config", f"{self.bundle}/{CONFIG}"),
            ],
            "OutputDataConfig": {"S3OutputPath": self.run_uri("model"), "KmsKeyId": t.kms_key_arn},
            "ResourceConfig": {"InstanceType": self.training_type, "InstanceCount": 1,
                               "VolumeSizeInGB": 30, "VolumeKmsKeyId": t.kms_key_arn},
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
            "Environment": {"MLOPS_PROJECT": p.name},
        }


def _camel(metric: str) -> str:
    """'roc_auc' -> 'RocAuc', 'f1' -> 'F1' (pipeline parameter names are CamelCase)."""
    return "".join(part.upper() if part in ("f1", "r2", "mae", "rmse", "mape") else part.title()
                   for part in metric.split("_"))


def _hp(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def build_pipeline(project: ProjectConfig, target: PipelineTarget) -> Pipeline:
    with offline_sdk():
        return _Builder(project, target).build()


def _compact(pipeline: Pipeline) -> str:
    import json

    return json.dumps(json.loads(pipeline.definition()), sort_keys=True, separators=(",", ":"))


def definition(project: ProjectConfig, target: PipelineTarget) -> str:
    """The pipeline definition JSON, compact and stable (equal input -> equal bytes)."""
    with offline_sdk():
        return _compact(build_pipeline(project, target))


def explainability_definition(project: ProjectConfig, target: PipelineTarget, pipeline_name: str,
                              endpoint_name: str) -> str:
    """The explainability pipeline's definition JSON (one step; see the module doc)."""
    with offline_sdk():
        return _compact(_Builder(project, target).explainability(pipeline_name, endpoint_name))


def drift_batch_definition(project: ProjectConfig, target: PipelineTarget, pipeline_name: str,
                           environment: dict[str, str]) -> str:
    """The drift batch pipeline's definition JSON (three steps; lambdas/shared/drift/batch.py).
    `environment`: the drift Lambda's variables (its settings), which every step gets."""
    with offline_sdk():
        return _compact(_Builder(project, target).drift_batch(pipeline_name, environment))
