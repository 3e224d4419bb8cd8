"""The synthesized Terraform JSON of every environment carries the secure defaults."""

from __future__ import annotations

import fnmatch
import json
import re

import pytest

from stacks import moto_gaps

ENVS = ("local", "localprod", "dev", "staging", "prod")


def resources(doc: dict, rtype: str) -> dict[str, dict]:
    return doc.get("resource", {}).get(rtype, {})


def referenced(doc: dict, value: str, rtype: str) -> dict:
    """The resource a `${rtype.name.attribute}` reference names."""
    kind, name, _attribute = value.removeprefix("${").removesuffix("}").split(".")
    assert kind == rtype, value
    return resources(doc, rtype)[name]


def ref_id(rtype: str, name: str) -> str:
    return f"${{{rtype}.{name}.id}}"


def bucket_settings(doc: dict, rtype: str) -> dict[str, dict]:
    """Settings resources keyed by the bucket resource they point at."""
    out = {}
    for body in resources(doc, rtype).values():
        match = re.fullmatch(r"\$\{aws_s3_bucket\.([^.]+)\.(id|bucket)\}", body["bucket"])
        assert match, f"{rtype} must reference its bucket resource, got {body['bucket']}"
        out[match.group(1)] = body
    return out


@pytest.fixture(scope="module", params=ENVS)
def platform(request, synth_all):
    return request.param, synth_all.json(f"platform-{request.param}")


def test_every_stack_name_carries_its_environment(synth_all, environments):
    for name in synth_all.stacks:
        assert any(env in name.split("-") for env in environments), name
    assert {f"platform-{e}" for e in ENVS} <= set(synth_all.stacks)
    for name, stack_dir in synth_all.stacks.items():
        assert (stack_dir / "cdk.tf.json").is_file()
        assert stack_dir.name == name


def test_provider_is_pinned_to_the_mirrored_version(synth_all):
    for name in synth_all.stacks:
        req = synth_all.json(name)["terraform"]["required_providers"]
        assert req == {"aws": {"source": "aws", "version": "5.100.0"}}, name


