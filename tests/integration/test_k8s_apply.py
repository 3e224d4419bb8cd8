"""`mlops k8s apply` through the real CLI function: the cluster described by a moto server (its
EKS API), a kubeconfig written for the run, and a stand-in `kubectl` on PATH that records what it
was asked and answers as kubectl does (applied, or the private endpoint out of reach)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import yaml

from mlops.cli import build_parser, dispatch
from mlops.project import Project

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = "mlops-dev-serving"
BOOTSTRAP = "s3://mlops-dev-artifacts-111111111111/demo/bootstrap/0123456789abcdef/model.tar.gz"
RUN_MODEL = "s3://mlops-dev-artifacts-111111111111/demo/runs/exec-9/model/job-9/output/model.tar.gz"

# Records argv, the kubeconfig it was handed and the manifests of the -f folder, then answers
# like kubectl: one line per object, or (KUBECTL_FAIL) the error of an unreachable API server.
STAND_IN = """#!{python}
import json, os, pathlib, sys
argv = sys.argv[1:]
record = {{"argv": argv}}
for flag in ("--kubeconfig",):
    if flag in argv:
        record["kubeconfig"] = pathlib.Path(argv[argv.index(flag) + 1]).read_text()
        record["kubeconfig_mode"] = oct(os.stat(argv[argv.index(flag) + 1]).st_mode & 0o777)
folder = pathlib.Path(argv[argv.index("-f") + 1])
record["files"] = {{p.name: p.read_text() for p in sorted(folder.glob("*.yaml"))}}
pathlib.Path(os.environ["KUBECTL_RECORD"]).write_text(json.dumps(record))
if os.environ.get("KUBECTL_FAIL"):
    print("E1206 08:00:00.000000 memcache.go:265] couldn't get current server API group list",
          file=sys.stderr)
    print("Unable to connect to the server: dial tcp 10.40.37.12:443: i/o timeout", file=sys.stderr)
    sys.exit(1)
for name in sorted(record["files"]):
    print(name.split("-", 1)[1].removesuffix(".yaml") + "/x serverside-applied")
"""


@pytest.fixture
def aws_env(sdk_to_moto):
    """The process's AWS calls go to the moto server (conftest's sdk_to_moto), with dev's cluster."""
    eks = sdk_to_moto.client("eks", region="eu-west-1")
    cluster = eks.create_cluster(
        name=CLUSTER, roleArn="arn:aws:iam::123456789012:role/mlops-dev/mlops-dev-serving-cluster",
        resourcesVpcConfig={"subnetIds": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
                            "endpointPrivateAccess": True, "endpointPublicAccess": False})["cluster"]
    return cluster


