"""`mlops`: synthesize, deploy and operate the platform.

Exit codes: 0 ok, 1 an operation failed (Terraform, the local AWS), 2 bad input (configuration
files, arguments). Progress and errors go to stderr; `--json` output goes to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from local_aws.lifecycle import LocalAwsError
from mlops.cost import add_cost_arguments, run_cost_command
from mlops.demo import add_demo_arguments, run_demo_command
from mlops.deploy import DeployedStack, Deployer, say, synthesize
from mlops.drift_check import add_check_arguments, run_check_command
from mlops.drift_compare import add_compare_arguments, run_compare
from mlops.drill import add_drill_arguments, run_drill_command
from mlops.endpoint_wait import EndpointWaitError
from mlops.images import ImageError
from mlops.k8s_serving import K8sError, add_k8s_arguments, run_k8s_command
from mlops.layers import LayerBuildError
from mlops.pipeline_run import PipelineRunError
from mlops.project import Project
from mlops.promotion import add_promote_arguments, run_promote_command
from mlops.quality_check import add_quality_arguments, run_quality_command
from mlops.rbac import (
    add_credentials_arguments,
    add_rbac_arguments,
    run_credentials_command,
    run_rbac_command,
)
from mlops.shadow_report import add_report_arguments, run_report_command
from mlops.signing_profile import SigningProfileError
from mlops.terraform import TerraformError
from mlops.traffic import add_invoke_arguments, add_traffic_arguments, run_invoke_command, run_traffic_command
from stacks.config import ConfigError, Environment
from stacks.layers import LayerNotBuilt

# Terraform's output goes to .mlops/logs/<stack>.log; this (or --show-terraform) streams it too.
SHOW_TERRAFORM = "MLOPS_SHOW_TERRAFORM"


def _emit(args: argparse.Namespace, payload: object, human: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(payload, indent=2, default=str))
    else:
        print(human)


def _stacks_payload(stacks: list[DeployedStack]) -> list[dict[str, object]]:
    return [
        {"name": s.name, "dir": str(s.dir), "resources": s.resources, "outputs": s.outputs}
        for s in stacks
    ]


def _stacks_human(stacks: list[DeployedStack]) -> str:
    lines = []
    for s in stacks:
        lines.append(f"{s.name}: {s.resources} resources ({s.dir})")
        lines.extend(f"  {k} = {v}" for k, v in sorted(s.outputs.items()))
    return "\n".join(lines)


def _deployer(args: argparse.Namespace, project: Project) -> Deployer:
    shown = getattr(args, "show_terraform", False) or os.environ.get(SHOW_TERRAFORM) == "1"
    return Deployer(project, show_terraform=shown, push_images=getattr(args, "push_images", False),
                    skip_k8s=getattr(args, "skip_k8s", False))


def cmd_validate(args: argparse.Namespace, project: Project) -> int:
    envs = project.environments(args.env or None)
    projects = project.projects()
    _emit(args, {"environments": sorted(envs), "projects": sorted(projects)},
          f"valid: {', '.join(sorted(envs))}; projects: {', '.join(sorted(projects)) or 'none'}")
    return 0


def cmd_synth(args: argparse.Namespace, project: Project) -> int:
    envs = project.environments()  # all files are validated even when some are left out
    if args.env:
        envs = {n: e for n, e in envs.items() if n in args.env}
    infos = synthesize(project, envs, force=True)  # asked for: always a real synth
    payload = {
        "outdir": str(project.outdir),
        "stacks": [
            {"name": i.name, "environment": i.environment, "kind": i.kind,
             "file": str(i.dir / "cdk.tf.json")}
            for i in infos
        ],
    }
    _emit(args, payload, "\n".join(f"{i.name}: {i.dir / 'cdk.tf.json'}" for i in infos))
    return 0


def cmd_deploy(args: argparse.Namespace, project: Project) -> int:
    deployer = _deployer(args, project)
    deployed = deployer.deploy(args.env)
    human = _stacks_human(deployed)
    for applied in deployer.k8s_applied:
        human += f"\nk8s {applied['project']}: " + "; ".join(applied["applied"])
    _emit(args, {"environment": args.env, "stacks": _stacks_payload(deployed), "k8s": deployer.k8s_applied},
          human)
    return 0


def cmd_image(args: argparse.Namespace, project: Project) -> int:
    from mlops import images
    from mlops.aws_clients import clients_for

    env = project.environment(args.env)
    if args.project and args.env not in project.projects().get(args.project, {}):
        say(f"error: --project {args.project}: no such project in {args.env} "
            f"(environments/projects/{args.project}.yaml with {args.env} in its environments)")
        return 2
    if args.project:
        say(f"    {args.project} runs the environment's images (one pair per environment)")
    if args.image_command == "push" and env.is_local:
        # Nothing to push to, and nothing that would pull: moto's ECR holds no layers.
        _emit(args, {"environment": env.name, "images": []},
              "the local AWS has no registry and runs no job in a container: nothing to push")
        return 0
    builder = images.find_builder(project.work_dir / "logs")
    if args.image_command == "build":
        done = images.build(env, builder)
    else:
        done = images.push(env, builder, clients_for(project, env)("ecr"))
    _emit(args, {"environment": env.name, "images": done},
          "\n".join(f"{d['purpose']}: {d['uri']}" for d in done))
    return 0


def cmd_plan(args: argparse.Namespace, project: Project) -> int:
    planned = _deployer(args, project).plan(args.env)
    changes = any(p["changes"] for p in planned)
    _emit(args, {"environment": args.env, "stacks": planned, "changes": changes},
          "\n".join(f"{p['name']}: {p['summary'] or ('changes' if p['changes'] else 'no changes')}"
                    for p in planned))
    return 2 if args.detailed_exitcode and changes else 0


def cmd_deployer_policy(args: argparse.Namespace, project: Project) -> int:
    """What whoever deploys ENV needs, derived from its synthesized replica (where it replicates),
    platform and project stacks."""
    from stacks.deployer_policy import attached_policies, deployer_statements, managed_policies, types_of

    env = project.environment(args.env)
    infos = [i for i in synthesize(project, {args.env: env}) if i.kind in ("replica", "platform", "project")]
    stacks = [json.loads((i.dir / "cdk.tf.json").read_text()) for i in infos]
    resources, data = types_of(stacks)
    try:
        policies = managed_policies(deployer_statements(env, resources, data, attached_policies(stacks)))
    except KeyError as exc:
        say(f"error: {exc.args[0]}")
        return 1
    payload = {"environment": env.name, "stacks": [i.name for i in infos], "resource_types": resources,
               "data_sources": data, "policies": [json.loads(p) for p in policies]}
    _emit(args, payload, "\n".join(json.dumps(json.loads(p), indent=2) for p in policies))
    say(f"{len(policies)} managed policy document(s) for {len(resources)} resource types of "
        f"{', '.join(payload['stacks'])}; attach them all to whoever runs `mlops deploy {env.name}`")
    return 0


def cmd_ci_roles(args: argparse.Namespace, project: Project) -> int:
    """What a workflow job needs to assume an environment's CI role (the names are the
    bootstrap stack's; nothing is called)."""
    from stacks.naming import Naming

    env = project.environment(args.env)
    if env.is_local:
        say(f"error: environments/{args.env}.yaml: {args.env} is a local environment (local: true): "
            "it has no CI roles (CI runs `make test` against the local AWS)")
        return 2
    if env.ci is None:
        say(f"error: environments/{args.env}.yaml: ci.github_repository: not set, so the bootstrap "
            f"stack makes no CI roles for {args.env}")
        return 2
    naming = Naming.of(env)
    payload = {"environment": env.name, "region": env.region, "repository": env.ci.github_repository,
               "plan_role_arn": naming.ci_role_arn("plan"), "deploy_role_arn": naming.ci_role_arn("deploy")}
    _emit(args, payload, "\n".join(f"{k}: {v}" for k, v in payload.items()))
    return 0