def test_every_bucket_is_encrypted_versioned_blocked_and_tls_only(platform):
    _env, doc = platform
    buckets = resources(doc, "aws_s3_bucket")
    assert len(buckets) == 5
    versioning = bucket_settings(doc, "aws_s3_bucket_versioning")
    encryption = bucket_settings(doc, "aws_s3_bucket_server_side_encryption_configuration")
    blocks = bucket_settings(doc, "aws_s3_bucket_public_access_block")
    policies = bucket_settings(doc, "aws_s3_bucket_policy")
    lifecycles = bucket_settings(doc, "aws_s3_bucket_lifecycle_configuration")
    ownership = bucket_settings(doc, "aws_s3_bucket_ownership_controls")
    key_ref = "${aws_kms_key." + next(iter(resources(doc, "aws_kms_key"))) + ".arn}"
    for rid, bucket in buckets.items():
        name = bucket["bucket"]
        assert versioning[rid]["versioning_configuration"]["status"] == "Enabled", name
        sse = encryption[rid]["rule"][0]["apply_server_side_encryption_by_default"]
        if name.endswith(f"access-logs-{bucket_account(name)}"):
            # The one documented exception: S3 cannot deliver access logs into SSE-KMS.
            assert sse == {"sse_algorithm": "AES256"}, name
        else:
            assert sse == {"sse_algorithm": "aws:kms", "kms_master_key_id": key_ref}, name
            assert encryption[rid]["rule"][0]["bucket_key_enabled"] is True
        assert all(
            blocks[rid][k] is True
            for k in ("block_public_acls", "block_public_policy", "ignore_public_acls",
                      "restrict_public_buckets")
        ), name
        assert ownership[rid]["rule"]["object_ownership"] == "BucketOwnerEnforced"
        policy = json.loads(policies[rid]["policy"])
        tls = [s for s in policy["Statement"] if s["Sid"] == "DenyInsecureTransport"]
        assert tls == [{
            "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": {"AWS": "*"},
            "Action": "s3:*", "Resource": [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }], name
        rules = {r["id"]: r for r in lifecycles[rid]["rule"]}
        assert "expire-noncurrent-versions" in rules, name


def bucket_account(name: str) -> str:
    return name.rsplit("-", 1)[1]


def test_access_logs_of_every_bucket_go_to_the_log_bucket(platform):
    _env, doc = platform
    buckets = resources(doc, "aws_s3_bucket")
    logging = bucket_settings(doc, "aws_s3_bucket_logging")
    log_bucket = next(b["bucket"] for b in buckets.values() if "-access-logs-" in b["bucket"])
    for rid, bucket in buckets.items():
        if bucket["bucket"] == log_bucket:
            assert rid not in logging  # a log bucket logging into itself would loop
            continue
        assert logging[rid]["target_bucket"] == log_bucket, bucket["bucket"]


def test_capture_retention_comes_from_config(platform, environments):
    env, doc = platform
    lifecycles = bucket_settings(doc, "aws_s3_bucket_lifecycle_configuration")
    buckets = resources(doc, "aws_s3_bucket")
    capture = next(rid for rid, b in buckets.items() if "-capture-" in b["bucket"])
    rules = {r["id"]: r for r in lifecycles[capture]["rule"]}
    assert rules["expire-objects"]["expiration"] == [
        {"days": environments[env].retention.capture_days}
    ]


def test_data_protection_follows_the_environment(platform):
    env, doc = platform
    for bucket in resources(doc, "aws_s3_bucket").values():
        if env == "prod":
            assert bucket.get("lifecycle") == {"prevent_destroy": True}, bucket["bucket"]
            assert bucket["force_destroy"] is False
        else:
            assert "lifecycle" not in bucket
        if env in ("local", "localprod", "dev"):
            assert bucket["force_destroy"] is True


def all_policy_documents(doc: dict) -> list[tuple[str, dict]]:
    """Every JSON policy in the stack: IAM, trust, key, bucket and topic policies."""
    fields = {
        "aws_iam_policy": "policy", "aws_iam_role_policy": "policy",
        "aws_iam_role": "assume_role_policy", "aws_kms_key": "policy",
        "aws_s3_bucket_policy": "policy", "aws_sns_topic_policy": "policy",
    }
    out = []
    for rtype, field in fields.items():
        for rid, body in resources(doc, rtype).items():
            out.append((f"{rtype}.{rid}", json.loads(body[field])))
    return out


def test_no_statement_allows_every_action_on_every_resource(synth_all):
    for stack in synth_all.stacks:
        docs = all_policy_documents(synth_all.json(stack))
        assert docs, stack
        for where, policy in docs:
            for st in policy["Statement"]:
                actions = st.get("Action", [])
                actions = [actions] if isinstance(actions, str) else actions
                res = st.get("Resource", [])
                res = [res] if isinstance(res, str) else res
                wildcard_action = any(a in ("*", "*:*") for a in actions)
                assert not (st["Effect"] == "Allow" and wildcard_action), (stack, where, st)
                grants = "Principal" not in st and not where.startswith("aws_iam_policy.boundary")
                if st["Effect"] == "Allow" and "*" in res and grants:
                    # Identity policies may use Resource "*" only for actions without
                    # resource types, never for a whole service. (The permissions boundary
                    # is exempt: it caps what roles may be granted and grants nothing.)
                    assert all(not a.endswith(":*") for a in actions), (stack, where, st)


def test_names_carry_the_environment(platform):
    env, doc = platform
    name_fields = ("bucket", "name", "model_package_group_name")
    checked = 0
    for rtype, items in doc["resource"].items():
        for rid, body in items.items():
            for field in name_fields:
                value = body.get(field)
                if isinstance(value, str) and not value.startswith("${"):
                    # (A Signer profile's name allows no hyphen: `mlops_dev_lambda`.)
                    assert f"-{env}" in value or f"/{env}" in value or f"_{env}_" in value or \
                        value.startswith(env), (
                        rtype, rid, value)
                    checked += 1
    assert checked >= 20


def test_everything_is_encrypted_with_the_platform_key(platform):
    env, doc = platform
    (key_id, key), = resources(doc, "aws_kms_key").items()
    key_arn = "${aws_kms_key." + key_id + ".arn}"
    assert key["enable_key_rotation"] is True
    for repo in resources(doc, "aws_ecr_repository").values():
        assert repo["image_tag_mutability"] == "IMMUTABLE"
        assert repo["image_scanning_configuration"] == {"scan_on_push": True}
        assert repo["encryption_configuration"] == [
            {"encryption_type": "KMS", "kms_key": key_arn}]
    assert len(resources(doc, "aws_ecr_lifecycle_policy")) == 2
    topics = resources(doc, "aws_sns_topic")
    assert {t["name"] for t in topics.values()} == {
        f"mlops-{env}-alerts-critical", f"mlops-{env}-alerts-warning", f"mlops-{env}-audit-deliveries"}
    assert all(t["kms_master_key_id"] == key_arn for t in topics.values())
    secrets = resources(doc, "aws_secretsmanager_secret")
    assert secrets and all(s["kms_key_id"] == key_arn for s in secrets.values())
    (trail,) = resources(doc, "aws_cloudtrail").values()
    assert trail["enable_log_file_validation"] is True
    assert trail["kms_key_id"] == key_arn
    assert trail["s3_bucket_name"] == f"mlops-{env}-audit-{bucket_account(trail['s3_bucket_name'])}"
    # Its events stream to CloudWatch Logs (KMS, the environment's log retention) through a role
    # only this trail may assume, and each delivery is announced on a topic only it publishes to.
    group = referenced(doc, trail["cloud_watch_logs_group_arn"].removesuffix(":*"),
                       "aws_cloudwatch_log_group")
    assert group["name"] == f"/mlops-{env}/cloudtrail" and group["kms_key_id"] == key_arn
    role = referenced(doc, trail["cloud_watch_logs_role_arn"], "aws_iam_role")
    trust = json.loads(role["assume_role_policy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "cloudtrail.amazonaws.com"}
    assert trust["Condition"]["StringEquals"]["aws:SourceArn"].endswith(f":trail/mlops-{env}-audit")
    assert trail["sns_topic_name"].startswith("${aws_sns_topic.")
    # Locally the provider reads the topic back as an ARN (moto_gaps.UNREAD_ATTRIBUTES).
    ignored = trail.get("lifecycle", {}).get("ignore_changes", [])
    assert ignored == (["sns_topic_name"] if env.startswith("local") else [])  # local, localprod


def test_no_secret_value_is_synthesized(synth_all):
    for stack in synth_all.stacks:
        doc = synth_all.json(stack)
        assert "aws_secretsmanager_secret_version" not in doc.get("resource", {})
        text = json.dumps(doc)
        assert "secret_string" not in text and "password" not in text.lower(), stack


def test_model_registry_per_environment(platform):
    env, doc = platform
    (group,) = resources(doc, "aws_sagemaker_model_package_group").values()
    assert group["model_package_group_name"] == f"mlops-{env}-models"


def test_roles_carry_the_boundary_and_personas_are_separated(platform, environments):
    env, doc = platform
    roles = resources(doc, "aws_iam_role")
    # EKS serving (dev enables it) brings its own roles, checked in test_serving_constructs.py:
    # the cluster and node roles are EKS service roles, the serving (IRSA) role has the boundary.
    eks_roles = {k: r for k, r in roles.items() if r["name"].startswith(f"mlops-{env}-serving")}
    assert bool(eks_roles) == environments[env].eks.enabled
    roles = {k: r for k, r in roles.items() if k not in eks_roles}
    names = {r["name"] for r in roles.values()}
    # Studio's private network (stacks/constructs/private_network.py) brings its flow-log role,
    # as EKS's network does (that one is among the serving roles above).
    settings = environments[env]
    has_studio = settings.studio.enabled and moto_gaps.for_environment(settings.is_local).studio
    studio = ("studio-flow-logs",) if has_studio else ()
    # Cross-region replication (prod) brings the role S3 replicates as (tests/unit/test_replication.py).
    replication = ("replication",) if settings.replication else ()
    assert names == {f"mlops-{env}-{p}" for p in (
        "data-scientist", "ml-engineer", "platform-admin", "auditor", "sagemaker-execution",
        "audit-to-logs", *studio, *replication)}
    (_boundary_id, boundary), = resources(doc, "aws_iam_policy").items()
    assert boundary["name"] == f"mlops-{env}-permissions-boundary"
    # a bucket named like the environment's but another account's is out of every role's reach
    (foreign,) = [st for st in json.loads(boundary["policy"])["Statement"]
                  if st["Sid"] == "DenyOtherAccountsBuckets"]
    assert foreign["Effect"] == "Deny" and foreign["Action"] == "s3:*"
    assert foreign["Resource"] == [f"arn:aws:s3:::mlops-{env}-*", f"arn:aws:s3:::mlops-{env}-*/*"]
    assert foreign["Condition"] == {
        "StringNotEqualsIfExists": {"s3:ResourceAccount": environments[env].account_id}}
    for role in roles.values():
        assert role["permissions_boundary"].endswith(f"/mlops-{env}/mlops-{env}-permissions-boundary")
        trust = json.loads(role["assume_role_policy"])["Statement"][0]
        if role["name"].endswith("sagemaker-execution"):
            assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"}
        elif role["name"].endswith("audit-to-logs"):
            assert trust["Principal"] == {"Service": "cloudtrail.amazonaws.com"}
        elif role["name"].endswith("flow-logs"):
            assert trust["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
        elif role["name"].endswith("-replication"):
            assert trust["Principal"] == {"Service": "s3.amazonaws.com"}
        else:
            persona = role["name"].removeprefix(f"mlops-{env}-").replace("-", "_")
            principals = getattr(environments[env].personas, persona)
            expected = principals[0] if len(principals) == 1 else principals
            assert trust["Principal"] == {"AWS": expected}
            assert "sts:SetSourceIdentity" in trust["Action"]
            # MFA where the environment asks for it; a source identity (the person) in production,
            # where four eyes compare persons (lambdas/shared/control/provenance.py).
            expected_condition = ({"Bool": {"aws:MultiFactorAuthPresent": "true"}}
                                  if environments[env].personas.require_mfa else {}) | (
                {"Null": {"sts:SourceIdentity": "false"}} if environments[env].production else {})
            assert trust.get("Condition", {}) == expected_condition
    policies = {p["name"]: json.loads(p["policy"]) for p in
                resources(doc, "aws_iam_role_policy").values()}
    ds = policies[f"mlops-{env}-data-scientist-permissions"]["Statement"]
    deny = next(s for s in ds if s["Effect"] == "Deny")
    assert "sagemaker:UpdateModelPackage" in deny["Action"]
    assert "sagemaker:UpdateEndpoint" in deny["Action"]
    approver = policies[f"mlops-{env}-ml-engineer-permissions"]["Statement"]
    assert any("sagemaker:UpdateModelPackage" in s["Action"] for s in approver
               if s["Effect"] == "Allow")
    # Ground truth: the labels' layout is writable, an endpoint's capture prefix is not (IAM's *
    # matches across slashes, as fnmatch's does).
    def listed(value):  # a single action or resource is written as a plain string
        return [value] if isinstance(value, str) else value

    writes = [(s["Effect"], r.split("/", 1)[1]) for s in approver if listed(s["Action"]) == ["s3:PutObject"]
              for r in listed(s["Resource"]) if "capture" in r]
    assert {e for e, _ in writes} == {"Allow", "Deny"}

    def may_write(key: str) -> bool:
        return (any(e == "Allow" and fnmatch.fnmatchcase(key, p) for e, p in writes)
                and not any(e == "Deny" and fnmatch.fnmatchcase(key, p) for e, p in writes))

    assert may_write("demo/ground-truth/2026/12/01/13/labels.jsonl")
    assert not may_write(f"demo/mlops-{env}-demo/ground-truth/2026/12/01/13/x.jsonl")
    assert not may_write(f"demo/mlops-{env}-demo/primary/2026/12/01/13/capture.jsonl")


def test_state_backends(synth_all, environments):
    local = synth_all.json("platform-local")["terraform"]["backend"]
    assert list(local) == ["local"]
    for env in ("dev", "staging", "prod"):
        backend = synth_all.json(f"platform-{env}")["terraform"]["backend"]["s3"]
        state = environments[env].state
        assert backend == {
            "bucket": state.bucket, "key": f"mlops/{env}/platform-{env}.tfstate",
            "region": environments[env].region, "encrypt": True, "use_lockfile": True,
        }
        boot = synth_all.json(f"bootstrap-{env}")
        assert list(boot["terraform"]["backend"]) == ["local"]
        (bucket,) = [b for b in resources(boot, "aws_s3_bucket").values()
                     if b["bucket"] == state.bucket]
        assert bucket["lifecycle"] == {"prevent_destroy": True}


def test_local_provider_talks_only_to_the_local_endpoint(synth_all, environments):
    doc = synth_all.json("platform-local")
    (provider,) = doc["provider"]["aws"]
    assert set(provider["endpoints"][0].values()) == {"${var.local_endpoint_url}"}
    assert doc["variable"]["local_endpoint_url"]["default"].startswith("https://127.0.0.1:")
    # The local AWS presents its own certificate; the provider trusts exactly that file.
    assert provider["custom_ca_bundle"] == "${var.local_ca_bundle}"
    # The default account is the deployer's own: no role to assume there.
    assert "assume_role" not in provider
    for env in ("dev", "staging", "prod"):
        (provider,) = synth_all.json(f"platform-{env}")["provider"]["aws"]
        assert "endpoints" not in provider
        # A wrong profile cannot touch another account.
        assert provider["allowed_account_ids"] == [environments[env].account_id]


def test_a_local_environment_in_another_account_is_reached_through_its_access_role(synth_all, environments):
    """localprod lives in the local AWS's second account: every one of its stacks' providers
    assumes that account's OrganizationAccountAccessRole, as a member account is deployed."""
    account = environments["localprod"].account_id
    assert account != moto_gaps.DEFAULT_ACCOUNT
    stacks = [name for name in synth_all.stacks if name.endswith("-localprod")]
    assert sorted(stacks) == ["platform-localprod", "project-demo-localprod"]
    for name in stacks:
        (provider,) = synth_all.json(name)["provider"]["aws"]
        assert provider["assume_role"] == [{
            "role_arn": f"arn:aws:iam::{account}:role/OrganizationAccountAccessRole",
            "session_name": "mlops-deploy-localprod"}]
        assert set(provider["endpoints"][0].values()) == {"${var.local_endpoint_url}"}


def _listed(value):
    return [value] if isinstance(value, str) else value


def test_audit_records_are_only_ever_added(synth_all, environments):
    """No role changes or deletes an audit record: the handlers may only add them (and add them
    conditionally), the boundary denies every change, and the admin may not even overwrite one."""
    for env in ENVS:
        account, region = environments[env].account_id, environments[env].region
        audit = f"arn:aws:dynamodb:{region}:{account}:table/mlops-{env}-demo-audit"
        platform = synth_all.json(f"platform-{env}")
        boundary = json.loads(next(iter(resources(platform, "aws_iam_policy").values()))["policy"])
        denied = next(s for s in boundary["Statement"] if s["Sid"] == "DenyAuditRecordChanges")
        assert denied["Effect"] == "Deny"
        assert {"dynamodb:DeleteItem", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem"} <= set(
            denied["Action"])
        assert fnmatch.fnmatchcase(audit, denied["Resource"])
        assert not fnmatch.fnmatchcase(audit.replace("-audit", "-locks"), denied["Resource"])
        admin = next(json.loads(p["policy"]) for p in resources(platform, "aws_iam_role_policy").values()
                     if p["name"] == f"mlops-{env}-platform-admin-permissions")
        rewrite = next(s for s in admin["Statement"] if s["Sid"] == "NeverRewriteControlLoopRecords")
        assert rewrite["Effect"] == "Deny" and "dynamodb:PutItem" in rewrite["Action"]
        for table in ("audit", "deployments", "idempotency", "locks"):
            assert any(fnmatch.fnmatchcase(audit.replace("-audit", f"-{table}"), r)
                       for r in _listed(rewrite["Resource"])), table

        project = synth_all.json(f"project-demo-{env}")
        tables = {t["name"]: rid for rid, t in resources(project, "aws_dynamodb_table").items()}
        evidence = {f"${{aws_dynamodb_table.{tables[f'mlops-{env}-demo-{t}']}.arn}}"
                    for t in ("audit", "deployments")}
        audit_ref = f"${{aws_dynamodb_table.{tables[f'mlops-{env}-demo-audit']}.arn}}"
        appenders = 0
        for policy in (json.loads(p["policy"]) for p in resources(project, "aws_iam_role_policy").values()):
            for st in policy["Statement"]:
                actions = _listed(st["Action"])
                if st["Effect"] != "Allow" or not any(a.startswith("dynamodb:") for a in actions):
                    continue
                touched = {r.removesuffix("/index/*") for r in _listed(st["Resource"])}
                if touched & evidence:
                    assert "dynamodb:DeleteItem" not in actions, st
                if audit_ref in touched:
                    assert set(actions) == {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem"}
                    appenders += 1
        assert appenders == 4  # gate, deploy, rollback, retrain


def test_the_audit_bucket_is_object_locked_compliance_in_prod(synth_all, environments):
    for env in ENVS:
        doc = synth_all.json(f"platform-{env}")
        locks = list(resources(doc, "aws_s3_bucket_object_lock_configuration").values())
        assert len(locks) == 1, env  # the audit bucket only
        (lock,) = locks
        assert lock["bucket"].startswith("${aws_s3_bucket.audit_bucket")
        assert lock["object_lock_enabled"] == "Enabled"
        retention = lock["rule"]["default_retention"]
        assert retention == {"mode": "COMPLIANCE" if environments[env].production else "GOVERNANCE",
                             "days": environments[env].retention.audit_days}, env
        assert any("versioning" in d for d in lock["depends_on"])


def test_each_environment_has_a_monthly_budget_alerting_the_warning_topic(synth_all, environments):
    for env in ENVS:
        doc = synth_all.json(f"platform-{env}")
        (budget,) = resources(doc, "aws_budgets_budget").values()
        settings = environments[env].budget
        assert (budget["name"], budget["budget_type"], budget["time_unit"], budget["limit_unit"]) == (
            f"mlops-{env}-monthly-cost", "COST", "MONTHLY", "USD")
        assert float(budget["limit_amount"]) == settings.monthly_limit_usd
        assert budget["account_id"] == environments[env].account_id
        kinds = sorted((n["notification_type"], n["threshold"]) for n in budget["notification"])
        assert kinds == sorted([("ACTUAL", p) for p in settings.alert_at_percent]
                               + [("FORECASTED", settings.forecast_at_percent)])
        topics = {n["subscriber_sns_topic_arns"][0] for n in budget["notification"]}
        assert len(topics) == 1 and "aws_sns_topic.warning_topic" in next(iter(topics)), topics
        # Budgets may publish to the encrypted topic: the topic's policy and the key's.
        policies = dict(all_policy_documents(doc))
        publishers = [st for where, p in policies.items()
                      if where.startswith("aws_sns_topic_policy.") and "_topic_policy_" in where
                      for st in p["Statement"] if st["Effect"] == "Allow"]
        assert len(publishers) == 2  # the critical and warning topics (not the trail's)
        assert all("budgets.amazonaws.com" in st["Principal"]["Service"] for st in publishers)
        key = next(p for where, p in policies.items() if where.startswith("aws_kms_key"))
        notify = next(st for st in key["Statement"] if st["Sid"] == "AllowAlarmNotifications")
        assert "budgets.amazonaws.com" in notify["Principal"]["Service"]


def test_roles_wait_for_the_boundary_they_name(platform):
    """A role names its boundary by ARN (no reference Terraform would see), and IAM refuses a
    role whose boundary does not exist yet: each waits for the boundary policy."""
    _env, doc = platform
    (boundary_id,) = resources(doc, "aws_iam_policy")
    bounded = [r for r in resources(doc, "aws_iam_role").values() if r.get("permissions_boundary")]
    assert len(bounded) >= 5
    for role in bounded:
        assert role["depends_on"] == [f"aws_iam_policy.{boundary_id}"], role["name"]
