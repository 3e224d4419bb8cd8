"""Cross-region replication (`replication.region`), read from the synthesized stacks: prod's
platform buckets each replicate into a replica bucket of the replica stack, with the SecureBucket
settings there; the role S3 replicates as is bounded and least-privilege; the environments that
leave replication off have none of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local_aws import iam_conditions
from mlops.deploy import deploy_order
from stacks.bootstrap_stack import StateAccount, state_accounts
from stacks.config import Environment
from stacks.deployer_policy import deployer_statements, types_of
from stacks.policy import listed, matches
from stacks.replication import REPLICATED, ReplicaNames, StateReplicaNames, boundary_statements
from stacks.stack_info import StackInfo

ROOT = Path(__file__).resolve().parents[2]
UNREPLICATED = ("local", "localprod", "dev", "staging")


def resources(synth_all, stack: str, rtype: str) -> dict[str, dict]:
    return synth_all.json(stack).get("resource", {}).get(rtype, {})


def ref(rtype: str, rid: str, attr: str = "id") -> str:
    return f"${{{rtype}.{rid}.{attr}}}"


def by_bucket(synth_all, stack: str, rtype: str) -> dict[str, dict]:
    """A bucket setting resource per bucket name (its `bucket` is a reference to the bucket)."""
    names = {ref("aws_s3_bucket", rid): b["bucket"]
             for rid, b in resources(synth_all, stack, "aws_s3_bucket").items()}
    return {names[r["bucket"]]: r for r in resources(synth_all, stack, rtype).values()}


@pytest.fixture(scope="module")
def prod(environments) -> Environment:
    return environments["prod"]


@pytest.fixture(scope="module")
def names(prod) -> ReplicaNames:
    out = ReplicaNames.of(prod)
    assert out is not None, "environments/prod.yaml sets replication.region"
    return out


def test_prod_replicates_into_another_region_and_the_rest_do_not(environments, synth_all, names):
    assert names.region != environments["prod"].region
    for env in UNREPLICATED:
        assert environments[env].replication is None, env
        assert not resources(synth_all, f"platform-{env}", "aws_s3_bucket_replication_configuration")
        assert f"replica-{env}" not in synth_all.stacks
    assert "replica-prod" in synth_all.stacks
    (provider,) = synth_all.json("replica-prod")["provider"]["aws"]
    assert provider["region"] == names.region
    assert provider["allowed_account_ids"] == [environments["prod"].account_id]


def test_every_prod_bucket_replicates_into_its_replica(synth_all, names):
    configs = by_bucket(synth_all, "platform-prod", "aws_s3_bucket_replication_configuration")
    n = names.naming
    assert set(configs) == {n.bucket(p) for p in REPLICATED} == {
        b["bucket"] for b in resources(synth_all, "platform-prod", "aws_s3_bucket").values()}
    replicas = {b["bucket"] for b in resources(synth_all, "replica-prod", "aws_s3_bucket").values()}
    assert replicas == {names.bucket(p) for p in REPLICATED}
    versioning = {ref("aws_s3_bucket", rid): f"aws_s3_bucket_versioning.{vid}"
                  for vid, v in resources(synth_all, "platform-prod", "aws_s3_bucket_versioning").items()
                  for rid in resources(synth_all, "platform-prod", "aws_s3_bucket")
                  if v["bucket"] == ref("aws_s3_bucket", rid)}
    (role_id,) = [rid for rid, r in resources(synth_all, "platform-prod", "aws_iam_role").items()
                  if r["name"] == names.role_name]
    for purpose in REPLICATED:
        config = configs[n.bucket(purpose)]
        assert config["role"] == ref("aws_iam_role", role_id, "arn")
        # The role's policy before the rule: a rule in force before its role may act fails
        # each write of that window for good.
        assert config["depends_on"] == [versioning[config["bucket"]],
                                        f"aws_iam_role_policy.{replication_policy_id(synth_all, names)}"]
        (rule,) = config["rule"]
        assert rule["status"] == "Enabled" and rule["delete_marker_replication"] == {"status": "Disabled"}
        assert rule["destination"]["bucket"] == names.bucket_arn(purpose)
        if purpose == "access-logs":  # SSE-S3: nothing to re-encrypt
            assert "source_selection_criteria" not in rule
            assert "encryption_configuration" not in rule["destination"]
        else:
            assert rule["source_selection_criteria"] == {"sse_kms_encrypted_objects": {"status": "Enabled"}}
            assert rule["destination"]["encryption_configuration"] == {
                "replica_kms_key_id": names.key_alias_arn}


def test_the_replica_buckets_have_the_secure_bucket_settings(synth_all, names, prod):
    stack = "replica-prod"
    (key,) = resources(synth_all, stack, "aws_kms_key").values()
    assert key["enable_key_rotation"] is True
    (key_id,) = resources(synth_all, stack, "aws_kms_key")
    (alias,) = resources(synth_all, stack, "aws_kms_alias").values()
    assert alias["name"] == names.key_alias and alias["target_key_id"] == ref("aws_kms_key", key_id, "key_id")
    buckets = resources(synth_all, stack, "aws_s3_bucket").values()
    assert all(b["lifecycle"] == {"prevent_destroy": True} and b["force_destroy"] is False for b in buckets)
    versioning = by_bucket(synth_all, stack, "aws_s3_bucket_versioning")
    encryption = by_bucket(synth_all, stack, "aws_s3_bucket_server_side_encryption_configuration")
    blocks = by_bucket(synth_all, stack, "aws_s3_bucket_public_access_block")
    ownership = by_bucket(synth_all, stack, "aws_s3_bucket_ownership_controls")
    policies = by_bucket(synth_all, stack, "aws_s3_bucket_policy")
    lifecycles = by_bucket(synth_all, stack, "aws_s3_bucket_lifecycle_configuration")
    logging = by_bucket(synth_all, stack, "aws_s3_bucket_logging")
    locks = by_bucket(synth_all, stack, "aws_s3_bucket_object_lock_configuration")
    log_bucket = names.bucket("access-logs")
    for purpose in REPLICATED:
        name = names.bucket(purpose)
        assert versioning[name]["versioning_configuration"] == {"status": "Enabled"}
        sse = encryption[name]["rule"][0]["apply_server_side_encryption_by_default"]
        if name == log_bucket:
            assert sse == {"sse_algorithm": "AES256"} and name not in logging
        else:
            assert sse == {"sse_algorithm": "aws:kms",
                           "kms_master_key_id": ref("aws_kms_key", key_id, "arn")}
            assert logging[name]["target_prefix"] == f"replica/{purpose}/"
            assert logging[name]["target_bucket"] == log_bucket
        assert all(blocks[name][k] is True for k in ("block_public_acls", "block_public_policy",
                                                     "ignore_public_acls", "restrict_public_buckets"))
        assert ownership[name]["rule"]["object_ownership"] == "BucketOwnerEnforced"
        statements = json.loads(policies[name]["policy"])["Statement"]
        assert statements[0]["Sid"] == "DenyInsecureTransport"
        assert statements[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        rules = {r["id"]: r for r in lifecycles[name]["rule"]}
        assert rules["expire-noncurrent-versions"]["noncurrent_version_expiration"] == [
            {"noncurrent_days": prod.retention.noncurrent_version_days}]
    expiry = {p: {r["id"]: r for r in lifecycles[names.bucket(p)]["rule"]}.get("expire-objects")
              for p in REPLICATED}
    assert expiry["capture"]["expiration"] == [{"days": prod.retention.capture_days}]
    assert expiry["audit"]["expiration"] == [{"days": prod.retention.audit_days}]
    assert expiry["datasets"] is None and expiry["artifacts"] is None
    # The audit replica locks as the audit bucket does (COMPLIANCE in prod); nothing else locks.
    assert set(locks) == {names.bucket("audit")}
    assert locks[names.bucket("audit")]["rule"]["default_retention"] == {
        "mode": "COMPLIANCE", "days": prod.retention.audit_days}
    source_lock = by_bucket(synth_all, "platform-prod", "aws_s3_bucket_object_lock_configuration")
    assert source_lock[names.naming.bucket("audit")]["rule"] == locks[names.bucket("audit")]["rule"]


def replication_policy_id(synth_all, names) -> str:
    """The Terraform id of the platform replication role's inline policy."""
    roles = resources(synth_all, "platform-prod", "aws_iam_role")
    (rid,) = [rid for rid, r in roles.items() if r["name"] == names.role_name]
    (pid,) = [pid for pid, p in resources(synth_all, "platform-prod", "aws_iam_role_policy").items()
              if p["role"] == ref("aws_iam_role", rid, "name")]
    return pid