def cmd_layers_build(args: argparse.Namespace, project: Project) -> int:
    from mlops.layers import build

    built = build(architecture=args.architecture)
    _emit(args, {"layers": built}, "\n".join(f"{b['layer']}: {b['zip']}" for b in built))
    return 0


def cmd_destroy(args: argparse.Namespace, project: Project) -> int:
    if not project.environment(args.env).is_local and not args.yes:
        say(f"error: destroying {args.env} deletes its resources in AWS; repeat with --yes to confirm")
        return 2
    destroyed = _deployer(args, project).destroy(args.env)
    _emit(args, {"environment": args.env, "destroyed": destroyed},
          f"destroyed: {', '.join(destroyed) or 'nothing'}")
    return 0


def cmd_bootstrap(args: argparse.Namespace, project: Project) -> int:
    try:
        created = _deployer(args, project).bootstrap(args.env)
    except ValueError as exc:
        say(f"error: {exc}")
        return 2
    _emit(args, {"stacks": _stacks_payload(created)}, _stacks_human(created))
    return 0


def cmd_local_up(args: argparse.Namespace, project: Project) -> int:
    deployer = _deployer(args, project)
    deployed = deployer.deploy("local")
    # The set-up calls first (Terraform's, unchecked), then, asked, every call checked.
    deployer.local.require().enforce_iam(args.enforce_iam)
    status = deployer.local_status()
    payload = {**status, "stacks": _stacks_payload(deployed)}
    checked = "every call checked against IAM" if status["iam_enforced"] else "IAM not enforced"
    _emit(args, payload, f"local AWS at {status['endpoint_url']} ({checked})\n{_stacks_human(deployed)}")
    return 0


