"""Builds the cdktf App: one platform stack per environment (and its replica stack where it
replicates), one bootstrap stack per state account."""

from __future__ import annotations

from pathlib import Path

from stacks.binding import cdktf
from stacks.bootstrap_stack import BootstrapStack, state_accounts
from stacks.config import Environment
from stacks.naming import project_stack_name
from stacks.platform_stack import PlatformStack, StackPaths
from stacks.platform_stack import stack_name as platform_stack_name
from stacks.project_config import ProjectConfig
from stacks.project_stack import ProjectStack
from stacks.promotion_grants import Promotions
from stacks.replica_stack import ReplicaStack
from stacks.replication import replica_stack_name
from stacks.stack_info import StackInfo


def build_app(
    envs: dict[str, Environment],
    outdir: Path,
    state_dir: Path,
    projects: dict[str, dict[str, ProjectConfig]] | None = None,
    related: dict[str, Environment] | None = None,
) -> tuple[cdktf.App, list[StackInfo]]:
    """Bootstrap stacks, then per environment its platform stack and one stack per project that
    lists the environment (projects: name -> environment -> settings for that environment).

    related: every environment of the checkout, where only some are synthesized (`mlops deploy
    prod`): a promotion's source grants its targets, a target's promoter reads its source, and a
    production environment's project stacks name its source's model package group, so both
    stacks need the other's names (stacks/promotion_grants.py)."""
    known = {**(related or {}), **envs}
    app = cdktf.App(outdir=str(outdir), skip_validation=False)
    promotions = Promotions.of(known,
                               {name: set(per_env) for name, per_env in (projects or {}).items()})
    infos: list[StackInfo] = []

    def paths(name: str, env_name: str, kind: str) -> StackPaths:
        stack_dir = outdir / "stacks" / name
        infos.append(StackInfo(name, env_name, kind, stack_dir))
        return StackPaths(stack_dir, state_dir)

    for account in state_accounts(list(envs.values())):
        BootstrapStack(app, account, paths(account.name, account.primary.name, "bootstrap"))
    for env in envs.values():
        if env.replication is not None:  # before the platform stack, whose rules replicate into it
            ReplicaStack(app, env, paths(replica_stack_name(env.name), env.name, "replica"))
        name = platform_stack_name(env.name)
        PlatformStack(app, env, paths(name, env.name, "platform"), promotions)
        source = promotion_source(env, known)
        for project_name, per_env in sorted((projects or {}).items()):
            if env.name in per_env:
                stack = project_stack_name(project_name, env.name)
                ProjectStack(app, env, per_env[env.name], paths(stack, env.name, "project"),
                             promotions, source)
    return app, infos


def promotion_source(env: Environment, known: dict[str, Environment]) -> Environment | None:
    if env.promotion is None:
        return None
    if env.promotion.source not in known:
        raise ValueError(f"{env.name} promotes from {env.promotion.source}: synthesize it with that "
                         "environment (related)")
    return known[env.promotion.source]


def synth(
    envs: dict[str, Environment],
    outdir: Path,
    state_dir: Path,
    projects: dict[str, dict[str, ProjectConfig]] | None = None,
    related: dict[str, Environment] | None = None,
) -> list[StackInfo]:
    app, infos = build_app(envs, outdir, state_dir, projects, related)
    app.synth()
    return infos
