"""`mlops cost --env ENV [--json]`: what runs in an environment and is billed by the hour.

The environment's endpoints (names start with its prefix): each production and shadow variant's
instance type and current instance count, from DescribeEndpoint and its endpoint config; the
training and processing jobs in progress that run as one of the environment's roles (their role
path is the environment's); the EKS serving cluster's node groups when the environment enables
EKS. Then the instances by type. Prices are left to AWS's price list: the counts and types are
what a bill multiplies.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from typing import Any

from mlops.project import Project
from stacks.config import Environment
from stacks.naming import Naming


def add_cost_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", required=True, metavar="ENV")
    parser.add_argument("--json", action="store_true", help="print the inventory as JSON on stdout")


def _pages(client: Any, operation: str, key: str, **kwargs: Any) -> list[dict[str, Any]]:
    if client.can_paginate(operation):
        return [item for page in client.get_paginator(operation).paginate(**kwargs) for item in page[key]]
    return getattr(client, operation)(**kwargs)[key]


def endpoints(sagemaker: Any, prefix: str) -> list[dict[str, Any]]:
    found = []
    for summary in _pages(sagemaker, "list_endpoints", "Endpoints", NameContains=prefix):
        name = summary["EndpointName"]
        if not name.startswith(f"{prefix}-"):
            continue
        described = sagemaker.describe_endpoint(EndpointName=name)
        config = sagemaker.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
        types = {v["VariantName"]: v.get("InstanceType") for v in
                 [*config.get("ProductionVariants", []), *config.get("ShadowProductionVariants", [])]}
        variants = [
            {"variant": v["VariantName"], "shadow": shadow, "instance_type": types.get(v["VariantName"]),
             "instances": int(v.get("CurrentInstanceCount") or 0)}
            for shadow, key in ((False, "ProductionVariants"), (True, "ShadowProductionVariants"))
            for v in described.get(key, [])
        ]
        found.append({"endpoint": name, "status": described["EndpointStatus"],
                      "config": described["EndpointConfigName"], "variants": variants})
    return found


def jobs(sagemaker: Any, role_path: str) -> list[dict[str, Any]]:
    """Jobs in progress that run as one of the environment's roles (`:role<role_path>...`)."""
    found = []
    for kind, operation, key, describe, name_key, resources in (
        ("training", "list_training_jobs", "TrainingJobSummaries", "describe_training_job", "TrainingJobName",
         lambda d: d.get("ResourceConfig") or {}),
        ("processing", "list_processing_jobs", "ProcessingJobSummaries", "describe_processing_job",
         "ProcessingJobName", lambda d: (d.get("ProcessingResources") or {}).get("ClusterConfig") or {}),
    ):
        for summary in _pages(sagemaker, operation, key, StatusEquals="InProgress"):
            described = getattr(sagemaker, describe)(**{name_key: summary[name_key]})
            if f":role{role_path}" not in described.get("RoleArn", ""):
                continue
            cluster = resources(described)
            found.append({"kind": kind, "name": summary[name_key],
                          "instance_type": cluster.get("InstanceType"),
                          "instances": int(cluster.get("InstanceCount") or 0)})
    return found


def node_groups(eks: Any, cluster: str) -> list[dict[str, Any]]:
    found = []
    for name in _pages(eks, "list_nodegroups", "nodegroups", clusterName=cluster):
        group = eks.describe_nodegroup(clusterName=cluster, nodegroupName=name)["nodegroup"]
        for instance_type in group.get("instanceTypes") or ["?"]:
            found.append({"cluster": cluster, "node_group": name, "instance_type": instance_type,
                          "instances": int((group.get("scalingConfig") or {}).get("desiredSize") or 0)})
    return found


def inventory(env: Environment, client: Any) -> dict[str, Any]:
    naming = Naming.of(env)
    served = endpoints(client("sagemaker"), env.prefix)
    running = jobs(client("sagemaker"), naming.role_path)
    nodes = node_groups(client("eks"), naming.name("serving")) if env.eks.enabled else []
    counts: Counter[str] = Counter()
    for variant in (v for e in served for v in e["variants"]):
        counts[variant["instance_type"] or "?"] += variant["instances"]
    for item in (*running, *nodes):
        counts[item["instance_type"] or "?"] += item["instances"]
    return {"env": env.name, "region": env.region, "endpoints": served, "jobs": running,
            "node_groups": nodes, "instances_by_type": dict(sorted(counts.items())),
            "instances": sum(counts.values())}


def _human(report: dict[str, Any]) -> str:
    lines = [f"{report['env']} ({report['region']}): {report['instances']} instance(s) billed by the hour"]
    for endpoint in report["endpoints"]:
        for v in endpoint["variants"]:
            role = "shadow" if v["shadow"] else "variant"
            lines.append(f"  endpoint {endpoint['endpoint']} ({endpoint['status']}) {role} {v['variant']}: "
                         f"{v['instances']} x {v['instance_type']}")
    for job in report["jobs"]:
        lines.append(f"  {job['kind']} job {job['name']}: {job['instances']} x {job['instance_type']}")
    for group in report["node_groups"]:
        lines.append(f"  EKS {group['cluster']}/{group['node_group']}: {group['instances']} x "
                     f"{group['instance_type']}")
    if report["instances_by_type"]:
        lines.append("  by type: " + ", ".join(f"{t} x{n}" for t, n in report["instances_by_type"].items()))
    return "\n".join(lines)


def run_cost_command(args: argparse.Namespace, checkout: Project) -> int:
    from mlops.aws_clients import clients_for, reported

    env = checkout.environments([args.env])[args.env]
    report = reported(f"listing what runs in {env.name}", lambda: inventory(env, clients_for(checkout, env)))
    if report is None:
        return 1
    print(json.dumps(report, indent=2) if args.json else _human(report))
    return 0
