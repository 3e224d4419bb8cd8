"""EKS serving of a project: the manifests (checked against the Kubernetes API schemas, offline,
with kubernetes-validate), the project's IRSA role in the synthesized stacks, and the config check
that refuses EKS serving where the environment has no cluster."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from stacks.config import ConfigError, load_environments
from stacks.images import image_tag
from stacks.k8s_manifests import ManifestError, render, serving_target
from stacks.project_config import load_projects

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = "s3://mlops-dev-artifacts-111111111111"
MODEL = f"{ARTIFACTS}/demo/runs/exec-1/model/job-1/output/model.tar.gz"
KINDS = ["Namespace", "ServiceAccount", "Deployment", "Service", "HorizontalPodAutoscaler",
         "PodDisruptionBudget"]


@pytest.fixture(scope="module")
def dev():
    return load_environments(ROOT)["dev"]


@pytest.fixture(scope="module")
def demo():
    return load_projects(ROOT)["demo"]["dev"]


@pytest.fixture(scope="module")
def objects(dev, demo) -> dict[str, dict]:
    rendered = render(serving_target(dev, demo, MODEL))
    assert [o["kind"] for o in rendered] == KINDS  # apply order: the namespace first
    return {o["kind"]: o for o in rendered}


def test_every_object_is_valid_against_the_clusters_kubernetes_schema(dev, objects):
    version = f"{dev.eks.kubernetes_version}.0"
    for obj in objects.values():
        # strict: a misspelt or misplaced field is an error, not silently dropped by the API server.
        assert kubernetes_validate.validate(obj, version, strict=True) == dev.eks.kubernetes_version


def test_the_validator_is_not_a_rubber_stamp(dev, objects):
    broken = json.loads(json.dumps(objects["Deployment"]))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] = [8080]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, f"{dev.eks.kubernetes_version}.0", strict=True)
    misplaced = json.loads(json.dumps(objects["Service"]))
    misplaced["spec"]["containerPort"] = 8080
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(misplaced, f"{dev.eks.kubernetes_version}.0", strict=True)


def test_service_account_names_the_projects_own_role(objects):
    account = objects["ServiceAccount"]["metadata"]
    assert account["name"] == "demo-model-server" and account["namespace"] == "model-serving"
    assert account["annotations"]["eks.amazonaws.com/role-arn"] == (
        "arn:aws:iam::111111111111:role/mlops-dev/mlops-dev-demo-eks-serving")
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "demo-model-server"


def test_the_server_runs_the_sagemaker_container_contract(objects):
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    registry = "111111111111.dkr.ecr.eu-west-1.amazonaws.com"
    assert server["image"] == f"{registry}/mlops-dev-inference:{image_tag()}"
    assert server["args"] == ["serve"] and "command" not in server  # the image's `serve` entry
    assert server["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert server[probe]["httpGet"] == {"path": "/ping", "port": 8080}
        assert server[probe]["timeoutSeconds"] == 2  # SageMaker's /ping timeout
    assert pod["terminationGracePeriodSeconds"] == 30  # SIGTERM, SIGKILL 30 s later
    assert {"name": "model", "mountPath": "/opt/ml/model", "readOnly": True} in server["volumeMounts"]
    assert set(server["resources"]) == {"requests", "limits"}


def test_the_model_reaches_opt_ml_model_from_the_same_image(objects):
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    (fetch,) = pod["initContainers"]
    assert fetch["image"] == pod["containers"][0]["image"]
    assert fetch["command"] == ["python", "-m", "model_server.fetch_model", MODEL, "/opt/ml/model"]
    assert fetch["volumeMounts"] == [{"name": "model", "mountPath": "/opt/ml/model"}]
    assert {"name": "model", "emptyDir": {"sizeLimit": "2Gi"}} in pod["volumes"]
    # A new model changes the pod template: the Deployment rolls.
    assert objects["Deployment"]["spec"]["template"]["metadata"]["annotations"] == {
        "mlops/model-data-url": MODEL}
    # The module the init container runs is in the image (the Dockerfile copies model_server/).
    assert (ROOT / "pipelines" / "model_server" / "fetch_model.py").is_file()
    requirements = (ROOT / "pipelines" / "image" / "requirements-serving.txt").read_text()
    assert "boto3==" in requirements


def test_pods_run_locked_down(objects):
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in [*pod["initContainers"], *pod["containers"]]:
        ctx = container["securityContext"]
        assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] == 10001
        assert ctx["allowPrivilegeEscalation"] is False and ctx["readOnlyRootFilesystem"] is True
        assert ctx["capabilities"] == {"drop": ["ALL"]}
        assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    labels = objects["Namespace"]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_service_autoscaler_and_disruption_budget(demo, objects):
    selector = objects["Deployment"]["spec"]["selector"]["matchLabels"]
    assert objects["Deployment"]["spec"]["template"]["metadata"]["labels"].items() >= selector.items()
    assert "replicas" not in objects["Deployment"]["spec"]  # the autoscaler owns the count
    service = objects["Service"]["spec"]
    assert service["type"] == "ClusterIP" and service["selector"] == selector
    assert service["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    hpa = objects["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "demo"}
    scaling = demo.serving.autoscaling
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (scaling.min_instances,
                                                                       scaling.max_instances)
    pdb = objects["PodDisruptionBudget"]
    assert pdb["apiVersion"] == "policy/v1" and pdb["spec"]["selector"]["matchLabels"] == selector


@pytest.mark.parametrize("url", [
    f"{ARTIFACTS}/other/runs/exec-1/model/job-1/output/model.tar.gz",  # another project's
    f"{ARTIFACTS}/demo/pipeline/abc/code/train.py",  # the project's code, not a model
    "s3://mlops-staging-artifacts-222222222222/demo/bootstrap/abc/model.tar.gz",  # another bucket
    f"{ARTIFACTS}/demo/bootstrap/abc/model.zip",
])
def test_only_the_projects_own_model_archives_are_served(dev, demo, url):
    with pytest.raises(ManifestError, match="not one of demo's model archives"):
        serving_target(dev, demo, url)


def test_a_bootstrap_model_is_served_too(dev, demo):
    url = f"{ARTIFACTS}/demo/bootstrap/0123456789abcdef/model.tar.gz"
    assert serving_target(dev, demo, url).model_data_url == url


# The IRSA role in the synthesized stacks ------------------------------------------------------


def _resources(doc: dict, rtype: str) -> dict[str, dict]:
    return doc.get("resource", {}).get(rtype, {})


def test_the_project_role_trusts_only_its_service_account_on_the_clusters_provider(synth_all):
    doc = synth_all.json("project-demo-dev")
    (cluster,) = doc["data"]["aws_eks_cluster"].values()
    assert cluster["name"] == "mlops-dev-serving"  # the platform stack's cluster, found by name
    (role,) = [r for r in _resources(doc, "aws_iam_role").values()
               if r["name"] == "mlops-dev-demo-eks-serving"]
    assert role["path"] == "/mlops-dev/"
    assert role["permissions_boundary"] == (
        "arn:aws:iam::111111111111:policy/mlops-dev/mlops-dev-permissions-boundary")
    (trust,) = json.loads(role["assume_role_policy"])["Statement"]
    # The issuer without https://, as IAM keys the conditions and names the provider.
    assert doc["locals"]["eks_oidc_issuer"] == (
        '${replace(data.aws_eks_cluster.eks_cluster.identity[0].oidc[0].issuer, "https://", "")}')
    issuer = "${local.eks_oidc_issuer}"
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert trust["Principal"] == {"Federated": f"arn:aws:iam::111111111111:oidc-provider/{issuer}"}
    assert trust["Condition"] == {"StringEquals": {
        f"{issuer}:sub": "system:serviceaccount:model-serving:demo-model-server",
        f"{issuer}:aud": "sts.amazonaws.com"}}


def test_the_project_role_reads_only_its_own_model_archives(synth_all):
    doc = synth_all.json("project-demo-dev")
    (policy,) = [p for p in _resources(doc, "aws_iam_role_policy").values()
                 if p["name"] == "mlops-dev-demo-eks-serving-permissions"]
    statements = {s["Sid"]: s for s in json.loads(policy["policy"])["Statement"]}
    assert set(statements) == {"ReadModelArtifacts", "DecryptModelArtifacts"}
    read = statements["ReadModelArtifacts"]
    bucket = "arn:aws:s3:::mlops-dev-artifacts-111111111111"
    assert read["Action"] == "s3:GetObject"
    # The pipeline's archives, the bootstrap model and the archives promoted from another environment.
    assert read["Resource"] == [f"{bucket}/demo/runs/*/model/*", f"{bucket}/demo/bootstrap/*",
                                f"{bucket}/demo/promoted/*.tar.gz"]
    decrypt = statements["DecryptModelArtifacts"]
    assert decrypt["Action"] == "kms:Decrypt"
    assert decrypt["Resource"] == "${data.aws_kms_alias.platform_key.target_key_arn}"
    assert decrypt["Condition"] == {"StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}}
    outputs = doc["output"]
    assert outputs["eks_namespace"]["value"] == "model-serving"
    assert outputs["eks_service_account"]["value"] == "demo-model-server"


def test_no_eks_role_where_the_project_does_not_serve_from_eks(synth_all):
    for stack in ("project-demo-local", "project-demo-staging", "project-demo-prod"):
        doc = synth_all.json(stack)
        assert "aws_eks_cluster" not in doc.get("data", {})
        assert not [r for r in _resources(doc, "aws_iam_role").values() if r["name"].endswith("-eks-serving")]


def test_the_platform_exports_the_oidc_provider_and_has_no_shared_serving_role(synth_all):
    doc = synth_all.json("platform-dev")
    (provider_id,) = _resources(doc, "aws_iam_openid_connect_provider")
    provider = f"${{aws_iam_openid_connect_provider.{provider_id}"
    assert doc["output"]["eks_oidc_provider_arn"]["value"] == f"{provider}.arn}}"
    assert doc["output"]["eks_oidc_issuer"]["value"] == f"{provider}.url}}"
    # One role reading every project's models would defeat the per-project roles.
    trusted_by_web_identity = [
        r["name"] for r in _resources(doc, "aws_iam_role").values()
        if "AssumeRoleWithWebIdentity" in r["assume_role_policy"]]
    assert trusted_by_web_identity == []


# The config check -----------------------------------------------------------------------------


def _checkout(tmp_path: Path, demo_yaml: str) -> Path:
    shutil.copytree(ROOT / "environments", tmp_path / "environments")
    (tmp_path / "environments" / "projects" / "demo.yaml").write_text(demo_yaml)
    return tmp_path


def test_eks_serving_where_the_cluster_is_off_names_the_file_and_field(tmp_path):
    data = yaml.safe_load((ROOT / "environments" / "projects" / "demo.yaml").read_text())
    data["overrides"]["staging"]["serving"]["eks"] = True
    root = _checkout(tmp_path, yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        load_projects(root)
    (problem,) = err.value.problems
    assert problem[:2] == ("environments/projects/demo.yaml", "overrides.staging.serving.eks")
    assert "environments/staging.yaml: eks.enabled is false" in problem[2]


def test_eks_serving_in_the_base_settings_names_serving_eks(tmp_path):
    data = yaml.safe_load((ROOT / "environments" / "projects" / "demo.yaml").read_text())
    data["serving"]["eks"] = True  # every environment, and only dev has a cluster
    root = _checkout(tmp_path, yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        load_projects(root)
    where = sorted((field, reason.split(",")[0]) for _, field, reason in err.value.problems)
    without_cluster = ("local", "localprod", "prod", "staging")
    assert where == [("serving.eks", f"EKS serving in {env}") for env in without_cluster]


# Which model: what the endpoint serves ---------------------------------------------------------


class _SageMaker:
    """DescribeEndpoint -> DescribeEndpointConfig -> DescribeModel -> DescribeModelPackage, in
    SageMaker's response shapes."""

    def __init__(self, container: dict):
        self.container = container

    def describe_endpoint(self, EndpointName):
        return {"EndpointName": EndpointName, "EndpointConfigName": "cfg-2"}

    def describe_endpoint_config(self, EndpointConfigName):
        return {"ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "model-2"}]}

    def describe_model(self, ModelName):
        return {"ModelName": ModelName, "PrimaryContainer": self.container}

    def describe_model_package(self, ModelPackageName):
        return {"ModelPackageArn": ModelPackageName, "InferenceSpecification": {
            "Containers": [{"Image": "img", "ModelDataUrl": MODEL}]}}


def test_the_served_model_is_the_packages_or_the_bootstrap_models_own():
    from lambdas.shared.served_model import NothingServed, served_model_data_url

    package = "arn:aws:sagemaker:eu-west-1:111111111111:model-package/mlops-dev-demo/3"
    assert served_model_data_url(_SageMaker({"ModelPackageName": package}), "mlops-dev-demo") == MODEL
    bootstrap = f"{ARTIFACTS}/demo/bootstrap/0123456789abcdef/model.tar.gz"
    assert served_model_data_url(_SageMaker({"Image": "img", "ModelDataUrl": bootstrap}),
                                 "mlops-dev-demo") == bootstrap
    with pytest.raises(NothingServed, match="names no ModelDataUrl"):
        served_model_data_url(_SageMaker({"Image": "img"}), "mlops-dev-demo")