def cmd_local_down(args: argparse.Namespace, project: Project) -> int:
    deployer = _deployer(args, project)
    # Every local environment's stacks (a local prod's too), then the server.
    destroyed = [name for env in deployer.local_environments() for name in deployer.destroy(env)]
    stopped = deployer.stop_local()
    _emit(args, {"destroyed": destroyed, "server_stopped": stopped},
          f"destroyed: {', '.join(destroyed) or 'nothing'}; "
          f"local AWS {'stopped' if stopped else 'was not running'}")
    return 0


def cmd_local_status(args: argparse.Namespace, project: Project) -> int:
    status = Deployer(project).local_status()
    if status["region"] is None:
        status["region"] = project.environments(["local"])["local"].region
    human = (
        f"local AWS: running at {status['endpoint_url']} (pid {status['pid']})"
        if status["running"] else "local AWS: not running (start it with `mlops local up`)"
    )
    human += "".join(f"\n  {s['name']}: {s['dir']}" for s in status["stacks"])
    _emit(args, status, human)
    return 0


def _local_control_plane(project: Project):
    from local_aws.control_plane import LocalControlPlane

    return LocalControlPlane.for_server(Deployer(project).local.require(), project.local_dir, report=say)


def cmd_local_loop(args: argparse.Namespace, project: Project) -> int:
    import time

    from local_aws.control_plane import TickResult, stepping

    # The local AWS's own background plane pauses while this command steps it and counts.
    with stepping(project.local_dir), _local_control_plane(project) as control_plane:
        if not args.watch:
            result = control_plane.run_until_idle(args.timeout)
        else:
            say("==> local control plane running (Ctrl-C stops it)")
            result = TickResult()
            try:
                while True:
                    result.merge(control_plane.tick())
                    time.sleep(args.interval)
            except KeyboardInterrupt:
                say("stopped")
    payload = {"alarm_changes": result.alarm_changes, "events": result.events,
               "deliveries": result.deliveries, "failures": result.failures}
    for failure in result.failures:
        say(f"error: {failure}")
    _emit(args, payload, f"{len(result.alarm_changes)} alarm change(s), {len(result.events)} event(s), "
          f"{len(result.deliveries)} delivery(ies), {len(result.failures)} failure(s)")
    return 1 if result.failures else 0