def replication_role(synth_all, names) -> tuple[dict, dict]:
    policies = resources(synth_all, "platform-prod", "aws_iam_role_policy")
    policy = policies[replication_policy_id(synth_all, names)]
    (role,) = [r for r in resources(synth_all, "platform-prod", "aws_iam_role").values()
               if r["name"] == names.role_name]
    return role, json.loads(policy["policy"])


def test_the_replication_role_is_bounded_and_trusts_only_s3(synth_all, names):
    role, _ = replication_role(synth_all, names)
    n = names.naming
    assert role["path"] == n.role_path
    assert role["permissions_boundary"] == n.boundary_arn
    (trust,) = json.loads(role["assume_role_policy"])["Statement"]
    assert trust["Principal"] == {"Service": "s3.amazonaws.com"} and trust["Action"] == "sts:AssumeRole"
    # The S3 User Guide's trust policy: no condition on keys it does not document S3 sending.
    assert "Condition" not in trust


def test_the_replication_role_is_least_privilege(synth_all, names):
    _, policy = replication_role(synth_all, names)
    n = names.naming
    sources = {f"arn:aws:s3:::{n.bucket(p)}" for p in REPLICATED}
    replicas = {names.bucket_arn(p) for p in REPLICATED}
    granted = {(a, r) for s in policy["Statement"]
               for a in listed(s["Action"]) for r in listed(s["Resource"])}
    assert all(s["Effect"] == "Allow" and "*" not in "".join(listed(s["Action"]))
               for s in policy["Statement"])
    by_action: dict[str, set[str]] = {}
    for action, resource in granted:
        by_action.setdefault(action, set()).add(resource)
    assert by_action.pop("s3:GetReplicationConfiguration") == sources
    assert by_action.pop("s3:ListBucket") == sources
    for action in ("s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl",
                   "s3:GetObjectVersionTagging"):
        assert by_action.pop(action) == {f"{s}/*" for s in sources}
    audit = {f"arn:aws:s3:::{n.bucket('audit')}/*"}
    assert by_action.pop("s3:GetObjectRetention") == by_action.pop("s3:GetObjectLegalHold") == audit
    assert by_action.pop("s3:ReplicateObject") == by_action.pop("s3:ReplicateTags") == {
        f"{r}/*" for r in replicas}
    (platform_key_id,) = resources(synth_all, "platform-prod", "aws_kms_key")
    # Decrypt with the replica key too: S3 checks a replica bucket's Bucket Key with it.
    assert by_action.pop("kms:Decrypt") == {ref("aws_kms_key", platform_key_id, "arn"),
                                            names.keys_arn_pattern}
    assert by_action.pop("kms:Encrypt") == by_action.pop("kms:GenerateDataKey") == {
        names.keys_arn_pattern}
    assert not by_action, f"more than replication needs: {sorted(by_action)}"  # no ReplicateDelete
    kms = {s["Sid"]: s["Condition"] for s in policy["Statement"] if s["Sid"].endswith(("Sources", "Replicas"))
           and "Condition" in s}
    assert kms["DecryptSources"]["StringEquals"] == {"kms:ViaService": f"s3.{n.region}.amazonaws.com"}
    assert kms["EncryptReplicas"]["StringEquals"] == {"kms:ViaService": f"s3.{names.region}.amazonaws.com"}
    assert kms["EncryptReplicas"]["ForAnyValue:StringEquals"] == {"kms:ResourceAliases": names.key_alias}
    decrypt_context = set(kms["DecryptSources"]["StringLike"]["kms:EncryptionContext:aws:s3:arn"])
    assert decrypt_context == {a for s in sources - {f"arn:aws:s3:::{n.bucket('access-logs')}"}
                               for a in (s, f"{s}/*")}


