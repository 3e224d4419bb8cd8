"""Every synthesized stack, of every environment, passes `terraform validate` with the real
provider (installed from the machine's mirror)."""

from __future__ import annotations

import shutil

import pytest

from mlops.terraform import Terraform

pytestmark = pytest.mark.integration


def test_every_stack_validates(synth_all, tf_cli_config, tmp_path):
    assert len(synth_all.stacks) >= 7
    for name, stack_dir in sorted(synth_all.stacks.items()):
        workdir = tmp_path / name
        shutil.copytree(stack_dir, workdir)
        tf = Terraform(workdir, name, tf_cli_config, echo=False)
        # -backend=false: validating must not need the remote state buckets or credentials.
        tf.init("-backend=false")
        tf.validate()