def _settled_endpoint(env: Environment, name: str, sagemaker: Any) -> dict[str, Any]:
    """The project's local endpoint once a deploy the loop started has finished."""
    from mlops.endpoint_wait import wait_until_settled
    from stacks.naming import Naming, ProjectNames

    endpoint = ProjectNames(Naming.of(env), name).endpoint
    described = wait_until_settled(sagemaker, endpoint, report=say)
    return {"name": endpoint, "status": described["EndpointStatus"],
            "config": described.get("EndpointConfigName")}


def cmd_pipeline_run(args: argparse.Namespace, project: Project) -> int:
    from local_aws.control_plane import stepping

    # Locally the background control plane pauses for the whole run: this command registers
    # the package, then plays the loop itself and reports what it did.
    env = project.environment(args.env)
    with stepping(project.local_dir) if env.is_local else contextlib.nullcontext():
        return _pipeline_run(args, project, env)


def _pipeline_run(args: argparse.Namespace, project: Project, env: Environment) -> int:
    from mlops.pipeline_run import PipelineRun, parse_parameters

    try:
        parameters = parse_parameters(args.parameter or [])
        summary = PipelineRun(project, args.env, args.project).run(parameters)
    except ValueError as exc:  # a bad --parameter: named, nothing ran
        say(f"error: {exc}")
        return 2
    if summary["status"] == "Succeeded" and env.is_local and not args.no_loop:
        # In AWS the registration starts the control loop by itself (gate, then deploy); locally
        # the local control plane plays those services until the loop has nothing left to do.
        say("==> control loop: model package events -> gate -> deploy")
        with _local_control_plane(project) as control_plane:
            loop = control_plane.run_until_idle()
        arn = summary["model_package_arn"]
        sagemaker = Deployer(project).local.require().client("sagemaker")
        described = sagemaker.describe_model_package(ModelPackageName=arn)
        summary["endpoint"] = _settled_endpoint(env, args.project, sagemaker)
        summary["approval_status"] = described["ModelApprovalStatus"]
        summary["approval_description"] = described.get("ApprovalDescription")
        summary["control_loop"] = {"events": loop.events, "deliveries": loop.deliveries,
                                   "failures": loop.failures}
        say(f"gate: {summary['approval_status']}: {summary['approval_description'] or ''}")
    metrics = ", ".join(f"{k}={v:.4f}" for k, v in sorted(summary["metrics"].items()))
    if summary["status"] == "Succeeded":
        human = (f"model package: {summary['model_package_arn']}\nmetrics: {metrics}\n"
                 f"mlflow run: {summary['mlflow_run_id']}")
    else:
        say(f"error: pipeline step {summary['failed_step']} failed: {summary['reason']}")
        human = f"failed at {summary['failed_step']}" + (f"\nmetrics: {metrics}" if metrics else "")
    _emit(args, summary, human)
    return 0 if summary["status"] == "Succeeded" else 1


def cmd_project_new(args: argparse.Namespace, project: Project) -> int:
    from mlops.project_new import ProjectNewError, new_project
    from stacks.naming import project_stack_name

    envs = list(project.environments(args.env or None))
    try:
        path = new_project(project.root, args.name, args.team, envs, args.description)
    except ProjectNewError as exc:
        say(f"error: {exc}")
        return 2
    stacks = [project_stack_name(args.name, e) for e in envs]
    _emit(args, {"project": args.name, "file": str(path), "environments": envs, "stacks": stacks},
          f"wrote {path}\nnext: `mlops deploy ENV` (or `mlops local up`) creates {', '.join(stacks)}")
    return 0


def _delegated(parent, name: str, help_: str, description: str,
               add_arguments: Callable[[argparse.ArgumentParser], None],
               run: Callable[[argparse.Namespace, Project], int]) -> None:
    """A subcommand whose arguments and body live in a module of its own."""
    parser = parent.add_parser(name, help=help_, description=description)
    add_arguments(parser)
    parser.set_defaults(func=run)