def _denies_in_the_account(statement: dict, account: str) -> bool:
    """Whether a Deny applies to a request on a bucket `account` owns (the boundary's deny of
    other accounts' buckets holds only for those)."""
    context = iam_conditions.context_of({"s3:ResourceAccount": account, "aws:ResourceAccount": account})
    return "Condition" not in statement or iam_conditions.condition_holds(statement["Condition"], context)


def test_the_boundary_allows_every_grant_of_the_replication_role(synth_all, names, prod):
    _, policy = replication_role(synth_all, names)
    (boundary,) = [p for p in resources(synth_all, "platform-prod", "aws_iam_policy").values()
                   if p["name"].endswith("permissions-boundary")]
    statements = json.loads(boundary["policy"])["Statement"]
    assert boundary_statements(names)[0] in statements

    def covers(s: dict, action: str, resource: str) -> bool:
        return (any(matches(a, action) for a in listed(s["Action"]))
                and any(matches(r, resource) for r in listed(s["Resource"])))

    for s in policy["Statement"]:
        for action in listed(s["Action"]):
            for resource in listed(s["Resource"]):
                allowed = [b for b in statements if b["Effect"] == "Allow" and covers(b, action, resource)]
                assert allowed, f"the boundary does not allow {action} on {resource}"
                if resource == names.keys_arn_pattern:  # the replica key only, as the role's grant
                    assert allowed[0]["Condition"] == names.key_condition
                denied = [b["Sid"] for b in statements
                          if b["Effect"] == "Deny" and covers(b, action, resource)
                          and _denies_in_the_account(b, prod.account_id)]
                assert not denied, (action, resource, denied)


