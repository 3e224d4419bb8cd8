"""The Kubernetes manifests of one project's model server on its environment's EKS cluster.

A pure function of settings: `render(serving_target(env, project, model_data_url))` -> a list of
Kubernetes objects (plain dicts), in apply order. No cdktf, no AWS call: `mlops k8s render` and
`mlops deploy` write them to cdktf.out/k8s/<env>/<project>/, and the tests check them against the
Kubernetes API schemas (kubernetes-validate, offline).

The pod runs the project's inference image, the one its SageMaker endpoint runs (same repository,
same content-hash tag), under SageMaker's container contract:
- `serve` as the argument, HTTP on 8080, readiness and liveness on GET /ping with SageMaker's 2 s
  health-check timeout, SIGTERM then SIGKILL 30 s later (terminationGracePeriodSeconds);
- the model archive extracted to /opt/ml/model. SageMaker does that before it starts a container;
  here an init container does, from the same image (`python -m model_server.fetch_model`, boto3
  with the pod's IRSA role), into an emptyDir the server mounts read-only. Same image: nothing
  else to build, scan or pull through the cluster's private ECR endpoint (the cluster has no
  internet route, so a public CLI image could not be pulled).

Which model: the one whose S3 URL is given (`model_data_url`). `mlops deploy` passes the model the
project's SageMaker endpoint serves (the gated, approved, known-good one the control loop chose),
so both serve the same model; a new render rolls the Deployment when it changes. The URL must be
one of the project's model archives (ProjectNames.model_key_patterns): the IRSA role reads nothing
else.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from stacks.config import Eks, Environment
from stacks.images import environment_images
from stacks.naming import Naming, ProjectNames
from stacks.project_config import ProjectConfig

PORT = 8080
MODEL_DIR = "/opt/ml/model"
RUN_AS_USER = 10001  # the image's model-server user (pipelines/image/Dockerfile)
# SageMaker's health check: /ping answers within 2 s. Three misses take a pod out of the Service;
# the liveness probe waits longer before a restart, so a busy pod is not killed for being busy.
PING_TIMEOUT_SECONDS = 2
TERMINATION_GRACE_SECONDS = 30  # SIGTERM, then SIGKILL 30 s later, as SageMaker stops containers
# One pod's share of a node: the server runs this many workers (SAGEMAKER_MODEL_SERVER_WORKERS).
WORKERS = 2
RESOURCES = {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}}
CPU_TARGET_PERCENT = 70  # the HPA's target, of the CPU request
FIELD_MANAGER = "mlops"
ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"


class ManifestError(ValueError):
    """The settings cannot be rendered; the message names what is wrong."""


@dataclass(frozen=True)
class ServingTarget:
    environment: str
    project: str
    region: str
    namespace: str
    service_account: str
    role_arn: str  # the project's IRSA role (ProjectNames.eks_serving_role)
    image_uri: str
    model_data_url: str
    min_replicas: int
    max_replicas: int

    @property
    def labels(self) -> dict[str, str]:
        return {"app.kubernetes.io/name": "model-server", "app.kubernetes.io/instance": self.project,
                "app.kubernetes.io/part-of": "mlops-platform", "app.kubernetes.io/managed-by": FIELD_MANAGER,
                "mlops/environment": self.environment}

    @property
    def selector(self) -> dict[str, str]:
        return {"app.kubernetes.io/name": "model-server", "app.kubernetes.io/instance": self.project}


def service_account_name(project: str, eks: Eks) -> str:
    """The project's service account (`demo-model-server`): the subject its IRSA role trusts."""
    return f"{project}-{eks.serving_service_account}"


def serving_target(env: Environment, project: ProjectConfig, model_data_url: str) -> ServingTarget:
    if not env.eks.enabled:
        raise ManifestError(f"environments/{env.name}.yaml: eks.enabled is false: {env.name} has no "
                            "cluster to serve from")
    if not project.serving.eks:
        raise ManifestError(f"environments/projects/{project.name}.yaml: serving.eks is off in {env.name}")
    names = ProjectNames(Naming.of(env), project.name)
    check_model_url(model_data_url, names)
    (image,) = [i for i in environment_images(env) if i.purpose == "inference"]
    scaling = project.serving.autoscaling
    return ServingTarget(
        environment=env.name, project=project.name, region=env.region,
        namespace=env.eks.serving_namespace,
        service_account=service_account_name(project.name, env.eks),
        role_arn=names.naming.role_arn(names.eks_serving_role),
        image_uri=image.uri, model_data_url=model_data_url,
        min_replicas=scaling.min_instances, max_replicas=scaling.max_instances,
    )


def check_model_url(url: str, names: ProjectNames) -> None:
    prefix = f"s3://{names.artifacts_bucket}/"
    key = url[len(prefix):] if url.startswith(prefix) else None
    if key is None or not key.endswith(".tar.gz") or not any(
            fnmatch.fnmatchcase(key, pattern) for pattern in names.model_key_patterns):
        allowed = ", ".join(prefix + p for p in names.model_key_patterns)
        raise ManifestError(f"model {url}: not one of {names.project}'s model archives ({allowed}); "
                            "its EKS role may read only those")