def _show_terraform(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--show-terraform", action="store_true",
                        help="stream Terraform's progress to stderr too (it always goes to "
                        f".mlops/logs/<stack>.log; or set {SHOW_TERRAFORM}=1)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlops", description="MLOps platform as code: synthesize, deploy and operate."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def group(name: str, help_: str):
        """A command of subcommands (`mlops drift check`): its parser's subparsers."""
        return sub.add_parser(name, help=help_).add_subparsers(dest=f"{name}_command", required=True,
                                                               metavar="COMMAND")

    def add(name: str, func, help_: str, parent=sub) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
        return p

    p = add("validate", cmd_validate, "validate environments/*.yaml and environments/projects/*.yaml")
    p.add_argument("--env", action="append", metavar="ENV")
    p = add("synth", cmd_synth,
            "synthesize every stack into cdktf.out/stacks/<stack>/cdk.tf.json")
    p.add_argument("--env", action="append", metavar="ENV",
                   help="only this environment's stacks (repeatable)")
    p = add("deploy", cmd_deploy, "synthesize and terraform apply one environment")
    p.add_argument("env", metavar="ENV")
    p.add_argument("--push-images", action="store_true",
                   help="push the images ECR lacks (built here by `mlops image build`) instead of refusing")
    p.add_argument("--skip-k8s", action="store_true",
                   help="do not kubectl apply the EKS serving manifests (apply them later with `mlops k8s "
                   "apply`, e.g. from inside the cluster's VPC)")
    _show_terraform(p)
    p = add("plan", cmd_plan, "synthesize and terraform plan one environment (nothing applied)")
    p.add_argument("env", metavar="ENV")
    p.add_argument("--detailed-exitcode", action="store_true",
                   help="exit 2 when any stack would change (as terraform plan -detailed-exitcode)")
    _show_terraform(p)
    p = add("destroy", cmd_destroy, "terraform destroy one environment")
    p.add_argument("env", metavar="ENV")
    _show_terraform(p)
    p.add_argument("--yes", action="store_true", help="confirm destroying a non-local environment")
    p = add("bootstrap", cmd_bootstrap,
            "create the remote-state bucket of an environment's account (once per account)")
    p.add_argument("env", metavar="ENV")
    _show_terraform(p)

    p = add("deployer-policy", cmd_deployer_policy,
            "the IAM policy documents whoever deploys an environment needs (from its synthesized stacks)")
    p.add_argument("--env", required=True, metavar="ENV")

    image_sub = group("image", "the training and inference images of an environment")
    for name, help_ in (("build", "build the images with the machine's OCI builder (docker, podman)"),
                        ("push", "push the images ECR lacks, under the tag the stacks reference")):
        p = add(name, cmd_image, help_, image_sub)
        p.add_argument("--env", required=True, metavar="ENV")
        p.add_argument("--project", help="a project of the environment (its images are the environment's)")

    ci_sub = group("ci", "what the shipped GitHub Actions workflow reads")
    p = add("roles", cmd_ci_roles, "the CI roles (plan, deploy) of an environment and its region", ci_sub)
    p.add_argument("--env", required=True, metavar="ENV")

    layers_sub = group("layers", "the Lambda layers the functions run with")
    p = add("build", cmd_layers_build,
            "download the layers' pinned wheels for Lambda and zip them into the cache (make setup does)",
            layers_sub)
    p.add_argument("--architecture", choices=["x86_64", "arm64"], default="x86_64")

    local_sub = group("local", "the local AWS (moto on 127.0.0.1)")
    p = add("up", cmd_local_up, "start the local AWS and deploy the local environment", local_sub)
    _show_terraform(p)
    p.add_argument("--enforce-iam", action="store_true",
                   help="once deployed, check every call against IAM as AWS would (moto's enforcement; "
                   "the deployer's key is the account root): for `mlops rbac check`")
    _show_terraform(add("down", cmd_local_down, "destroy every local environment and stop the local AWS",
                        local_sub))
    add("status", cmd_local_status, "is the local AWS running, and what is deployed", local_sub)
    _delegated(local_sub, "credentials", "an access key of a persona's local IAM user and its role",
               "Prints {AccessKeyId, SecretAccessKey, RoleArn} (--json) or shell exports: the key of "
               "the IAM user environments/<env>.yaml (--env, default local) lets assume the persona's role "
               "(made once per local AWS, in the environment's account), and that role.",
               add_credentials_arguments, run_credentials_command)
    p = add("loop", cmd_local_loop,
            "run the local control plane: alarm evaluation, AWS service events, SQS -> handlers",
            local_sub)
    p.add_argument("--watch", action="store_true", help="keep running (Ctrl-C stops it)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between ticks with --watch")
    p.add_argument("--timeout", type=float, default=120.0, help="without --watch: give up after")

    project_sub = group("project", "ML projects (environments/projects/)")
    p = add("new", cmd_project_new, "write a new, validated project file with secure defaults",
            project_sub)
    p.add_argument("name", help="3-16 of a-z, 0-9 and '-', starting with a letter")
    p.add_argument("--team", required=True, help="the owning team (lowercase, digits, '-')")
    p.add_argument("--env", action="append", metavar="ENV",
                   help="provision only in this environment (repeatable; default: all)")
    p.add_argument("--description", help="the intended use (goes into the model card)")

    drift_sub = group("drift", "data and prediction drift")
    _delegated(drift_sub, "compare", "compare two local CSV or Parquet files, feature by feature",
               "KS, PSI and Jensen-Shannon for numeric features, chi-squared, PSI and JS for "
               "categorical ones, Benjamini-Hochberg across features.",
               add_compare_arguments, lambda args, project: run_compare(args))
    _delegated(drift_sub, "check",
               "run the drift check of a project's endpoint over a window of captured data",
               "The drift handler's code, from the CLI: reads the endpoint's data capture, "
               "compares it with the approved model's reference, writes JSON and HTML reports to "
               "the artifacts bucket and publishes the drift metrics.",
               add_check_arguments, run_check_command)

    shadow_sub = group("shadow", "shadow tests: a candidate beside production")
    _delegated(shadow_sub, "report",
               "compare the shadow variant with production over a window of captured traffic",
               "Joins both variants' captured answers by inference id, computes the agreement "
               "rate, the score distance (KS, Jensen-Shannon) and each variant's p95 latency, "
               "judges them against serving.shadow_* and writes the report to the artifacts bucket.",
               add_report_arguments, run_report_command)

    model_sub = group("model", "the model registry across environments")
    _delegated(model_sub, "promote",
               "copy an Approved package of the source environment into a production environment",
               "Copies the model artifact (under the target's KMS key), pins the image by digest, "
               "and creates the package in the target's group with promoted_from and the lineage, "
               "PendingManualApproval: an approver of the target approves it, then the deploy "
               "handler serves it through the guarded path.",
               add_promote_arguments, run_promote_command)

    quality_sub = group("quality", "model quality against ground truth")
    _delegated(quality_sub, "check",
               "run the model-quality check of a project's endpoint: predictions joined with labels",
               "The quality handler's code, from the CLI: joins the window's captured predictions "
               "with their ground-truth labels by inference id, compares the metrics with the "
               "served model's evaluation, writes the report and publishes MLOps/ModelQuality.",
               add_quality_arguments, run_quality_command)

    pipeline_sub = group("pipeline", "the training pipeline of a project")
    p = add("run", cmd_pipeline_run,
            "run a project's training pipeline (locally: the step scripts against the local AWS)",
            pipeline_sub)
    p.add_argument("--env", required=True, metavar="ENV")
    p.add_argument("--project", required=True, help="a project in environments/projects/")
    p.add_argument("--parameter", action="append", metavar="NAME=VALUE",
                   help="override a pipeline parameter, e.g. MinAccuracy=0.95 (repeatable)")
    p.add_argument("--no-loop", action="store_true",
                   help="locally: leave the registered package to `mlops local loop` (no gate/deploy now)")

    endpoint_sub = group("endpoint", "a project's real-time endpoint")
    _delegated(endpoint_sub, "invoke", "send one request to a project's endpoint (InvokeEndpoint)",
               "Sends a file or CSV rows through the SageMaker runtime API (the local AWS, or AWS) "
               "and prints the model's answer.", add_invoke_arguments, run_invoke_command)
    _delegated(sub, "traffic", "replay held-out rows of the project's dataset through its endpoint",
               "One CSV row per InvokeEndpoint, optionally shifted (--drift) or malformed "
               "(--malformed), with a progress bar; prints requests, errors by status and p50/p95 "
               "latency.", add_traffic_arguments, run_traffic_command)

    _delegated(sub, "demo", "the whole control loop on the local AWS, one live line per phase",
               "From an empty local AWS: local up, train v1, gate, canary deploy, labelled traffic, "
               "v1 known-good, a broken v2 caught by the canary, drifted traffic, a drift warning, "
               "a retrain on a new dataset version, v3 deployed and baked, a rollback drill that "
               "restores v1; then a summary table. Output of the commands: .mlops/logs/demo.log.",
               add_demo_arguments, run_demo_command)

    _delegated(sub, "cost", "what runs in an environment and is billed by the hour",
               "The environment's endpoints (each variant's instance type and count), the training "
               "and processing jobs in progress under its roles, and the EKS node groups; then the "
               "instances by type.", add_cost_arguments, run_cost_command)

    k8s_sub = group("k8s", "a project's model server on its environment's EKS cluster")
    _delegated(k8s_sub, "render", "write a project's EKS serving manifests (nothing applied)",
               "Namespace, ServiceAccount (the project's IRSA role), Deployment (the inference image, "
               "`serve`, readiness on /ping), Service, HorizontalPodAutoscaler and PodDisruptionBudget "
               "into cdktf.out/k8s/ENV/PROJECT/, for the model the project's endpoint serves or "
               "--model-data-url.", add_k8s_arguments, run_k8s_command)
    _delegated(k8s_sub, "apply", "render, then kubectl apply --server-side them to the cluster",
               "What `mlops deploy ENV` does for each project with serving.eks on: needs kubectl on PATH "
               "and a route to the cluster's private API endpoint (inside its VPC).",
               add_k8s_arguments, run_k8s_command)

    rbac_sub = group("rbac", "who may do what, proven by calls")
    _delegated(rbac_sub, "check", "one real API call per persona and permission, against the local AWS",
               "Each persona assumes its role and makes the calls of the RBAC matrix (read and write "
               "datasets, start the pipeline, register and approve a package, update and invoke the "
               "endpoint, read the MLflow secret, delete an audit object, put a policy on a persona "
               "role, stop the trail, create a role trusted by another account); prints allowed or "
               "denied against what is expected. Needs `mlops local up --enforce-iam`.",
               add_rbac_arguments, run_rbac_command)

    drill_sub = group("drill", "game-day drills of the control loop")
    _delegated(drill_sub, "rollback",
               "trip the endpoint's error-rate alarm and time the automatic rollback",
               "Drives the project's error-rate alarm to ALARM, waits for the rollback handler, "
               "verifies the endpoint serves the known-good config again, reports the seconds from "
               "alarm to restored traffic, and puts the alarm back. The rollback is real.",
               add_drill_arguments, run_drill_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return dispatch(args, Project.discover())


def dispatch(args: argparse.Namespace, project: Project) -> int:
    """Run a parsed command; its failures become an exit code and one line on stderr."""
    try:
        return args.func(args, project)
    except ConfigError as exc:
        for line in str(exc).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return 2
    except (TerraformError, LocalAwsError, PipelineRunError, EndpointWaitError, ImageError,
            LayerNotBuilt, LayerBuildError, K8sError, SigningProfileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
