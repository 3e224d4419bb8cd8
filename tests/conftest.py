"""Shared fixtures. The cdktf binding is imported once per session (synth_all), never per test."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from local_aws.lifecycle import LocalAws, ServerRecord
from mlops.terraform import find_provider_mirror, write_cli_config
from stacks.config import Environment, load_environments
from stacks.project_config import load_projects

ROOT = Path(__file__).resolve().parents[1]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """`make test` runs two pytest-xdist workers with `--dist loadscope`, whose scope is here a
    module, and one for all of tests/e2e: a module's fixtures (a local AWS, an apply) run once,
    and two local environments never apply or bake at once on the 2-core machine: one worker
    plays the end-to-end modules in order (queued first) while the other runs everything else.
    (xdist's own `loadgroup` marks do not reach pytest 9's node ids.)"""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModulesAndEndToEnd(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "tests/e2e" if module.startswith("tests/e2e/") else module

    return ModulesAndEndToEnd(config, log)


@pytest.fixture(scope="session")
def environments() -> dict[str, Environment]:
    return load_environments(ROOT)


@dataclass(frozen=True)
class Synthesized:
    outdir: Path
    state_dir: Path
    stacks: dict[str, Path]  # stack name -> working directory

    def json(self, stack: str) -> dict:
        return json.loads((self.stacks[stack] / "cdk.tf.json").read_text())


@pytest.fixture(scope="session")
def synth_all(environments, tmp_path_factory) -> Synthesized:
    from stacks.app import synth  # the one binding import of the session

    base = tmp_path_factory.mktemp("synth")
    infos = synth(environments, base / "cdktf.out", base / "state", load_projects(ROOT))
    return Synthesized(base / "cdktf.out", base / "state", {i.name: i.dir for i in infos})


@pytest.fixture(scope="session")
def tf_cli_config(tmp_path_factory) -> Path:
    if shutil.which("terraform") is None:
        pytest.fail("terraform is not on PATH: the integration tests need the real Terraform CLI")
    if find_provider_mirror() is None:
        pytest.fail("no hashicorp/aws 5.100.0 provider mirror found (set MLOPS_TF_PLUGIN_MIRROR)")
    return write_cli_config(tmp_path_factory.mktemp("tf") / "terraformrc")


@pytest.fixture
def moto_server(tmp_path) -> Iterator[ServerRecord]:
    """A moto server on 127.0.0.1 at a free port, started and stopped (by pid) by this test. Its
    endpoints do not serve (the tests using it make API calls with stand-in model archives) and no
    control plane runs in the background (they step it themselves)."""
    local = LocalAws(tmp_path / "local", serve_endpoints=False, background=False)
    server, started = local.start()
    assert started, "a fresh folder must not find an older server"
    try:
        yield server
    finally:
        local.stop()


@pytest.fixture
def sdk_to_moto(moto_server, monkeypatch, tmp_path) -> ServerRecord:
    """The process's AWS calls go to the moto server (as AWS_ENDPOINT_URL sends any SDK there),
    with no profile or credentials file of this machine, and synth output outside the checkout:
    the CLI as it runs against an AWS environment."""
    for key, value in moto_server.client_env().items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("CDKTF_OUTDIR", str(tmp_path / "cdktf.out"))  # not the checkout's
    return moto_server


@pytest.fixture(scope="session")
def serving_synth(environments, tmp_path_factory):
    """The serving-construct test app (tests/serving_app.py) for dev and local, synthesized once."""
    from tests.serving_app import synth  # imports the binding (once per session)

    envs = {name: environments[name] for name in ("dev", "local")}
    return synth(envs, tmp_path_factory.mktemp("serving"))


@pytest.fixture(scope="session")
def demo_model(tmp_path_factory):
    """The demo project's model, trained once per session by the real train step (~5 s)."""
    from tests.step_runner import train_demo_model

    return train_demo_model(tmp_path_factory.mktemp("demo-model"))