def render(t: ServingTarget) -> list[dict[str, Any]]:
    """Namespace, ServiceAccount, Deployment, Service, HorizontalPodAutoscaler, PodDisruptionBudget."""
    return [_namespace(t), _service_account(t), _deployment(t), _service(t), _autoscaler(t),
            _disruption_budget(t)]


def _meta(t: ServingTarget, name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": t.namespace, "labels": t.labels, **extra}


def _namespace(t: ServingTarget) -> dict[str, Any]:
    # Pod Security Admission's `restricted` profile: the pods below meet it, anything laxer is refused.
    labels = {"app.kubernetes.io/part-of": "mlops-platform",
              **{f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn", "audit")}}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": t.namespace, "labels": labels}}


def _service_account(t: ServingTarget) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": _meta(t, t.service_account, annotations={
                ROLE_ANNOTATION: t.role_arn,
                # The regional STS endpoint: the cluster reaches STS through its VPC endpoint only.
                "eks.amazonaws.com/sts-regional-endpoints": "true"})}


def _container_security() -> dict[str, Any]:
    return {"runAsNonRoot": True, "runAsUser": RUN_AS_USER, "runAsGroup": RUN_AS_USER,
            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "privileged": False,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def _deployment(t: ServingTarget) -> dict[str, Any]:
    region_env = [{"name": "AWS_REGION", "value": t.region},
                  {"name": "AWS_DEFAULT_REGION", "value": t.region}]
    fetch = {
        "name": "fetch-model",
        "image": t.image_uri,
        "command": ["python", "-m", "model_server.fetch_model", t.model_data_url, MODEL_DIR],
        "env": region_env,
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"},
                      "limits": {"cpu": "1", "memory": "512Mi"}},
        "securityContext": _container_security(),
        "volumeMounts": [{"name": "model", "mountPath": MODEL_DIR}],
    }

    def probe(failures: int, period: int) -> dict[str, Any]:
        return {"httpGet": {"path": "/ping", "port": PORT}, "timeoutSeconds": PING_TIMEOUT_SECONDS,
                "periodSeconds": period, "failureThreshold": failures}

    server = {
        "name": "model-server",
        "image": t.image_uri,
        "args": ["serve"],
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "env": [*region_env, {"name": "SAGEMAKER_MODEL_SERVER_WORKERS", "value": str(WORKERS)},
                {"name": "SM_MODEL_DIR", "value": MODEL_DIR}],
        "readinessProbe": probe(failures=3, period=5),
        "livenessProbe": probe(failures=6, period=10),
        "startupProbe": probe(failures=60, period=2),  # up to 2 minutes to load the model
        "resources": RESOURCES,
        "securityContext": _container_security(),
        "volumeMounts": [{"name": "model", "mountPath": MODEL_DIR, "readOnly": True},
                         # A read-only root: the server's and joblib's scratch space.
                         {"name": "tmp", "mountPath": "/tmp"}],
    }
    pod = {
        "metadata": {"labels": t.labels, "annotations": {"mlops/model-data-url": t.model_data_url}},
        "spec": {
            "serviceAccountName": t.service_account,
            # The service account token stays mounted (the default): the pod identity webhook's
            # documented IRSA set-up is with it, and the role grants only this project's models.
            "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
            "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS_USER, "runAsGroup": RUN_AS_USER,
                                "fsGroup": RUN_AS_USER, "seccompProfile": {"type": "RuntimeDefault"}},
            "initContainers": [fetch],
            "containers": [server],
            "volumes": [{"name": "model", "emptyDir": {"sizeLimit": "2Gi"}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}],
            "topologySpreadConstraints": [{
                "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": t.selector}}],
        },
    }
    # No replicas: the HorizontalPodAutoscaler owns the count, and an apply must not reset it.
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(t, t.project),
            "spec": {"selector": {"matchLabels": t.selector}, "revisionHistoryLimit": 5,
                     "strategy": {"type": "RollingUpdate",
                                  "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                     "template": pod}}


def _service(t: ServingTarget) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(t, t.project),
            "spec": {"type": "ClusterIP", "selector": t.selector,
                     "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}}


def _autoscaler(t: ServingTarget) -> dict[str, Any]:
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": _meta(t, t.project),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": t.project},
                     "minReplicas": t.min_replicas, "maxReplicas": t.max_replicas,
                     "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                         "type": "Utilization", "averageUtilization": CPU_TARGET_PERCENT}}}]}}


def _disruption_budget(t: ServingTarget) -> dict[str, Any]:
    # At most one pod down for a node drain: never all of them, and never a drain blocked for good
    # (minAvailable 1 with one replica would block it).
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": _meta(t, t.project),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": t.selector}}}
