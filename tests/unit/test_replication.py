"""Cross-region replication (`replication.region`), read from the synthesized stacks: prod's
platform buckets each replicate into a replica bucket of the replica stack, with the SecureBucket
settings there; the role S3 replicates as is bounded and least-privilege; the environments that
leave replication off have none of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlops.deploy import deploy_order
from stacks.config import Environment
from stacks.deployer_policy import deployer_statements, types_of
from stacks.policy import listed, matches
from stacks.replication import REPLICATED, ReplicaNames, boundary_statements
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


def replication_role(synth_all, names) -> tuple[dict, dict]:
    roles = resources(synth_all, "platform-prod", "aws_iam_role")
    (rid,) = [rid for rid, r in roles.items() if r["name"] == names.role_name]
    (policy,) = [p for p in resources(synth_all, "platform-prod", "aws_iam_role_policy").values()
                 if p["role"] == ref("aws_iam_role", rid, "name")]
    return roles[rid], json.loads(policy["policy"])


def replication_policy_id(synth_all, names) -> str:
    roles = resources(synth_all, "platform-prod", "aws_iam_role")
    (rid,) = [rid for rid, r in roles.items() if r["name"] == names.role_name]
    (pid,) = [pid for pid, p in resources(synth_all, "platform-prod", "aws_iam_role_policy").items()
              if p["role"] == ref("aws_iam_role", rid, "name")]
    return pid


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


def test_the_boundary_allows_every_grant_of_the_replication_role(synth_all, names):
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
                          if b["Effect"] == "Deny" and covers(b, action, resource)]
                assert not denied, (action, resource, denied)


def test_no_bounded_role_changes_a_replica(synth_all, names):
    """The replicas survive what happens in the region: the boundary denies every bounded role
    (the personas, the platform admin included) writes, deletes and unlocks there, while S3's own
    replication writes (s3:ReplicateObject) stay allowed."""
    (boundary,) = [p for p in resources(synth_all, "platform-prod", "aws_iam_policy").values()
                   if p["name"].endswith("permissions-boundary")]
    denies = [s for s in json.loads(boundary["policy"])["Statement"] if s["Effect"] == "Deny"]

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