def test_no_bounded_role_changes_a_replica(synth_all, names, prod):
    """The replicas survive what happens in the region: the boundary denies every bounded role
    (the personas, the platform admin included) writes, deletes and unlocks there, while S3's own
    replication writes (s3:ReplicateObject) stay allowed."""
    (boundary,) = [p for p in resources(synth_all, "platform-prod", "aws_iam_policy").values()
                   if p["name"].endswith("permissions-boundary")]
    denies = [s for s in json.loads(boundary["policy"])["Statement"]
              if s["Effect"] == "Deny" and _denies_in_the_account(s, prod.account_id)]

    def denied(action: str, resource: str) -> bool:
        return any(any(matches(a, action) for a in listed(s["Action"]))
                   and any(matches(r, resource) for r in listed(s["Resource"])) for s in denies)

    for purpose in REPLICATED:
        bucket = names.bucket_arn(purpose)
        for action in ("s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion",
                       "s3:BypassGovernanceRetention", "s3:PutObjectRetention"):
            assert denied(action, f"{bucket}/key"), (action, purpose)
        for action in ("s3:PutBucketPolicy", "s3:PutLifecycleConfiguration", "s3:DeleteBucket"):
            assert denied(action, bucket), (action, purpose)
        assert not denied("s3:ReplicateObject", f"{bucket}/key")
        assert not denied("s3:GetObject", f"{bucket}/key")


def test_the_replica_stack_deploys_before_the_platform_stack():
    infos = [StackInfo(name, name.rsplit("-", 1)[1], kind, Path(name)) for name, kind in (
        ("project-demo-prod", "project"), ("platform-prod", "platform"), ("replica-prod", "replica"),
        ("bootstrap-prod", "bootstrap"), ("platform-dev", "platform"))]
    assert [i.name for i in deploy_order(infos, "prod")] == [
        "replica-prod", "platform-prod", "project-demo-prod"]
    assert [i.name for i in deploy_order(infos, "dev")] == ["platform-dev"]


def test_the_deployer_may_make_the_replica_side_and_the_rules(synth_all, prod, names):
    stacks = [synth_all.json(s) for s in ("replica-prod", "platform-prod")]
    allows = [s for s in deployer_statements(prod, *types_of(stacks)) if s["Effect"] == "Allow"]

    def allowed(action: str, arn: str) -> bool:
        return any(any(matches(a, action) for a in listed(s["Action"]))
                   and any(matches(p, arn) for p in listed(s["Resource"])) for s in allows)

    replica_key = f"arn:aws:kms:{names.region}:{prod.account_id}:key/0f1e2d3c"
    assert allowed("kms:EnableKeyRotation", replica_key) and allowed("kms:PutKeyPolicy", replica_key)
    assert allowed("kms:CreateAlias", names.key_alias_arn) and allowed("kms:CreateAlias", replica_key)
    assert allowed("s3:CreateBucket", names.bucket_arn("audit"))
    assert allowed("s3:PutReplicationConfiguration", f"arn:aws:s3:::{names.naming.bucket('audit')}")
    assert allowed("iam:PassRole", names.naming.role_arn(names.role_name))
    # Not a key of any other region.
    assert not allowed("kms:PutKeyPolicy", f"arn:aws:kms:us-east-1:{prod.account_id}:key/0f1e2d3c")


