"""`mlops k8s render|apply` and the Kubernetes step of `mlops deploy`: a project's model server on
its environment's EKS cluster.

render  stacks/k8s_manifests.py's objects -> cdktf.out/k8s/<env>/<project>/NN-<kind>.yaml. The
        model is `--model-data-url`, or the one the project's SageMaker endpoint serves
        (DescribeEndpoint -> config -> model -> package -> ModelDataUrl): EKS serves what the
        control loop approved and deployed, and follows it on the next deploy.
apply   `kubectl apply --server-side` of that folder, with a kubeconfig written here for this run
        only (0600, removed after): the cluster's endpoint and CA from DescribeCluster, and a
        bearer token made as `aws eks get-token` makes it (a presigned STS GetCallerIdentity URL
        bound to the cluster's name, valid 15 minutes). No AWS CLI needed; the caller's identity
        needs an access entry on the cluster (the creator has one).
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from botocore.exceptions import BotoCoreError, ClientError

from mlops.deploy import say
from mlops.project import Project
from stacks.config import ConfigError, Environment
from stacks.k8s_manifests import FIELD_MANAGER, ManifestError, render, serving_target
from stacks.naming import Naming, ProjectNames
from stacks.project_config import PROJECTS_DIR

KUBECTL = "kubectl"
KUBECTL_INSTALL = "https://kubernetes.io/docs/tasks/tools/#kubectl"
REQUEST_TIMEOUT = "60s"
TOKEN_PREFIX = "k8s-aws-v1."
TOKEN_SECONDS = 60  # the presigned URL's own lifetime; EKS accepts the token for 15 minutes
# kubectl's words for "the API server did not answer" (DNS, routing, refused, TLS timeouts).
UNREACHABLE = ("unable to connect to the server", "dial tcp", "i/o timeout", "no such host",
               "connection refused", "tls handshake timeout", "context deadline exceeded",
               "no route to host", "network is unreachable")


class K8sError(RuntimeError):
    """kubectl is missing, the cluster cannot be reached or refused the manifests (one line)."""


@dataclass(frozen=True)
class Rendered:
    environment: str
    project: str
    model_data_url: str
    folder: Path
    files: list[Path]
    objects: list[dict[str, Any]]

    def payload(self) -> dict[str, Any]:
        return {"environment": self.environment, "project": self.project,
                "model_data_url": self.model_data_url, "dir": str(self.folder),
                "files": [str(f) for f in self.files],
                "objects": [f"{o['kind']}/{o['metadata']['name']}" for o in self.objects]}


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:  # kubectl reads anchors, people do not
        return True


def manifests_dir(project: Project, env_name: str, name: str) -> Path:
    return project.outdir / "k8s" / env_name / name


def eks_projects(project: Project, env_name: str) -> list[str]:
    """The projects that serve from EKS in this environment."""
    return sorted(name for name, per_env in project.projects().items()
                  if env_name in per_env and per_env[env_name].serving.eks)


def served_model_url(clients, env: Environment, name: str) -> str:
    from lambdas.shared.served_model import NothingServed, served_model_data_url

    endpoint = ProjectNames(Naming.of(env), name).endpoint
    try:
        return served_model_data_url(clients("sagemaker"), endpoint)
    except NothingServed as exc:
        raise K8sError(f"{name} in {env.name}: no model to serve on EKS ({exc}); deploy the project "
                       "stack first, or pass --model-data-url") from None
    except (ClientError, BotoCoreError) as exc:
        raise K8sError(f"{name} in {env.name}: reading what endpoint {endpoint} serves failed: "
                       f"{exc}") from None


def render_project(project: Project, env: Environment, name: str, model_data_url: str) -> Rendered:
    config = project.project(name, env.name)
    if not config.serving.eks:
        raise ConfigError([(str(PROJECTS_DIR / f"{name}.yaml"), "serving.eks",
                            f"is off in {env.name}: nothing to render for EKS")])
    try:
        objects = render(serving_target(env, config, model_data_url))
    except ManifestError as exc:
        raise ConfigError([("mlops k8s", "--model-data-url", str(exc))]) from None
    folder = manifests_dir(project, env.name, name)
    if folder.exists():
        shutil.rmtree(folder)  # an object no longer rendered must not be applied from an old file
    folder.mkdir(parents=True)
    files = []
    for n, obj in enumerate(objects):
        path = folder / f"{n:02d}-{obj['kind'].lower()}.yaml"
        path.write_text(yaml.dump(obj, Dumper=_NoAliases, sort_keys=False))
        files.append(path)
    return Rendered(env.name, name, model_data_url, folder, files, objects)


# The cluster -----------------------------------------------------------------------------------


def eks_token(session, cluster: str, region: str) -> str:
    """A bearer token for EKS, as `aws eks get-token` makes it: a presigned STS
    GetCallerIdentity URL carrying the cluster's name in the signed x-k8s-aws-id header."""
    from botocore.signers import RequestSigner

    sts = session.client("sts", region_name=region)
    signer = RequestSigner(sts.meta.service_model.service_id, region, "sts", "v4",
                           session.get_credentials(), session.events)
    query = "?Action=GetCallerIdentity&Version=2011-06-15"
    url = signer.generate_presigned_url(
        {"method": "GET", "url": f"{sts.meta.endpoint_url.rstrip('/')}/{query}",
         "body": {}, "headers": {"x-k8s-aws-id": cluster}, "context": {}},
        region_name=region, expires_in=TOKEN_SECONDS, operation_name="")
    return TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def kubeconfig(cluster: dict[str, Any], token: str) -> dict[str, Any]:
    name = cluster["name"]
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": name,
        "clusters": [{"name": name, "cluster": {
            "server": cluster["endpoint"],
            "certificate-authority-data": cluster["certificateAuthority"]["data"]}}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
    }


