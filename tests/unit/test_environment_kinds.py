"""What an environment is (local, production) comes from its settings, never from its name: the
commands treat a production environment named `live` as prod and a local one named `sandbox` as
the local environment, and an environment named `prod` that is not production as any other."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from mlops.cli import main
from mlops.drill import DrillTarget
from mlops.project import Project

ROOT = Path(__file__).resolve().parents[2]


def renamed(source: str, name: str, **settings: str) -> str:
    """An environment file of the checkout under another name (and prefix), settings replaced."""
    text = (ROOT / "environments" / f"{source}.yaml").read_text()
    text = re.sub(r"(?m)^name: .*$", f"name: {name}", text)
    text = re.sub(r"(?m)^prefix: .*$", f"prefix: mlops-{name}", text)
    for key, value in settings.items():
        text = re.sub(rf"(?m)^{key}: .*$", f"{key}: {value}", text)
    return text


@pytest.fixture()
def checkout(tmp_path, monkeypatch) -> Project:
    shutil.copy(ROOT / "cdktf.json", tmp_path / "cdktf.json")
    shutil.copytree(ROOT / "environments", tmp_path / "environments")
    envs = tmp_path / "environments"
    (envs / "live.yaml").write_text(renamed("prod", "live"))
    (envs / "sandbox.yaml").write_text(renamed("local", "sandbox"))
    monkeypatch.setenv("MLOPS_ROOT", str(tmp_path))
    return Project(tmp_path)


def test_a_production_environment_not_named_prod_is_one(checkout, capsys):
    live = checkout.environment("live")
    assert live.production and not live.is_local and live.promotion.source == "staging"
    assert DrillTarget.of(live, "demo").production
    assert not DrillTarget.of(checkout.environment("staging"), "demo").production
    assert main(["drill", "rollback", "--env", "live", "--project", "demo", "--json"]) == 2
    assert "live is a production environment" in capsys.readouterr().err
    # Its promotion source is found among the checkout's environments (stacks/app.py `related`).
    assert checkout.environments()[live.promotion.source].account_id == "222222222222"


def test_a_local_environment_not_named_local_is_one(checkout, capsys):
    sandbox = checkout.environment("sandbox")
    assert sandbox.is_local and not sandbox.production
    assert main(["ci", "roles", "--env", "sandbox"]) == 2
    assert "sandbox is a local environment (local: true): it has no CI roles" in capsys.readouterr().err
    assert main(["bootstrap", "sandbox"]) == 2
    assert "sandbox is a local environment (local: true)" in capsys.readouterr().err
    # Local: destroyed without --yes (nothing runs here, so nothing to destroy); AWS: asks for it.
    assert main(["destroy", "sandbox", "--json"]) == 0
    assert main(["destroy", "staging"]) == 2
    assert "repeat with --yes" in capsys.readouterr().err
    # The persona check needs the local AWS's access keys: any local environment, no other.
    assert main(["rbac", "check", "--env", "live"]) == 2
    assert "run it with a local environment" in capsys.readouterr().err