@pytest.fixture
def kubectl(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "kubectl"
    script.write_text(STAND_IN.format(python=sys.executable))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    record = tmp_path / "kubectl.json"
    monkeypatch.setenv("KUBECTL_RECORD", str(record))
    return record


def _mlops(*argv: str) -> int:
    return dispatch(build_parser().parse_args(list(argv)), Project(ROOT))


def test_apply_writes_a_kubeconfig_for_the_cluster_and_applies_server_side(aws_env, kubectl, capsys):
    assert _mlops("k8s", "apply", "--env", "dev", "--project", "demo", "--model-data-url", RUN_MODEL,
                  "--json") == 0
    payload = json.loads(capsys.readouterr().out)
    record = json.loads(kubectl.read_text())
    argv = record["argv"]
    assert argv[argv.index("apply"):] == ["apply", "--server-side", "--field-manager=mlops", "-f",
                                          payload["dir"]]
    assert payload["dir"].endswith("k8s/dev/demo")
    assert payload["applied"] == [f"{kind}/x serverside-applied" for kind in (
        "namespace", "serviceaccount", "deployment", "service", "horizontalpodautoscaler",
        "poddisruptionbudget")]

    config = yaml.safe_load(record["kubeconfig"])
    assert record["kubeconfig_mode"] == "0o600"  # it holds a bearer token
    (cluster,) = config["clusters"]
    assert cluster["cluster"]["server"] == aws_env["endpoint"]
    assert cluster["cluster"]["certificate-authority-data"] == aws_env["certificateAuthority"]["data"]
    (user,) = config["users"]
    token = user["user"]["token"]
    assert token.startswith("k8s-aws-v1.")
    url = base64.urlsafe_b64decode(token.removeprefix("k8s-aws-v1.") + "==").decode()
    query = parse_qs(urlparse(url).query)
    assert query["Action"] == ["GetCallerIdentity"]
    assert "x-k8s-aws-id" in query["X-Amz-SignedHeaders"][0].split(";")
    assert not Path(argv[argv.index("--kubeconfig") + 1]).exists()  # removed after the run

    deployment = yaml.safe_load(record["files"]["02-deployment.yaml"])
    (fetch,) = deployment["spec"]["template"]["spec"]["initContainers"]
    assert RUN_MODEL in fetch["command"]


def test_without_a_url_eks_serves_what_the_endpoint_serves(aws_env, kubectl, moto_server, capsys):
    _served_bootstrap(moto_server)
    assert _mlops("k8s", "apply", "--env", "dev", "--project", "demo", "--json") == 0
    assert json.loads(capsys.readouterr().out)["model_data_url"] == BOOTSTRAP
    deployment = yaml.safe_load(json.loads(kubectl.read_text())["files"]["02-deployment.yaml"])
    assert BOOTSTRAP in deployment["spec"]["template"]["spec"]["initContainers"][0]["command"]


def test_an_unreachable_private_endpoint_is_one_clear_line(aws_env, kubectl, monkeypatch, capsys):
    monkeypatch.setenv("KUBECTL_FAIL", "1")
    assert _mlops("k8s", "apply", "--env", "dev", "--project", "demo", "--model-data-url", RUN_MODEL) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()[-1:]
    assert line.startswith(f"error: kubectl could not reach the API server of {CLUSTER} at "
                           f"{aws_env['endpoint']};")
    assert "private" in line and "inside the cluster's VPC" in line and "i/o timeout" in line


def test_no_kubectl_names_what_was_looked_for(aws_env, tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert shutil.which("kubectl") is None
    assert _mlops("k8s", "apply", "--env", "dev", "--project", "demo", "--model-data-url", RUN_MODEL) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: `kubectl` was not found on PATH: install it (https://kubernetes.io/")
    assert len(err.splitlines()) == 1


def test_render_needs_no_cluster_and_refuses_another_projects_model(aws_env, capsys):
    assert _mlops("k8s", "render", "--env", "dev", "--project", "demo", "--model-data-url",
                  BOOTSTRAP, "--json") == 0
    payload = json.loads(capsys.readouterr().out)
    assert [m["kind"] for m in payload["manifests"]] == [
        "Namespace", "ServiceAccount", "Deployment", "Service", "HorizontalPodAutoscaler",
        "PodDisruptionBudget"]
    assert Path(payload["files"][0]).name == "00-namespace.yaml"
    other = BOOTSTRAP.replace("/demo/", "/other/")
    assert _mlops("k8s", "render", "--env", "dev", "--project", "demo", "--model-data-url", other) == 2
    assert "not one of demo's model archives" in capsys.readouterr().err
    assert _mlops("k8s", "render", "--env", "staging", "--project", "demo", "--model-data-url",
                  BOOTSTRAP) == 2
    assert "eks.enabled: is false" in capsys.readouterr().err


def _served_bootstrap(moto_server) -> None:
    sm = moto_server.client("sagemaker", region="eu-west-1")
    sm.create_model(ModelName="mlops-dev-demo-bootstrap",
                    ExecutionRoleArn="arn:aws:iam::123456789012:role/mlops-dev/mlops-dev-demo-execution",
                    PrimaryContainer={"Image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/x:1",
                                      "ModelDataUrl": BOOTSTRAP})
    sm.create_endpoint_config(EndpointConfigName="mlops-dev-demo-1", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": "mlops-dev-demo-bootstrap",
        "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    sm.create_endpoint(EndpointName="mlops-dev-demo", EndpointConfigName="mlops-dev-demo-1")


def test_the_deploy_step_applies_every_eks_serving_project_after_the_stacks(aws_env, kubectl, moto_server):
    from mlops.deploy import Deployer

    _served_bootstrap(moto_server)
    project = Project(ROOT)
    dev = project.environments(["dev"])["dev"]
    deployer = Deployer(project)
    deployer._apply_k8s(dev)  # what deploy() runs once terraform has applied dev's stacks
    (applied,) = deployer.k8s_applied
    assert (applied["project"], applied["model_data_url"]) == ("demo", BOOTSTRAP)
    assert len(applied["applied"]) == 6 and kubectl.exists()


def test_skip_k8s_leaves_the_cluster_alone(aws_env, kubectl, capsys):
    from mlops.deploy import Deployer

    project = Project(ROOT)
    deployer = Deployer(project, skip_k8s=True)
    deployer._apply_k8s(project.environments(["dev"])["dev"])
    assert deployer.k8s_applied == [] and not kubectl.exists()
    assert "k8s: skipped (--skip-k8s); apply later with `mlops k8s apply --env dev --project P` for demo" \
        in capsys.readouterr().err
