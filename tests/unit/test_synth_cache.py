"""A synth is skipped only when none of its inputs changed (mlops/synth_cache.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

from mlops import synth_cache
from mlops.project import Project
from stacks.stack_info import StackInfo

ROOT = Path(__file__).resolve().parents[2]


def _checkout(tmp_path: Path) -> Project:
    shutil.copytree(ROOT / "environments", tmp_path / "environments")
    shutil.copy(ROOT / "cdktf.json", tmp_path / "cdktf.json")
    return Project(tmp_path)


def _synthesized(project: Project, name: str) -> StackInfo:
    folder = project.outdir / "stacks" / name
    folder.mkdir(parents=True)
    (folder / "cdk.tf.json").write_text("{}")
    return StackInfo(name, "local", "platform", folder)


def test_the_same_inputs_reuse_the_last_synth(tmp_path):
    project = _checkout(tmp_path)
    key = synth_cache.inputs_key(project, ["local"])
    infos = [_synthesized(project, "platform-local")]
    assert synth_cache.load(project, key) is None  # nothing synthesized yet
    synth_cache.save(project, key, infos)
    assert synth_cache.load(project, key) == infos
    assert synth_cache.inputs_key(project, ["local"]) == key


def test_any_changed_input_synthesizes_again(tmp_path):
    project = _checkout(tmp_path)
    key = synth_cache.inputs_key(project, ["local"])
    synth_cache.save(project, key, [_synthesized(project, "platform-local")])
    assert synth_cache.inputs_key(project, ["local", "dev"]) != key  # another set of environments
    local = project.root / "environments" / "local.yaml"
    local.write_text(local.read_text() + "\n# a comment is an input too\n")
    assert synth_cache.inputs_key(project, ["local"]) != key
    (project.root / "environments" / "projects" / "fraud.yaml").write_text("name: fraud\n")
    assert synth_cache.inputs_key(project, ["local"]) != key


def test_a_missing_stack_folder_or_a_broken_manifest_means_a_new_synth(tmp_path):
    project = _checkout(tmp_path)
    key = synth_cache.inputs_key(project, ["local"])
    info = _synthesized(project, "platform-local")
    synth_cache.save(project, key, [info])
    (info.dir / "cdk.tf.json").unlink()
    assert synth_cache.load(project, key) is None
    (project.outdir / synth_cache.MANIFEST).write_text("not json")
    assert synth_cache.load(project, key) is None