def find_kubectl() -> str:
    found = shutil.which(KUBECTL)
    if found is None:
        raise K8sError(f"`{KUBECTL}` was not found on PATH: install it ({KUBECTL_INSTALL}), version "
                       "within one minor of the cluster's, or deploy with --skip-k8s and apply "
                       "cdktf.out/k8s/<env>/<project>/ from a machine that has it")
    return found


def apply(env: Environment, rendered: list[Rendered]) -> list[dict[str, Any]]:
    """Server-side apply of each rendered folder; kubectl's one-line result per object."""
    import boto3

    kubectl = find_kubectl()
    name = Naming.of(env).eks_cluster
    session = boto3.session.Session(region_name=env.region)
    try:
        cluster = session.client("eks").describe_cluster(name=name)["cluster"]
    except Exception as exc:
        raise K8sError(f"cluster {name} in {env.name}: DescribeCluster failed ({exc}); is the platform "
                       "stack deployed?") from None
    config = kubeconfig(cluster, eks_token(session, name, env.region))
    results = []
    with tempfile.TemporaryDirectory(prefix="mlops-kube-") as tmp:
        path = Path(tmp) / "kubeconfig"
        path.touch(mode=0o600)
        path.write_text(yaml.safe_dump(config))
        for r in rendered:
            say(f"==> {r.project}: kubectl apply --server-side -f {r.folder} ({cluster['endpoint']})")
            done = subprocess.run(
                [kubectl, "--kubeconfig", str(path), f"--request-timeout={REQUEST_TIMEOUT}", "apply",
                 "--server-side", f"--field-manager={FIELD_MANAGER}", "-f", str(r.folder)],
                capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise K8sError(_failure(env, cluster, done.stderr or done.stdout))
            applied = [line.strip() for line in done.stdout.splitlines() if line.strip()]
            for line in applied:
                say(f"    {line}")
            results.append({**r.payload(), "applied": applied})
    return results


def _failure(env: Environment, cluster: dict[str, Any], output: str) -> str:
    # kubectl's last line is its verdict (client-side warnings and retries come before it).
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    said = lines[-1][:300] if lines else "(no output)"
    endpoint = cluster.get("endpoint", "?")
    if any(marker in output.lower() for marker in UNREACHABLE):
        if env.eks.public_endpoint:
            where = ("its public endpoint admits only eks.public_access_cidrs "
                     f"({', '.join(env.eks.public_access_cidrs)}): run from one of those networks")
        else:
            where = ("its API endpoint is private (eks.public_endpoint is false): run from inside "
                     "the cluster's VPC, e.g. a bastion or a CI runner in the VPC")
        return (f"kubectl could not reach the API server of {cluster['name']} at {endpoint}; {where}. "
                f"kubectl said: {said}")
    return f"kubectl apply on {cluster['name']} ({endpoint}) failed: {said}"


# Commands --------------------------------------------------------------------------------------


def deploy_step(project: Project, env: Environment, clients) -> list[dict[str, Any]]:
    """What `mlops deploy ENV` runs once the stacks are applied: every EKS-serving project of the
    environment, rendered with the model its endpoint serves, then applied."""
    names = eks_projects(project, env.name)
    if not env.eks.enabled or not names:
        return []
    rendered = [render_project(project, env, n, served_model_url(clients, env, n)) for n in names]
    return apply(env, rendered)


def add_k8s_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", required=True, metavar="ENV")
    parser.add_argument("--project", required=True, help="a project with serving.eks on in ENV")
    parser.add_argument("--model-data-url", metavar="S3_URL",
                        help="the model.tar.gz to serve (default: the one the project's endpoint serves)")
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")


def run_k8s_command(args: argparse.Namespace, project: Project) -> int:
    from mlops.aws_clients import clients_for

    env = project.environment(args.env)
    if not env.eks.enabled:
        raise ConfigError([(f"environments/{env.name}.yaml", "eks.enabled",
                            "is false: this environment has no cluster to serve from")])
    url = args.model_data_url or served_model_url(clients_for(project, env), env, args.project)
    rendered = render_project(project, env, args.project, url)
    if args.k8s_command == "render":
        payload = {**rendered.payload(), "manifests": rendered.objects}
        human = "\n".join(str(f) for f in rendered.files)
    else:
        (payload,) = apply(env, [rendered])
        human = "\n".join(payload["applied"])
    print(json.dumps(payload, indent=2) if args.json else human)
    return 0
