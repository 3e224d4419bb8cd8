"""Project files: the shipped demo is valid in every environment; mistakes are named precisely."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from mlops.cli import main
from stacks.config import ConfigError
from stacks.project_config import load_project_all, load_projects

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "environments" / "projects" / "demo.yaml"


def test_demo_is_valid_everywhere_with_its_overrides():
    per_env = load_projects(ROOT)["demo"]
    assert set(per_env) == {"local", "localprod", "dev", "staging", "prod"}
    assert per_env["prod"].serving.deployment.strategy == "linear"
    # The local prod serves as fast as local (the same overrides, a YAML alias).
    assert per_env["localprod"].model_dump() == per_env["local"].model_dump()
    assert per_env["prod"].serving.autoscaling.min_instances == 2
    assert per_env["dev"].serving.deployment.strategy == "canary"
    assert per_env["local"].serving.deployment.wait_seconds == 16
    assert per_env["local"].alarms.period_seconds == 10
    # An override changes only what it names.
    assert per_env["local"].serving.deployment.step_percent == per_env["dev"].serving.deployment.step_percent
    assert per_env["local"].training == per_env["prod"].training


def _write(tmp_path: Path, edit) -> Path:
    data = yaml.safe_load(DEMO.read_text())
    edit(data)
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


CASES = [
    ("unknown key", lambda d: d["training"].update(epochz=3), "training.epochz", "unknown setting"),
    ("split does not add up", lambda d: d["training"]["split"].update(test=0.3), "training.split",
     "add up to 1.0"),
    ("metric of another task", lambda d: d["gate"]["thresholds"].update(rmse=0.1), "(top level)",
     "not classification metrics"),
    ("bad name", lambda d: d.update(name="Demo_Project"), "name", "does not match"),
    ("unknown environment", lambda d: d.update(environments=["local", "qa"]), "environments",
     "no environment 'qa'; known: local, dev, staging, prod"),
    ("override of an unknown environment", lambda d: d["overrides"].update(qa={}), "overrides.qa",
     "no such environment"),
    ("override of the name", lambda d: d["overrides"]["prod"].update(name="other"),
     "overrides.prod.name", "cannot differ"),
    ("bad override value", lambda d: d["overrides"]["prod"]["serving"]["autoscaling"].update(
        min_instances=9), "overrides.prod -> serving.autoscaling", "must not exceed"),
    ("bad schedule", lambda d: d["drift"].update(schedule="hourly"), "drift.schedule", "does not match"),
    # SageMaker publishes endpoint metrics per minute: a 10 s alarm period is the local AWS's only.
    ("sub-minute period outside local", lambda d: d["alarms"].update(period_seconds=10),
     "alarms.period_seconds", "for the local environment only"),
    ("sub-minute period in a dev override",
     lambda d: d["overrides"].update(dev={"alarms": {"period_seconds": 30}}),
     "overrides.dev.alarms.period_seconds", "below the 60 s"),
    ("period CloudWatch does not offer", lambda d: d["alarms"].update(period_seconds=20),
     "alarms.period_seconds", "Input should be"),
    ("off hours in prod", lambda d: d["serving"]["autoscaling"].update(off_hours={}),
     "serving.autoscaling.off_hours", "around the clock"),
    ("off hours not a cron", lambda d: d["overrides"]["dev"]["serving"]["autoscaling"]["off_hours"].update(
        scale_down="19:00"), "overrides.dev -> serving.autoscaling.off_hours.scale_down", "does not match"),
]


@pytest.mark.parametrize(("case", "edit", "field", "reason"), CASES, ids=[c[0] for c in CASES])
def test_mistakes_name_file_field_and_reason(tmp_path, case, edit, field, reason):
    with pytest.raises(ConfigError) as err:
        load_project_all(_write(tmp_path, edit), tmp_path)
    lines = str(err.value).splitlines()
    assert any(line.startswith(f"demo.yaml: {field}") and reason in line for line in lines), lines


def test_file_name_must_match_project_name(tmp_path):
    path = _write(tmp_path, lambda d: None).rename(tmp_path / "other.yaml")
    with pytest.raises(ConfigError, match=r"other.yaml: name: 'demo' must match the file name"):
        load_project_all(path, tmp_path)


def test_cli_validate_exits_2_on_a_broken_project(tmp_path, monkeypatch, capsys):
    shutil.copytree(ROOT / "environments", tmp_path / "environments")
    shutil.copy(ROOT / "cdktf.json", tmp_path / "cdktf.json")
    monkeypatch.setenv("MLOPS_ROOT", str(tmp_path))
    path = tmp_path / "environments" / "projects" / "demo.yaml"
    path.write_text(path.read_text().replace("seed: 42", "seed: forty-two"))
    assert main(["validate"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: environments/projects/demo.yaml: training.seed: Input should be a valid integer"
    ]
    assert main(["pipeline", "run", "--env", "local", "--project", "demo"]) == 2
    assert not (tmp_path / ".mlops" / "local" / "server.json").exists()


def test_cli_names_an_unknown_project(tmp_path, monkeypatch, capsys):
    shutil.copytree(ROOT / "environments", tmp_path / "environments")
    shutil.copy(ROOT / "cdktf.json", tmp_path / "cdktf.json")
    monkeypatch.setenv("MLOPS_ROOT", str(tmp_path))
    assert main(["pipeline", "run", "--env", "local", "--project", "nope"]) == 2
    assert "environments/projects/nope.yaml: (file): no such project; known: demo" in capsys.readouterr().err


def test_project_new_writes_a_valid_file_and_refuses_taken_or_bad_names(tmp_path, monkeypatch, capsys):
    import json

    shutil.copytree(ROOT / "environments", tmp_path / "environments")
    shutil.copy(ROOT / "cdktf.json", tmp_path / "cdktf.json")
    monkeypatch.setenv("MLOPS_ROOT", str(tmp_path))
    assert (
        main(["project", "new", "fraud", "--team", "risk-ml", "--env", "local", "--env", "dev", "--json"])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["stacks"] == ["project-fraud-local", "project-fraud-dev"]
    per_env = load_projects(tmp_path)["fraud"]
    assert set(per_env) == {"local", "dev"} and per_env["dev"].team == "risk-ml"
    assert per_env["dev"].serving.capture_sampling_percent == 100

    assert main(["project", "new", "fraud", "--team", "risk-ml"]) == 2
    assert "project 'fraud' is taken" in capsys.readouterr().err
    assert main(["project", "new", "Fraud_2", "--team", "risk-ml"]) == 2
    assert "project name 'Fraud_2' is invalid" in capsys.readouterr().err
    assert main(["project", "new", "churn", "--team", "Risk ML"]) == 2
    assert "team 'Risk ML' is invalid" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "environments" / "projects").iterdir()) == [
        "demo.yaml",
        "fraud.yaml",
    ]
