"""`mlops demo [--json]`: the whole control loop on the local AWS, one command, one line per phase.

The story (each phase runs the commands a person would, in this process, against a local AWS
brought up from nothing by real Terraform):

    local up -> train v1 -> gate -> canary deploy -> traffic with labels -> v1 known-good
    -> broken v2 (MLOPS_FAULT_ERROR_PERCENT) caught by the canary, rolled back by the guardrails
    -> drifted traffic -> drift warning -> retrain on a new dataset version -> v3 gated, deployed,
    baked -> rollback drill on v3 (its instances start failing) -> the endpoint serves v1 again
    (the newest known-good deployment before v3)

Nothing in the story is written by hand: the packages come from pipeline runs (v2 is the drill's
faulty copy of v1), the gate, deploy, drift, retrain and rollback decisions are the deployed
handlers', the alarms are evaluated on the metrics that traffic produced. The local control
plane is stepped by this command (the local AWS's background plane pauses meanwhile).

What the commands print goes to .mlops/logs/demo.log (Terraform's output to .mlops/logs/<stack>.log);
the screen shows one live line per phase and a summary table (with --json: the phases on stdout).
A demo starts from an empty local AWS: a running one is stopped first (`mlops local down` is the
way out afterwards). Exit codes: 0 the story ran; 1 a phase failed (named, with the log's path).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from rich.markup import escape

from mlops.project import Project

PROJECT = "demo"
# make demo passes the moment it started (before its set-up) so the summary can count set-up too.
STARTED_AT = "MLOPS_DEMO_STARTED_AT"
TRAFFIC_RATE = 20.0  # requests per second during each bake
LABELLED = 100  # labels written for v1's traffic (the local quality check needs 30)
# The drifted traffic: a population shift within the data's range (the schema's ranges refuse
# shifted values, as the validate step should), well above the drift check's minimum rows.
DRIFT_REQUESTS = 600
DRIFT_SKEW = "mean_texture=0.66"  # the coarsest third; radius is the fairness attribute
POLL_SECONDS = 0.2


class PhaseFailed(RuntimeError):
    """A phase did not end as the story needs; the message says what was seen instead."""


@dataclass
class Phase:
    name: str
    happened: str = ""
    seconds: float = 0.0
    where: str = ""
    ok: bool | None = None  # None: not run (an earlier phase failed)

    def as_json(self) -> dict[str, Any]:
        return {"phase": self.name, "happened": self.happened, "seconds": round(self.seconds, 1),
                "where": self.where, "ok": self.ok}


class CommandOutput(io.TextIOBase):
    """Where the phases' commands print: the demo's log, and the live line's latest message."""

    def __init__(self, log: io.TextIOBase, on_line: Callable[[str], None]):
        self.log, self.on_line, self._partial = log, on_line, ""
        self._lock = threading.Lock()  # a command's threads may print too

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            self.log.write(text)
            self.log.flush()
            lines = (self._partial + text).split("\n")
            self._partial = lines.pop()
        for line in lines:
            if line.strip():
                self.on_line(line.strip())
        return len(text)