# The bootstrap stack's Terraform state bucket (stacks/bootstrap_stack.py): where an environment
# of the account replicates, the state and its access logs replicate into the same region.
def state_names(environments, env: str) -> StateReplicaNames | None:
    (account,) = [a for a in state_accounts(list(environments.values())) if a.primary.name == env]
    return account.replica


def test_the_state_bucket_replicates_where_the_account_replicates(environments, synth_all, names):
    state = state_names(environments, "prod")
    assert state is not None and state.region == names.region
    for env in ("dev", "staging"):
        assert state_names(environments, env) is None
        doc = synth_all.json(f"bootstrap-{env}")
        assert [p.get("alias") for p in doc["provider"]["aws"]] == [None]
        assert not resources(synth_all, f"bootstrap-{env}", "aws_s3_bucket_replication_configuration")
        assert len(resources(synth_all, f"bootstrap-{env}", "aws_s3_bucket")) == 2
    stack, prod = "bootstrap-prod", environments["prod"]
    main, replica = synth_all.json(stack)["provider"]["aws"]
    assert "alias" not in main and main["region"] == prod.state_region
    assert replica["alias"] == "replica" and replica["region"] == state.region
    assert replica["allowed_account_ids"] == main["allowed_account_ids"] == [prod.account_id]
    assert replica["default_tags"] == main["default_tags"]
    buckets = {b["bucket"]: (rid, b) for rid, b in resources(synth_all, stack, "aws_s3_bucket").items()}
    source_of = {state.bucket: state.state_bucket, state.access_logs: f"{state.state_bucket}-logs"}
    assert set(buckets) == {*source_of, *source_of.values()}
    for name, (_, bucket) in buckets.items():  # the replica side in the replica region, only it
        assert bucket.get("provider") == ("aws.replica" if name in source_of else None), name
    configs = by_bucket(synth_all, stack, "aws_s3_bucket_replication_configuration")
    assert set(configs) == set(source_of.values())
    versioning = {b["bucket"]: f"aws_s3_bucket_versioning.{vid}"
                  for vid, b in resources(synth_all, stack, "aws_s3_bucket_versioning").items()}
    (role_id,) = [rid for rid, r in resources(synth_all, stack, "aws_iam_role").items()
                  if r["name"].endswith("-state-replication")]
    (policy_id,) = [pid for pid, p in resources(synth_all, stack, "aws_iam_role_policy").items()
                    if p["role"] == ref("aws_iam_role", role_id, "name")]
    (key_id,) = [k for k, key in resources(synth_all, stack, "aws_kms_key").items()
                 if key.get("provider") == "aws.replica"]
    for replica_name, source_name in source_of.items():
        config = configs[source_name]
        assert "provider" not in config and config["role"] == ref("aws_iam_role", role_id, "arn")
        # The source versioned, the role able to act and the replica versioned before the rule.
        assert config["depends_on"] == [versioning[config["bucket"]], f"aws_iam_role_policy.{policy_id}",
                                        versioning[ref("aws_s3_bucket", buckets[replica_name][0])]]
        (rule,) = config["rule"]
        assert rule["status"] == "Enabled" and rule["filter"] == {"prefix": ""}
        assert rule["delete_marker_replication"] == {"status": "Disabled"}
        assert rule["destination"]["bucket"] == f"arn:aws:s3:::{replica_name}"
        if replica_name == state.bucket:
            assert rule["source_selection_criteria"] == {"sse_kms_encrypted_objects": {"status": "Enabled"}}
            assert rule["destination"]["encryption_configuration"] == {
                "replica_kms_key_id": ref("aws_kms_key", key_id, "arn")}
        else:  # the access logs: SSE-S3, nothing to re-encrypt
            assert "source_selection_criteria" not in rule
            assert "encryption_configuration" not in rule["destination"]


