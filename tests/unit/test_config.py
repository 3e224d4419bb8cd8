"""Environment files: every shipped file is valid; every kind of mistake is named precisely."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from mlops.cli import main
from stacks.config import ConfigError, load_environment, load_environments

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_environments_are_valid():
    envs = load_environments(ROOT)
    assert set(envs) == {"local", "localprod", "dev", "staging", "prod"}
    for name, env in envs.items():
        assert name in env.prefix
    # The local prod: on the local AWS, in its second account, production, promoted from local.
    localprod = envs["localprod"]
    assert localprod.local and localprod.production and localprod.promotion.source == "local"
    assert localprod.account_id != envs["local"].account_id
    assert envs["local"].state.kind == "local"
    assert all(envs[n].state.kind == "s3" for n in ("dev", "staging", "prod"))
    assert envs["prod"].data_protection.prevent_destroy
    assert not envs["prod"].data_protection.force_destroy


def _broken(tmp_path: Path, edit) -> Path:
    data = yaml.safe_load((ROOT / "environments" / "prod.yaml").read_text())
    edit(data)
    path = tmp_path / "prod.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _set(path: str, value):
    def edit(data):
        *parents, last = path.split(".")
        node = data
        for p in parents:
            node = node[p]
        node[last] = value
    return edit


def _delete(path: str):
    def edit(data):
        *parents, last = path.split(".")
        node = data
        for p in parents:
            node = node[p]
        del node[last]
    return edit


CASES = [
    ("wrong type", _set("retention.log_days", "seven"), "retention.log_days", "integer"),
    ("unknown key", _set("retention.log_dayz", 7), "retention.log_dayz", "unknown setting"),
    ("missing field", _delete("region"), "region", "missing"),
    ("bad region", _set("region", "mars-central"), "region", "does not match"),
    ("bad account", _set("account_id", "12345"), "account_id", "does not match"),
    ("account as number", _set("account_id", 333333333333), "account_id", "string"),
    ("bad principal ARN", _set("personas.auditor", ["not-an-arn"]), "personas.auditor[0]",
     "does not match"),
    ("no principals", _set("personas.ml_engineer", []), "personas.ml_engineer", "at least 1"),
    ("retention CloudWatch refuses", _set("retention.log_days", 10), "retention.log_days",
     "retention periods"),
    ("conflicting protection", _set("data_protection.force_destroy", True), "data_protection",
     "cannot both"),
    ("bad state bucket", _set("state.bucket", "Bad_Bucket"), "state.bucket", "does not match"),
    ("unknown state kind", _set("state.kind", "gcs"), "state", "kind"),
    ("prefix without env", _set("prefix", "mlops-live"), "prefix", "environment name"),
    ("local state in prod", _set("state", {"kind": "local"}), "state", "remote state"),
    ("bad instance type", _set("instance_types.inference", "c5.xlarge"),
     "instance_types.inference", "does not match"),
    ("prod audit lock liftable", _set("audit", {"object_lock_mode": "GOVERNANCE"}), "audit",
     "COMPLIANCE mode"),
    ("CI repository not owner/name", _set("ci.github_repository", "mlops-platform"),
     "ci.github_repository", "does not match"),
    ("replica in the same region", _set("replication.region", "eu-west-1"), "replication",
     "must differ"),
    ("bad replica region", _set("replication.region", "moon-1"), "replication.region",
     "does not match"),
    ("unknown replication key", _set("replication.bucket", "x"), "replication.bucket",
     "unknown setting"),
]


@pytest.mark.parametrize(("case", "edit", "field", "reason"), CASES, ids=[c[0] for c in CASES])
def test_malformed_file_names_file_field_and_reason(tmp_path, case, edit, field, reason):
    path = _broken(tmp_path, edit)
    with pytest.raises(ConfigError) as err:
        load_environment(path, tmp_path)
    lines = str(err.value).splitlines()
    assert any(line.startswith(f"prod.yaml: {field}: ") and reason in line for line in lines), lines


@pytest.mark.parametrize(
    ("text", "where", "reason"),
    [
        ("name: prod\nregion: [eu-west-1\n", "line 3, column 1", "invalid YAML"),
        ("name: prod\nname: dev\n", "line 2, column 1", "duplicate key 'name'"),
        ("- just\n- a list\n", "(top level)", "must be a mapping"),
        ("", "(top level)", "got empty"),
    ],
    ids=["syntax", "duplicate key", "not a mapping", "empty"],
)
def test_bad_yaml_is_located(tmp_path, text, where, reason):
    path = tmp_path / "prod.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_environment(path, tmp_path)
    assert str(err.value).startswith(f"prod.yaml: {where}: ")
    assert reason in str(err.value)


def test_name_must_match_file(tmp_path):
    def edit(data):
        data.update(name="dev", prefix="mlops-dev")

    path = _broken(tmp_path, edit)
    with pytest.raises(ConfigError, match=r"^prod.yaml: name: 'dev' must match"):
        load_environment(path, tmp_path)


@pytest.fixture
def project_copy(tmp_path, monkeypatch) -> Path:
    shutil.copytree(ROOT / "environments", tmp_path / "environments")
    shutil.copy(ROOT / "cdktf.json", tmp_path / "cdktf.json")
    monkeypatch.setenv("MLOPS_ROOT", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("command", [["validate"], ["synth"], ["deploy", "local"]])
def test_cli_stops_with_exit_2_and_one_line_per_problem(project_copy, capsys, command):
    path = project_copy / "environments" / "staging.yaml"
    path.write_text(path.read_text().replace("log_days: 90", "log_days: ninety"))
    assert main(command) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: environments/staging.yaml: retention.log_days: "
        "Input should be a valid integer"
    ]
    # Nothing was synthesized or started.
    assert not (project_copy / "cdktf.out").exists()
    assert not (project_copy / ".mlops" / "local" / "server.json").exists()


def test_cli_reports_every_broken_file(project_copy, capsys):
    for name in ("dev", "prod"):
        path = project_copy / "environments" / f"{name}.yaml"
        path.write_text(path.read_text().replace("region: eu-west-1", "region: nowhere"))
    assert main(["validate"]) == 2
    err = capsys.readouterr().err
    assert "environments/dev.yaml: region:" in err
    assert "environments/prod.yaml: region:" in err


def test_cli_rejects_unknown_environment(capsys):
    # Environments are the files of environments/, not a fixed list of names.
    assert main(["deploy", "qa"]) == 2
    assert "environments/qa.yaml: (file): no such environment; known: local, dev, staging, prod" \
        in capsys.readouterr().err


def test_no_prefix_falls_under_another_environments(project_copy):
    # prod's policies and its boundary's deny scope `mlops-prod-*`: an environment named
    # `mlops-prod-stg-*` would be within their reach
    text = (project_copy / "environments" / "staging.yaml").read_text()
    (project_copy / "environments" / "stg.yaml").write_text(
        text.replace("name: staging", "name: stg").replace("prefix: mlops-staging", "prefix: mlops-prod-stg"))
    with pytest.raises(ConfigError) as err:
        load_environments(project_copy)
    (problem,) = err.value.problems
    assert problem[:2] == ("environments/stg.yaml", "prefix")
    assert "'mlops-prod-stg' falls under 'mlops-prod-*'" in problem[2] and "environment prod" in problem[2]


@pytest.mark.parametrize(("setting", "value", "reason"), [
    ("ci", {"github_repository": "example-org/mlops-platform"}, "no CI roles"),
    ("replication", {"region": "us-west-2"}, "one region"),
])
def test_the_local_environment_refuses_what_needs_aws(tmp_path, setting, value, reason):
    data = yaml.safe_load((ROOT / "environments" / "local.yaml").read_text())
    data[setting] = value
    path = tmp_path / "local.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=rf"local.yaml: {setting}: .*{reason}"):
        load_environment(path, tmp_path)
