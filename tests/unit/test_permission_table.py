"""Permissions derived from the calls: each role's code, its table row by row, its synthesized policy.

(a) every AWS call extracted from the code a role runs is a row of its table, and every `calls` row
    is made by that code; (b) the role's synthesized policies allow each row by the named
    statement, the permissions boundary lets it through and no unconditional deny stops it;
(c) the role's policies allow no action the table does not list (wildcards expanded with
    botocore's operation lists); (d) its Deny statements, its AWS managed policies and its
    permissions boundary are the table's; a role exists exactly where the table says.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest

from mlops.aws_calls import CLIENTS, Extraction, extract, known_actions, stale_annotations
from stacks.config import Environment
from stacks.constructs.github_ci_roles import MANAGED
from stacks.permission_table import DRIFT_BATCH_SCHEDULE, TABLES, RoleTable, markdown
from stacks.policy import listed, matches
from stacks.project_config import load_projects

ROOT = Path(__file__).resolve().parents[2]
ENVS = ("local", "dev", "staging", "prod")


@cache
def extraction(title: str) -> Extraction:
    table = TABLES[title]
    return extract(table.runs, table.within)


def _ref(value: str) -> str:
    """`${aws_iam_role.X.arn}` -> X."""
    return value.removeprefix("${").removesuffix("}").split(".")[1]


def attached(synth_all, stack: str, role_id: str) -> set[str]:
    """The managed policy ARNs attached to the role."""
    doc = synth_all.json(stack)["resource"]
    return {a["policy_arn"] for a in doc.get("aws_iam_role_policy_attachment", {}).values()
            if _ref(a["role"]) == role_id}


def role_statements(synth_all, stack: str, role_id: str) -> tuple[list[dict], list[dict] | None]:
    """(the role's own statements: its inline policies; its boundary's, None without one)."""
    doc = synth_all.json(stack)["resource"]
    role = doc["aws_iam_role"][role_id]
    own = [st for p in doc.get("aws_iam_role_policy", {}).values() if _ref(p["role"]) == role_id
           for st in json.loads(p["policy"])["Statement"]]
    if not role.get("permissions_boundary"):
        return own, None
    env = stack.rsplit("-", 1)[1]
    boundary_name = role["permissions_boundary"].rsplit("/", 1)[1]
    platform = synth_all.json(f"platform-{env}")["resource"]["aws_iam_policy"]
    (boundary,) = [json.loads(p["policy"])["Statement"] for p in platform.values()
                   if p["name"] == boundary_name]
    return own, boundary


def stack_of(table: RoleTable, env: str) -> str:
    return {"platform": f"platform-{env}", "project": f"project-demo-{env}",
            "bootstrap": f"bootstrap-{env}"}[table.stack_kind]


def role_name(table: RoleTable, env: str) -> str:
    return table.role.replace("<base>", f"mlops-{env}-demo").replace("<prefix>", f"mlops-{env}")


def role_id(synth_all, stack: str, table: RoleTable) -> str | None:
    """The role `table.role` names in `stack` (<base>: mlops-<env>-demo, <prefix>: mlops-<env>)."""
    if stack not in synth_all.stacks:
        return None
    name = role_name(table, stack.rsplit("-", 1)[1])
    found = [k for k, r in synth_all.json(stack)["resource"]["aws_iam_role"].items() if r["name"] == name]
    return found[0] if found else None


def expected(table: RoleTable, env: Environment) -> bool:
    """Whether the table's role exists in `env`'s stacks (the demo project's, for a project role)."""
    if table.present_in is not None and env not in table.present_in:
        return False
    return table.present_for is None or table.present_for.holds(load_projects(ROOT)["demo"][env.name])


def function_role(synth_all, stack: str, name: str) -> str:
    doc = synth_all.json(stack)["resource"]
    (fn,) = [f for f in doc["aws_lambda_function"].values() if f["function_name"].endswith(f"-{name}")]
    return _ref(fn["role"])


def _unconditional_deny(statements: list[dict], action: str) -> list[str]:
    return [st.get("Sid", "?") for st in statements if st["Effect"] == "Deny" and "Condition" not in st
            and listed(st.get("Resource")) == ["*"] and any(matches(p, action) for p in listed(st["Action"]))]


def check_role(table: RoleTable, own: list[dict], boundary: list[dict] | None, where: str,
               env: Environment) -> list[str]:
    problems = []
    if (boundary is not None) != table.bounded:
        problems.append(f"{where}: the table says {'a' if table.bounded else 'no'} permissions boundary")
    boundary = [] if boundary is None else boundary
    denies = {st.get("Sid", "?") for st in own if st["Effect"] == "Deny"}
    if denies != set(table.denies):
        problems.append(f"{where}: Deny statements {sorted(denies)}, the table lists {sorted(table.denies)}")
    by_sid = {st["Sid"]: st for st in own}
    for action, sid in table.actions.items():
        if env in table.absent_in.get(action, ()):
            if allowed := [st["Sid"] for st in own if st["Effect"] == "Allow"
                           and any(matches(p, action) for p in listed(st["Action"]))
                           and st["Sid"] == sid]:
                problems.append(f"{where}: {action}: the table says absent in {env.name}, "
                                f"{allowed} allows it")
            continue
        if env in table.denied_in.get(action, ()):
            if not _unconditional_deny(own, action):
                problems.append(f"{where}: {action}: the table says denied in {env.name}, no statement "
                                "denies it")
            continue
        st = by_sid.get(sid)
        if st is None or st["Effect"] != "Allow" or not any(matches(p, action) for p in listed(st["Action"])):
            problems.append(f"{where}: {action}: statement {sid} does not allow it")
        if table.bounded and not any(s["Effect"] == "Allow" and any(matches(p, action)
                                                                   for p in listed(s["Action"]))
                                     for s in boundary):
            problems.append(f"{where}: {action}: the permissions boundary does not let it through")
        if denied := _unconditional_deny(own + boundary, action):
            problems.append(f"{where}: {action}: denied by {denied}")
    for st in own:
        if st["Effect"] != "Allow" or st["Sid"] in table.wildcards:
            continue
        for pattern in listed(st["Action"]):
            expanded = known_actions(pattern) if "*" in pattern or "?" in pattern else {pattern}
            if not expanded:
                problems.append(f"{where}: {st['Sid']} grants {pattern}, which matches no known action")
            listed_actions = {a.lower() for a in table.actions}
            problems += [f"{where}: {st['Sid']} allows {a}, which the table does not list"
                         for a in sorted(expanded) if a.lower() not in listed_actions]
    return problems


@pytest.mark.parametrize("title", sorted(TABLES))
def test_the_table_lists_exactly_the_calls_of_the_role_code(title):
    table, found, name = TABLES[title], extraction(title), title
    where = {c.action: f"{c.module}:{c.line}" for c in found.calls}
    missing = {a: where[a] for a in found.actions - set(table.calls)}
    assert not missing, f"calls the table of {name} lacks (add them with their statement): {missing}"
    stale = set(table.calls) - found.actions
    assert not stale, f"rows of {name} its code does not call (remove them, or move to `also`): {stale}"
    assert not set(table.also) & found.actions, "a call the code makes belongs in `calls`"


def test_client_annotations_are_used():
    for title in TABLES:
        extraction(title)
    assert not stale_annotations([extraction(t) for t in TABLES], CLIENTS)


@pytest.mark.parametrize("env", ENVS)
def test_role_policies_allow_each_row_and_nothing_else(synth_all, environments, env):
    problems = []
    for title, table in TABLES.items():
        stack = stack_of(table, env)
        role = role_id(synth_all, stack, table)
        if not expected(table, environments[env]):
            assert role is None, f"{stack}: role {table.role} for {title}, which the table says is not there"
            continue
        assert role, f"{stack}: no role {table.role} for {title}"
        own, boundary = role_statements(synth_all, stack, role)
        problems += check_role(table, own, boundary, f"{stack} {title}", environments[env])
        managed = attached(synth_all, stack, role)
        if managed != {MANAGED + name for name in table.managed}:
            problems.append(f"{stack} {title}: attaches {sorted(managed)}, the table lists "
                            f"{sorted(table.managed)}")
    assert not problems, "\n".join(problems)


def test_the_checks_flag_an_unlisted_deny_an_unlisted_action_and_a_missing_boundary(environments):
    """The checks of the service-role tables can fail: a stray Deny, an action no row lists, a
    boundary the table does not say."""
    table = TABLES["CloudTrail to CloudWatch Logs"]
    writes = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DeleteLogGroup"]
    own = [{"Sid": "WriteTrailEvents", "Effect": "Allow", "Action": writes, "Resource": "*"},
           {"Sid": "Stray", "Effect": "Deny", "Action": "s3:*", "Resource": "*"}]
    problems = check_role(table, own, None, "t", environments["dev"])
    assert any("permissions boundary" in p for p in problems), problems
    assert any("Deny statements ['Stray']" in p for p in problems), problems
    assert any("logs:DeleteLogGroup, which the table does not list" in p for p in problems), problems


def test_every_role_of_the_stacks_has_a_table(synth_all, environments):
    """No role the stacks make goes without a table (nor a table without its role)."""
    tabled = {(stack_of(t, env), role_name(t, env))
              for env in ENVS for t in TABLES.values() if expected(t, environments[env])}
    made = {(stack, role["name"]) for env in ENVS for stack in (f"platform-{env}", f"project-demo-{env}",
                                                                f"bootstrap-{env}")
            if stack in synth_all.stacks
            for role in synth_all.json(stack)["resource"].get("aws_iam_role", {}).values()}
    assert made == tabled, {"without a table": sorted(made - tabled), "without a role": sorted(tabled - made)}


def test_the_drift_batch_schedule_role_where_a_project_runs_drift_as_a_job(synth_all, environments, tmp_path):
    """The demo project keeps `drift.batch` off: one synth of dev with it on shows its role."""
    from stacks.app import synth  # the binding is loaded already (synth_all)
    from stacks.project_config import DriftBatch

    demo = load_projects(ROOT)["demo"]["dev"]
    drift = demo.drift.model_copy(update={"batch": DriftBatch(enabled=True)})
    infos = synth({"dev": environments["dev"]}, tmp_path / "out", tmp_path / "state",
                  {"demo": {"dev": demo.model_copy(update={"drift": drift})}})
    dirs = {i.name: i.dir for i in infos}
    batch = type(synth_all)(tmp_path / "out", tmp_path / "state", dirs)
    role = role_id(batch, "project-demo-dev", DRIFT_BATCH_SCHEDULE)
    assert role, "no drift batch schedule role"
    own, boundary = role_statements(batch, "project-demo-dev", role)
    assert not check_role(DRIFT_BATCH_SCHEDULE, own, boundary, "drift batch", environments["dev"])
    (started,) = {r for st in own for r in listed(st["Resource"])}
    assert started == "${aws_sagemaker_pipeline.drift_pipeline.arn}", started


def test_put_metric_data_is_scoped_by_namespace_everywhere(synth_all):
    """PutMetricData has no resource type: Resource "*" and the cloudwatch:namespace condition."""
    for stack in synth_all.stacks:
        for policy in synth_all.json(stack)["resource"].get("aws_iam_role_policy", {}).values():
            for st in json.loads(policy["policy"])["Statement"]:
                if st["Effect"] == "Allow" and any(matches(p, "cloudwatch:PutMetricData")
                                                   for p in listed(st["Action"])):
                    assert listed(st["Resource"]) == ["*"], (stack, policy["name"], st["Sid"])
                    keys = {k for values in st.get("Condition", {}).values() for k in values}
                    assert keys == {"cloudwatch:namespace"}, (stack, policy["name"], st["Sid"])


def test_endpoint_creation_may_tag_the_endpoint(synth_all):
    """CreateEndpoint sends Tags: SageMaker authorizes them as AddTags on the new endpoint."""
    for env in ENVS:
        stack = f"project-demo-{env}"
        for name in ("deploy", "rollback"):
            own, _ = role_statements(synth_all, stack, function_role(synth_all, stack, name))
            endpoint = next(st for st in own if st["Sid"] == "UpdateEndpoint")["Resource"]
            tagging = [st for st in own if "sagemaker:AddTags" in listed(st["Action"])
                       and endpoint in listed(st["Resource"])]
            assert tagging, f"{stack} {name}: no sagemaker:AddTags on {endpoint}"


def test_the_drift_check_reads_only_its_own_model_registry(synth_all):
    for env in ENVS:
        stack, group = f"project-demo-{env}", f"mlops-{env}-demo"
        own, _ = role_statements(synth_all, stack, function_role(synth_all, stack, "drift"))
        registry = [r for st in own for r in listed(st["Resource"]) if ":model-package" in r]
        assert registry, "the drift check reads its served model's package"
        own_group = (f":model-package/{group}/*", f":model-package-group/{group}")
        assert all(r.endswith(own_group) for r in registry), registry


def test_the_namespaces_the_roles_publish_to_are_the_alarms(synth_all):
    """The namespace conditions name what the alarms watch (a typo would pass every other test)."""
    from stacks.personas import CHECK_NAMESPACES
    from stacks.project_permissions import EXPLAINABILITY_NAMESPACE

    alarms = synth_all.json("project-demo-dev")["resource"]["aws_cloudwatch_metric_alarm"].values()
    watched = {a.get("namespace") for a in alarms} | {
        q["metric"]["namespace"] for a in alarms for q in a.get("metric_query", []) if q.get("metric")}
    assert {*CHECK_NAMESPACES, EXPLAINABILITY_NAMESPACE} <= watched, watched


def test_the_rendered_tables_are_current():
    assert (ROOT / "docs" / "permissions.md").read_text() == markdown(), (
        "docs/permissions.md is stale: python -m stacks.permission_table > docs/permissions.md")