def test_the_state_replica_has_the_state_buckets_settings(environments, synth_all):
    state, stack = state_names(environments, "prod"), "bootstrap-prod"
    assert state is not None
    keys = resources(synth_all, stack, "aws_kms_key")
    (key_id,) = [k for k, key in keys.items() if key.get("provider") == "aws.replica"]
    (state_key_id,) = set(keys) - {key_id}
    assert keys[key_id]["enable_key_rotation"] is True
    assert json.loads(keys[key_id]["policy"]) == json.loads(keys[state_key_id]["policy"])
    (alias,) = [a for a in resources(synth_all, stack, "aws_kms_alias").values()
                if a["target_key_id"] == ref("aws_kms_key", key_id, "key_id")]
    assert alias["name"] == f"alias/{state.key_alias}" and alias["provider"] == "aws.replica"
    kinds = ("aws_s3_bucket_versioning", "aws_s3_bucket_server_side_encryption_configuration",
             "aws_s3_bucket_public_access_block", "aws_s3_bucket_ownership_controls",
             "aws_s3_bucket_policy", "aws_s3_bucket_lifecycle_configuration")
    settings = {kind: by_bucket(synth_all, stack, kind) for kind in kinds}
    logging = by_bucket(synth_all, stack, "aws_s3_bucket_logging")
    for replica, source in ((state.bucket, state.state_bucket),
                            (state.access_logs, f"{state.state_bucket}-logs")):
        for kind in kinds:  # the source's settings, but the key, the bucket and the provider
            mine, theirs = dict(settings[kind][replica]), dict(settings[kind][source])
            assert mine.pop("provider") == "aws.replica", (kind, replica)
            for body in (mine, theirs):
                body.pop("//", None)  # cdktf's metadata: the construct path
                body.pop("bucket")
                body.pop("depends_on", None)
            if kind == "aws_s3_bucket_server_side_encryption_configuration" and replica == state.bucket:
                (rule,) = mine["rule"]
                assert rule["apply_server_side_encryption_by_default"]["kms_master_key_id"] == ref(
                    "aws_kms_key", key_id, "arn")
                assert rule["bucket_key_enabled"] is True
                continue
            if kind == "aws_s3_bucket_policy":
                deny, *_ = json.loads(mine["policy"])["Statement"]
                assert deny["Sid"] == "DenyInsecureTransport"
                assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
                continue
            assert mine == theirs, (kind, replica)
    assert logging[state.bucket]["target_bucket"] == state.access_logs
    assert logging[state.bucket]["target_prefix"] == "replica/state/"
    assert state.access_logs not in logging  # a log bucket does not log into itself
    (grant,) = json.loads(settings["aws_s3_bucket_policy"][state.access_logs]["policy"])["Statement"][1:]
    assert grant["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert grant["Condition"]["ArnLike"] == {"aws:SourceArn": f"arn:aws:s3:::{state.bucket}"}
    # The state's own log bucket grants S3's log delivery too (ACLs are off): from the state only.
    (grant,) = json.loads(settings["aws_s3_bucket_policy"][f"{state.state_bucket}-logs"]["policy"])[
        "Statement"][1:]
    assert grant["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert grant["Condition"]["ArnLike"] == {"aws:SourceArn": f"arn:aws:s3:::{state.state_bucket}"}
    assert all(b["lifecycle"] == {"prevent_destroy": True}
               for b in resources(synth_all, stack, "aws_s3_bucket").values())


def test_the_state_replication_role_is_least_privilege(environments, synth_all):
    state, stack, prod = state_names(environments, "prod"), "bootstrap-prod", environments["prod"]
    assert state is not None
    roles = resources(synth_all, stack, "aws_iam_role")
    (rid,) = [rid for rid, r in roles.items() if r["name"].endswith("-state-replication")]
    role = roles[rid]
    # No boundary: the platform stack makes it after this stack; off every environment's role path.
    assert "permissions_boundary" not in role or role["permissions_boundary"] is None
    assert role["path"] == "/bootstrap/"
    (trust,) = json.loads(role["assume_role_policy"])["Statement"]
    assert trust["Principal"] == {"Service": "s3.amazonaws.com"} and trust["Action"] == "sts:AssumeRole"
    assert "Condition" not in trust
    (policy,) = [json.loads(p["policy"]) for p in resources(synth_all, stack, "aws_iam_role_policy").values()
                 if p["role"] == ref("aws_iam_role", rid, "name")]
    assert all(s["Effect"] == "Allow" and "*" not in "".join(listed(s["Action"]))
               for s in policy["Statement"])
    by_action: dict[str, set[str]] = {}
    for s in policy["Statement"]:
        for action in listed(s["Action"]):
            by_action.setdefault(action, set()).update(listed(s["Resource"]))
    sources = {f"arn:aws:s3:::{b}" for b in (state.state_bucket, f"{state.state_bucket}-logs")}
    replicas = {f"arn:aws:s3:::{b}" for b in (state.bucket, state.access_logs)}
    assert by_action.pop("s3:GetReplicationConfiguration") == by_action.pop("s3:ListBucket") == sources
    for action in ("s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl",
                   "s3:GetObjectVersionTagging"):
        assert by_action.pop(action) == {f"{s}/*" for s in sources}
    assert by_action.pop("s3:ReplicateObject") == by_action.pop("s3:ReplicateTags") == {
        f"{r}/*" for r in replicas}
    keys = resources(synth_all, stack, "aws_kms_key")
    (replica_key,) = [ref("aws_kms_key", k, "arn") for k, key in keys.items()
                      if key.get("provider") == "aws.replica"]
    (state_key,) = {ref("aws_kms_key", k, "arn") for k in keys} - {replica_key}
    # Decrypt with the replica key too: S3 checks a replica bucket's Bucket Key with it.
    assert by_action.pop("kms:Decrypt") == {state_key, replica_key}
    assert by_action.pop("kms:Encrypt") == by_action.pop("kms:GenerateDataKey") == {replica_key}
    assert not by_action, f"more than replication needs: {sorted(by_action)}"
    conditions = {s["Sid"]: s["Condition"] for s in policy["Statement"] if "Condition" in s}
    state_arn, replica_arn = f"arn:aws:s3:::{state.state_bucket}", f"arn:aws:s3:::{state.bucket}"
    assert conditions == {
        "DecryptSources": {
            "StringEquals": {"kms:ViaService": f"s3.{prod.state_region}.amazonaws.com"},
            "StringLike": {"kms:EncryptionContext:aws:s3:arn": [state_arn, f"{state_arn}/*"]}},
        "EncryptReplicas": {
            "StringEquals": {"kms:ViaService": f"s3.{state.region}.amazonaws.com"},
            "StringLike": {"kms:EncryptionContext:aws:s3:arn": [replica_arn, f"{replica_arn}/*"]}},
    }


def test_the_plan_role_reads_no_state_access_logs_either_side(environments, synth_all):
    """Pull requests' plan role (ReadOnlyAccess) reads state, not who read it: the state's access
    logs and their replica are denied (SSE-S3, so the key deny does not cover them)."""
    state = state_names(environments, "prod")
    assert state is not None
    policies = resources(synth_all, "bootstrap-prod", "aws_iam_role_policy").values()
    (policy,) = [json.loads(p["policy"]) for p in policies if p["name"].endswith("-github-plan-permissions")]
    (deny,) = [s for s in policy["Statement"] if s["Sid"] == "NoObjectReads"]
    assert deny["Effect"] == "Deny"
    assert {f"arn:aws:s3:::{state.state_bucket}-logs/*", f"arn:aws:s3:::{state.access_logs}/*"} <= set(
        deny["Resource"])


def test_an_account_replicates_its_state_into_one_other_region(environments):
    prod = environments["prod"]
    assert prod.replication is not None
    other = prod.model_copy(update={"name": "prod2", "replication": prod.replication.model_copy(
        update={"region": "us-east-1"})})
    with pytest.raises(ValueError, match="replicates into one region"):
        _ = StateAccount((prod, other)).replica
    same = prod.model_copy(update={"replication": prod.replication.model_copy(
        update={"region": prod.state_region})})
    with pytest.raises(ValueError, match="needs another region"):
        _ = StateAccount((same,)).replica
    assert StateAccount((environments["dev"], prod)).replica == StateReplicaNames(
        environments["dev"].state.bucket, prod.replication.region)
