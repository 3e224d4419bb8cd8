"""Builds the cdktf App: one platform stack per environment, one bootstrap stack per state account."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stacks.binding import cdktf
from stacks.bootstrap_stack import BootstrapStack, state_accounts
from stacks.config import Environment
from stacks.platform_stack import PlatformStack, StackPaths
from stacks.platform_stack import stack_name as platform_stack_name


@dataclass(frozen=True)
class StackInfo:
    name: str
    environment: str  # for a bootstrap stack, its first environment
    kind: str  # "bootstrap" | "platform"
    dir: Path


def build_app(
    envs: dict[str, Environment], outdir: Path, state_dir: Path
) -> tuple[cdktf.App, list[StackInfo]]:
    app = cdktf.App(outdir=str(outdir), skip_validation=False)
    infos: list[StackInfo] = []

    def paths(name: str, env_name: str, kind: str) -> StackPaths:
        stack_dir = outdir / "stacks" / name
        infos.append(StackInfo(name, env_name, kind, stack_dir))
        return StackPaths(stack_dir, state_dir)

    for account in state_accounts(list(envs.values())):
        BootstrapStack(app, account, paths(account.name, account.primary.name, "bootstrap"))
    for env in envs.values():
        name = platform_stack_name(env.name)
        PlatformStack(app, env, paths(name, env.name, "platform"))
    return app, infos


def synth(envs: dict[str, Environment], outdir: Path, state_dir: Path) -> list[StackInfo]:
    app, infos = build_app(envs, outdir, state_dir)
    app.synth()
    return infos