@dataclass
class Story:
    checkout: Project
    display: Any  # rich Progress on the real stderr
    log: io.TextIOBase
    phases: list[Phase] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    control_plane: Any = None
    _task: Any = None
    _heard: list[str] | None = None  # what the running command printed (its error lines)
    _clients: dict[str, Any] = field(default_factory=dict)
    _clients_lock: threading.Lock = field(default_factory=threading.Lock)

    # --- plumbing ------------------------------------------------------------------------------
    def note(self, line: str) -> None:
        if self._heard is not None:
            self._heard.append(line)
        if self._task is not None:
            self.display.update(self._task, detail=escape(_clip(line)))

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[Phase]:
        phase = Phase(name)
        self.phases.append(phase)
        self._task = self.display.add_task(name, total=1, detail="")
        self.log.write(f"\n===== {name} =====\n")
        started = time.monotonic()
        out = CommandOutput(self.log, self.note)
        try:
            with contextlib.redirect_stderr(out):
                yield phase
        except BaseException as exc:
            phase.ok, phase.seconds = False, time.monotonic() - started
            phase.happened = phase.happened or f"failed: {exc}"
            self.display.update(self._task, description=f"[red]✗ {escape(name)}",
                                detail=escape(_clip(str(exc))))
            self.display.stop_task(self._task)
            raise
        phase.ok, phase.seconds = True, phase.seconds or time.monotonic() - started
        self.display.update(self._task, completed=1, description=f"[green]✓[/] {escape(name)}",
                            detail=escape(_clip(phase.happened)))
        self._task = None

    def command(self, *argv: str) -> dict[str, Any]:
        """`mlops ARGV --json` in this process: its JSON, or PhaseFailed with its last error line."""
        from mlops.cli import build_parser, dispatch

        args = build_parser().parse_args([*argv, "--json"])
        stdout, lines = io.StringIO(), []
        self._heard = lines
        try:
            with contextlib.redirect_stdout(stdout):
                code = dispatch(args, self.checkout)
        finally:
            self._heard = None
        self.log.write(stdout.getvalue())
        if code != 0:
            errors = [line for line in lines if line.startswith("error:")] or lines[-1:]
            raise PhaseFailed(f"`mlops {' '.join(argv)}` exited {code}: {errors[-1] if errors else ''}")
        text = stdout.getvalue().strip()
        return json.loads(text) if text else {}

    def wait(self, what: str, check: Callable[[], Any], timeout_s: float = 180.0) -> Any:
        """Step the local control plane until `check()` returns something truthy."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.control_plane.tick()
            found = check()
            if found:
                return found
            time.sleep(POLL_SECONDS)
        raise PhaseFailed(f"after {timeout_s:.0f} s: {what}")

    # --- what the phases read ------------------------------------------------------------------
    def client(self, service: str) -> Any:
        """One client per service for the whole story (the traffic threads share them: boto3
        clients are thread-safe once made, making them is not)."""
        with self._clients_lock:
            if service not in self._clients:
                self._clients[service] = self.facts["clients"](service)
            return self._clients[service]

    def package(self, version: int) -> dict[str, Any] | None:
        sagemaker = self.client("sagemaker")
        for summary in sagemaker.list_model_packages(ModelPackageGroupName=self.facts["group"],
                                                     MaxResults=100)["ModelPackageSummaryList"]:
            if summary.get("ModelPackageVersion") == version:
                return sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
        return None

    def record(self, package_arn: str) -> Any:
        from lambdas.shared.control.dynamo import DeploymentHistory

        names = self.facts["names"]
        records = DeploymentHistory(self.client("dynamodb"), f"{names.base}-deployments").list(names.endpoint)
        deploys = [r for r in records if r.kind == "deploy" and r.model_package_arn == package_arn]
        return max(deploys, key=lambda r: r.started_at) if deploys else None

    def served_config(self) -> str:
        return self.client("sagemaker").describe_endpoint(EndpointName=self.facts["names"].endpoint)[
            "EndpointConfigName"]

    def audit_where(self, action: str) -> str:
        return f"audit: table {self.facts['names'].base}-audit, action {action}"


def _clip(text: str, width: int = 110) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


# --- the phases ----------------------------------------------------------------------------------


def set_up(story: Story) -> None:
    with story.phase("set-up") as phase:
        started = os.environ.get(STARTED_AT, "")
        with contextlib.suppress(ValueError):
            phase.seconds = max(0.0, time.time() - float(started))
        if phase.seconds:
            phase.happened = "venv with the locked packages (make setup, uv)"
        else:
            phase.happened = "already set up (run through `make demo` to time it)"
        phase.where = ".venv, requirements.lock"


def local_up(story: Story) -> None:
    from mlops.aws_clients import clients_for
    from mlops.deploy import Deployer
    from stacks.naming import Naming, ProjectNames

    with story.phase("local up") as phase:
        deployer = Deployer(story.checkout)
        running = deployer.local.running()
        if running is not None:
            print(f"a demo starts from an empty local AWS: stopping the one at {running.endpoint_url} "
                  f"(pid {running.pid})", file=sys.stderr)
            deployer.stop_local()
        up = story.command("local", "up")
        env = story.checkout.environments(["local"])["local"]
        names = ProjectNames(Naming.of(env), PROJECT)
        story.facts.update(env=env, names=names, group=names.base, clients=clients_for(story.checkout, env),
                           config=story.checkout.project(PROJECT, "local"))
        stacks = ", ".join(f"{s['name']} {s['resources']}" for s in up["stacks"])
        phase.happened = f"moto at {up['endpoint_url']}; terraform apply: {stacks} resources"
        phase.where = str(story.checkout.work_dir / "logs" / "<stack>.log")


def train_v1(story: Story) -> None:
    with story.phase("train v1") as phase:
        run = story.command("pipeline", "run", "--env", "local", "--project", PROJECT, "--no-loop")
        story.facts["v1"] = run["model_package_arn"]
        metrics = ", ".join(f"{k} {run['metrics'][k]:.3f}" for k in ("accuracy", "recall", "roc_auc"))
        phase.happened = f"pipeline {run['pipeline_execution_id']} Succeeded: {metrics}; v1 registered"
        phase.where = f"MLflow run {run['mlflow_run_id']} (.mlops/local/mlflow); model card: " \
                      "DescribeModelPackage v1 ModelCard"


def gate(story: Story, version: int, key: str) -> dict[str, Any]:
    def decided() -> dict[str, Any] | None:
        package = story.package(version)
        return package if package and package["ModelApprovalStatus"] != "PendingManualApproval" else None

    package = story.wait(f"the gate has not decided on v{version}", decided)
    if package["ModelApprovalStatus"] != "Approved":
        raise PhaseFailed(f"the gate rejected v{version}: {package.get('ApprovalDescription')}")
    story.facts[key] = package["ModelPackageArn"]
    return package


def serve_and_bake(story: Story, version: int, arn: str, labels: bool) -> tuple[Any, dict[str, Any]]:
    """Traffic while the deploy handler's blue/green update of `version` bakes; the record once it
    is SERVING (known-good). With `labels`, the ground truth of the requests the new fleet alone
    answered (rounds that began and ended with all traffic on it: during the canary the old fleet
    answers most requests under the same variant name), until there are LABELLED of them."""
    from mlops.drill_fault import BackgroundTraffic
    from mlops.traffic import dataset, held_out_labels, held_out_rows, write_labels

    config, names = story.facts["config"], story.facts["names"]
    frame = dataset(config, story.client)
    rows, truth = held_out_rows(config, frame), held_out_labels(config, frame)
    state = {"labels": 0, "full": False}
    version_config = story.wait(f"the deploy handler did not start v{version}'s deployment",
                                lambda: getattr(story.record(arn), "new_endpoint_config", None))

    def all_traffic_on_new_fleet() -> bool:
        described = story.client("sagemaker").describe_endpoint(EndpointName=names.endpoint)
        return described["EndpointConfigName"] == version_config and \
            not described.get("PendingDeploymentSummary")

    def label(result: dict[str, Any]) -> None:
        full, state["full"] = state["full"], all_traffic_on_new_fleet()
        if labels and full and state["full"] and result["answered"]:
            start = result["offset"]
            write_labels(story.client("s3"), names, config, result["run_id"], result["answered"],
                         truth[start:] + truth[:start], 0.0)
            state["labels"] += len(result["answered"])

    traffic = BackgroundTraffic(story.client("sagemaker-runtime"), names.endpoint, rows, TRAFFIC_RATE,
                                shuffle=False, on_round=label).start()
    try:
        def settled() -> Any:
            if traffic.error:
                raise PhaseFailed(f"v{version}'s traffic stopped: {traffic.error}")
            record = story.record(arn)
            if record is not None and record.status in ("ROLLED_BACK", "FAILED"):
                raise PhaseFailed(f"v{version}'s deployment ended {record.status}: {record.outcome}")
            enough = not labels or state["labels"] >= LABELLED
            return record if record is not None and record.status == "SERVING" and enough else None

        record = story.wait(f"v{version}'s deployment did not become SERVING", settled)
    finally:
        sent = traffic.stop()
    return record, {**sent, "labels": state["labels"]}


def deploy_v1(story: Story) -> None:
    config = story.facts.get("config")
    with story.phase("gate") as phase:
        package = gate(story, 1, "v1")
        phase.happened = f"v1 Approved: {package.get('ApprovalDescription')}"
        phase.where = story.audit_where("gate")
    with story.phase("canary deploy") as phase:
        arn = story.facts["v1"]
        record = story.wait("the deploy handler did not start v1's deployment", lambda: story.record(arn))
        story.wait("v1's canary took no traffic", lambda: story.record(arn).traffic_at)
        deployment = config.serving.deployment
        phase.happened = (f"{record.new_endpoint_config}: blue/green, canary {deployment.step_percent}% for "
                          f"{deployment.wait_seconds} s, then all traffic")
        phase.where = story.audit_where("deploy")
    with story.phase("traffic with labels") as phase:
        record, sent = serve_and_bake(story, 1, arn, labels=True)
        story.facts["v1_record"] = record
        _all_answered(sent, "v1")
        quality = story.command("quality", "check", "--env", "local", "--project", PROJECT)
        if quality["status"] != "ok":
            raise PhaseFailed(f"the model-quality check found {quality['status']}: {quality['counts']}")
        phase.happened = (f"{sent['requests']} requests {sent['by_status']}, {sent['labels']} labels; "
                          f"accuracy {quality['metrics'].get('accuracy', float('nan')):.3f} on "
                          f"{quality['counts']['LabelledRecords']} labelled")
        phase.where = f"model-quality report: {quality.get('report', '')}"
    with story.phase("v1 known-good") as phase:
        phase.happened = (f"{record.new_endpoint_config} SERVING since {record.known_good_at}: all traffic "
                          f"through the {config.serving.deployment.termination_wait_seconds} s bake, "
                          f"no critical alarm; {_baseline(record, config.alarms.baseline_floor_ms)}")
        phase.where = f"deployments table {story.facts['names'].base}-deployments"


def _baseline(record: Any, floor: float) -> str:
    """What the p95 alarm now divides by (the deploy handler measured it over the bake)."""
    if record.latency_baseline_us is None:
        return "latency baseline not measured (too few invocations): the configured one holds"
    counted = f" (counts as the {floor:g} ms floor)" if record.latency_baseline_us < floor * 1000 else ""
    return (f"latency baseline p95 {record.latency_baseline_us / 1000:.2f} ms over "
            f"{record.latency_baseline_invocations} invocations{counted}")


def broken_v2(story: Story) -> None:
    with story.phase("broken v2") as phase:
        drill = story.command("drill", "rollback", "--env", "local", "--project", PROJECT, "--via", "fault")
        if drill.get("decision") != "guardrails-rolled-back":
            raise PhaseFailed(f"the canary did not catch v2: decision {drill.get('decision')}, "
                              f"{drill.get('error', '')}")
        arn = drill["drill_model_package_arn"]
        package = story.client("sagemaker").describe_model_package(ModelPackageName=arn)
        record = story.record(arn)
        if record is None or record.status != "ROLLED_BACK" or package["ModelApprovalStatus"] != "Rejected":
            raise PhaseFailed(f"v2 after the guardrails: record {getattr(record, 'status', None)}, "
                              f"package {package['ModelApprovalStatus']}")
        v1 = story.facts["v1_record"].new_endpoint_config
        if drill.get("to_config") != v1 or story.served_config() != v1 or not drill.get("alarm_restored"):
            raise PhaseFailed(f"after v2: serving {story.served_config()} (expected v1's {v1}), alarm back "
                              f"to OK: {drill.get('alarm_restored')}")
        story.facts["v2"] = arn
        fault = drill["fault"]
        phase.happened = (f"v{package['ModelPackageVersion']} ({fault['setting']}): canary "
                          f"{fault['canary_percent']:g}% x 100% failing tripped {drill['alarm']}; SageMaker "
                          f"rolled back to {drill['to_config']} in {drill['seconds']} s; v2 Rejected")
        phase.where = story.audit_where("deployment")


def drifted_traffic(story: Story) -> None:
    with story.phase("drifted traffic") as phase:
        sent = story.command("traffic", "--env", "local", "--project", PROJECT,
                             "--requests", str(DRIFT_REQUESTS), "--labels", "--skew", DRIFT_SKEW)
        feature, quantile = DRIFT_SKEW.split("=")
        phase.happened = (f"{sent['ok']}/{sent['requests']} requests, only rows with {feature} above its "
                          f"{quantile} quantile; {sent['labels']['written']} labels")
        phase.where = f"capture: {story.facts['names'].capture_uri}"


def _schedule_rule(story: Story, name: str) -> dict[str, Any]:
    rules = [r for r in story.control_plane.schedules() if r["Name"] == name]
    if not rules:
        raise PhaseFailed(f"no schedule rule {name}: is the project stack deployed?")
    return rules[0]


def _explainability_verdict(story: Story, execution_arn: str) -> str:
    """What the explainability pipeline found (its report, read back from S3)."""
    names = story.facts["names"]

    def finished() -> dict[str, Any] | None:
        found = story.client("sagemaker").describe_pipeline_execution(PipelineExecutionArn=execution_arn)
        return found if found["PipelineExecutionStatus"] in ("Succeeded", "Failed", "Stopped") else None

    done = story.wait("the explainability pipeline did not finish", finished)
    if done["PipelineExecutionStatus"] != "Succeeded":
        raise PhaseFailed(f"the explainability pipeline {done['PipelineExecutionStatus']}: "
                          f"{done.get('FailureReason', '')}")
    s3, prefix = story.client("s3"), f"{PROJECT}/explainability/{names.endpoint}/"
    listed = s3.list_objects_v2(Bucket=names.artifacts_bucket, Prefix=prefix).get("Contents", [])
    keys = [o["Key"] for o in listed]
    if not keys:
        raise PhaseFailed(f"the explainability pipeline wrote no report under {prefix}")
    report = json.loads(s3.get_object(Bucket=names.artifacts_bucket, Key=max(keys))["Body"].read())
    if "ndcg" not in report:
        return f"attributions not compared ({report.get('status')}: {report.get('reason')})"
    shift = "shifted" if report["drifted"] else "unchanged"
    return f"attribution ranking {shift} (nDCG {report['ndcg']:.3f} on {report['rows']} rows)"


def drift_warning(story: Story) -> None:
    from datetime import UTC, datetime

    names = story.facts["names"]
    with story.phase("drift warning") as phase:
        served = story.served_config()
        now = datetime.now(UTC)
        # First the explainability pipeline, so that it runs before the retrain the drift starts
        # (the local AWS runs pipeline executions one at a time, in order).
        explainability = _schedule_rule(story, names.explainability_pipeline)
        started = story.control_plane.fire_schedule(explainability, now)
        if len(started) != 1:
            raise PhaseFailed(f"{explainability['Name']} started {len(started)} pipeline executions, "
                              f"not one: {story.control_plane.failed_targets or 'no pipeline target'}")
        explaining = started[0]
        story.control_plane.fire_schedule(_schedule_rule(story, f"{names.base}-drift"), now)
        alarms = {f"{names.endpoint}-warning-drift", f"{names.endpoint}-warning-feature-drift"}
        cloudwatch = story.client("cloudwatch")

        def fired() -> list[str]:
            found = cloudwatch.describe_alarms(AlarmNames=sorted(alarms))["MetricAlarms"]
            return [a["AlarmName"] for a in found if a["StateValue"] == "ALARM"]

        in_alarm = story.wait("no drift alarm went to ALARM", fired)
        execution = story.wait("the retrain handler started no pipeline execution",
                               lambda: _executions(story))
        attributions = _explainability_verdict(story, explaining)
        if story.served_config() != served:
            raise PhaseFailed(f"a drift warning changed what is served: {served} -> {story.served_config()}")
        execution = sorted(execution, key=lambda e: e["StartTime"], reverse=True)
        story.facts["retrain_execution"] = execution[0]["PipelineExecutionArn"]
        started = execution[0]["PipelineExecutionArn"].rsplit("/", 1)[-1]
        phase.happened = (f"{', '.join(in_alarm)} -> ALARM (warning); {attributions}; "
                          f"retrain started {started}; still serving {served}")
        reports = f"s3://{names.artifacts_bucket}/{PROJECT}"
        phase.where = (f"drift report: {reports}/drift/{names.endpoint}/; explainability: "
                       f"{reports}/explainability/{names.endpoint}/; {story.audit_where('retrain')}")


def _all_answered(sent: dict[str, Any], version: str) -> None:
    if not sent.get("requests") or set(sent.get("by_status", {})) != {"200"}:
        raise PhaseFailed(f"{version} did not answer its bake's traffic: {sent}")


def _executions(story: Story) -> list[dict[str, Any]]:
    """The pipeline executions the retrain handler started (it names them retrain-<alarm>)."""
    found = story.client("sagemaker").list_pipeline_executions(
        PipelineName=story.facts["names"].pipeline, SortBy="CreationTime", SortOrder="Descending")[
        "PipelineExecutionSummaries"]
    return [e for e in found if (e.get("PipelineExecutionDisplayName") or "").startswith("retrain-")]


def retrain_v3(story: Story) -> None:
    sagemaker = story.client("sagemaker")
    with story.phase("retrain on new data") as phase:
        arn = story.facts["retrain_execution"]

        def finished() -> dict[str, Any] | None:
            described = sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)
            return described if described["PipelineExecutionStatus"] in ("Succeeded", "Failed", "Stopped") \
                else None

        done = story.wait("the retrain's pipeline execution did not finish", finished, timeout_s=300)
        if done["PipelineExecutionStatus"] != "Succeeded":
            raise PhaseFailed(f"the retrain's execution {done['PipelineExecutionStatus']}: "
                              f"{done.get('FailureReason', '')}")
        package = story.wait("the retrain registered no v3", lambda: story.package(3))
        meta = package.get("CustomerMetadataProperties") or {}
        phase.happened = f"execution Succeeded on {meta.get('data_uri', '?')}; v3 registered"
        phase.where = f"dataset version: {meta.get('data_uri', '').rsplit('/', 1)[0]}/version.json"
    with story.phase("v3 gated, deployed, baked") as phase:
        package = gate(story, 3, "v3")
        record, sent = serve_and_bake(story, 3, package["ModelPackageArn"], labels=False)
        story.facts["v3_record"] = record
        _all_answered(sent, "v3")
        phase.happened = (f"v3 Approved ({_clip(package.get('ApprovalDescription') or '', 60)}); "
                          f"{record.new_endpoint_config} SERVING after the bake, "
                          f"{sent['requests']} requests; "
                          f"{_baseline(record, story.facts['config'].alarms.baseline_floor_ms)}")
        phase.where = story.audit_where("gate, deploy")


def rollback_drill(story: Story) -> None:
    with story.phase("rollback drill on v3") as phase:
        drill = story.command("drill", "rollback", "--env", "local", "--project", PROJECT, "--via", "outage")
        v1 = story.facts["v1_record"].new_endpoint_config
        restored = drill.get("decision") == "rolled-back" and drill.get("to_config") == v1
        if not restored or story.served_config() != v1:
            raise PhaseFailed(f"the drill restored {drill.get('to_config')} ({drill.get('decision')}), "
                              f"not v1's {v1}")
        v3 = story.client("sagemaker").describe_model_package(ModelPackageName=story.facts["v3"])
        if v3["ModelApprovalStatus"] != "Rejected":
            raise PhaseFailed(f"v3 is {v3['ModelApprovalStatus']} after the rollback, not Rejected")
        sent, share = drill["traffic"]["by_status"], drill["outage"]["percent"]
        phase.happened = (f"outage: {share:g}% of v3's requests failing ({sent}) tripped "
                          f"{drill['alarm']}; the rollback handler restored {v1} (v1, the newest known-good "
                          f"before v3) {drill['seconds']} s after the alarm; v3 Rejected")
        phase.where = story.audit_where("rollback")


STORY = (set_up, local_up, train_v1, deploy_v1, broken_v2, drifted_traffic, drift_warning, retrain_v3,
         rollback_drill)


def run_story(story: Story) -> None:
    """The phases in order; the first that fails raises (it is marked failed, the rest not run)."""
    from local_aws.control_plane import LocalControlPlane, stepping
    from mlops.deploy import Deployer

    first, rest = STORY[:2], STORY[2:]
    for step in first:
        step(story)
    server = Deployer(story.checkout).local.require()
    # The local AWS's own background plane pauses: the story steps the plane and waits on it.
    with stepping(story.checkout.local_dir), LocalControlPlane.for_server(
            server, story.checkout.local_dir, report=lambda line: print(line, file=sys.stderr)) as plane:
        story.control_plane = plane
        for step in rest:
            step(story)


def summary_table(phases: list[Phase]) -> Any:
    from rich.table import Table

    table = Table(title="mlops demo", show_lines=False)
    for column in ("phase", "what happened", "seconds", "where to look"):
        table.add_column(column, justify="right" if column == "seconds" else "left",
                         overflow="fold")
    for p in phases:
        mark = {True: "[green]✓[/]", False: "[red]✗[/]", None: "-"}[p.ok]
        table.add_row(f"{mark} {escape(p.name)}", escape(p.happened), f"{p.seconds:.1f}", escape(p.where))
    return table


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="the phases as JSON on stdout")


def run_demo_command(args: argparse.Namespace, checkout: Project) -> int:
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(file=sys.stderr)
    if not console.is_terminal:  # a log or a CI page: wide enough that the table keeps its rows
        console = Console(file=sys.stderr, width=180)
    log_path = checkout.work_dir / "logs" / "demo.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    failure: str | None = None
    with log_path.open("w") as log, Progress(
            SpinnerColumn(finished_text=""), TextColumn("{task.description:<28}"),
            TextColumn("[dim]{task.fields[detail]}"), TimeElapsedColumn(), console=console,
            redirect_stdout=False, redirect_stderr=False) as display:
        story = Story(checkout, display, log)
        try:
            run_story(story)
        except KeyboardInterrupt:
            failure = "interrupted"
            log.write("\ninterrupted\n")
        except Exception as exc:  # the phase is marked failed; the table and the log say the rest
            failure = str(exc) if isinstance(exc, PhaseFailed) else f"{type(exc).__name__}: {exc}"
            log.write(f"\nfailed: {failure}\n")
    total = time.monotonic() - started
    phases = story.phases
    setup = next((p.seconds for p in phases if p.name == "set-up"), 0.0)
    if args.json:
        print(json.dumps({"ok": failure is None, "phases": [p.as_json() for p in phases],
                          "seconds": round(total + setup, 1), "log": str(log_path), "error": failure},
                         indent=2))
    console.print(summary_table(phases))
    console.print(f"total {total + setup:.1f} s (set-up included); what the commands printed: {log_path}")
    if failure:
        console.print(f"[red]error:[/] {escape(failure)}")
        return 130 if failure == "interrupted" else 1
    return 0

