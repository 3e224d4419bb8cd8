"""Synthesize, then run real Terraform for an environment's stacks (deploy, destroy, bootstrap)."""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from local_aws.lifecycle import LocalAws, ServerRecord
from mlops.project import Project
from mlops.terraform import (
    Terraform,
    TerraformError,
    created_resource,
    managed_resources,
    repeated_creates,
    write_cli_config,
    write_tfvars,
)
from stacks import moto_gaps
from stacks.config import Environment
from stacks.stack_info import StackInfo

# Platform resources no project stack reads, which the provider is slow to call created.
SETTLES_LATE = ("aws_s3_bucket_lifecycle_configuration.",)
# Project stacks applied or destroyed at once: one. Measured on the 2-core CI machine, two at once
# made each about twice as slow (e2e `local down` 154 -> 198 s, the new-project apply ~40 s
# longer): the provider's waits are short beside Terraform's and moto's CPU. Plans, which only
# read, run together.
APPLY_WORKERS = 1
PLAN_WORKERS = 3


def say(message: str) -> None:
    """Progress for people, on stderr (stdout is kept for --json)."""
    print(message, file=sys.stderr, flush=True)


def deploy_order(infos: list[StackInfo], env_name: str) -> list[StackInfo]:
    """The environment's replica stack (where it replicates: the platform's replication rules
    need its buckets), its platform stack, then its project stacks (which build on it). Destroy
    goes the other way."""
    return [i for kind in ("replica", "platform", "project") for i in infos
            if i.environment == env_name and i.kind == kind]


@dataclass(frozen=True)
class DeployedStack:
    name: str
    dir: Path
    resources: int
    outputs: dict[str, object]


def ensure_layers() -> None:
    """The Lambda layers the stacks reference, built once (from the registry) into the cache; a
    deploy may download, a synth never does (stacks/layers.py)."""
    from mlops.layers import build
    from stacks.layers import all_layers, layer_zip

    missing = tuple(spec for spec in all_layers() if not layer_zip(spec).is_file())
    if missing:
        build(missing)


def synthesize(project: Project, envs: dict[str, Environment], *, force: bool = False):
    """Synthesize every environment's stacks in this process (one binding import), unless the
    last synth into the same folder had exactly these inputs (mlops/synth_cache.py)."""
    from mlops import synth_cache

    key = synth_cache.inputs_key(project, envs)
    cached = None if force else synth_cache.load(project, key)
    if cached is not None:
        say(f"==> {len(cached)} stacks in {project.outdir} are up to date (no input changed since "
            "their synth)")
        return cached
    say(f"==> synthesizing {len(envs)} environment(s) into {project.outdir}")
    started = time.monotonic()
    from stacks.app import synth  # the ~10 s binding import happens here, once

    # Every environment, not only these: a promotion's source and target grant each other.
    infos = synth(envs, project.outdir, project.state_dir, project.projects(),
                  related=project.environments())
    synth_cache.save(project, key, infos)
    say(f"    {len(infos)} stacks in {time.monotonic() - started:.1f} s")
    return infos


class Deployer:
    def __init__(self, project: Project, *, show_terraform: bool = False, push_images: bool = False,
                 skip_k8s: bool = False):
        self.project = project
        # Leave the EKS manifests to a later `mlops k8s apply` (e.g. from inside the cluster's VPC).
        self.skip_k8s = skip_k8s
        self.k8s_applied: list[dict[str, object]] = []
        # Push the images ECR lacks (built on this machine) where a deploy would refuse.
        self.push_images = push_images
        # Terraform's own output goes to <work dir>/logs/<stack>.log; shown too when asked.
        self.show_terraform = show_terraform
        self.cli_config = write_cli_config(project.work_dir / "terraformrc")
        self.local = LocalAws(project.local_dir, tls=True)

    def _terraform(self, name: str, stack_dir: Path, server: ServerRecord | None) -> Terraform:
        if server is not None:
            from stacks.provider import CA_BUNDLE_VARIABLE, ENDPOINT_VARIABLE

            write_tfvars(stack_dir, {ENDPOINT_VARIABLE: server.endpoint_url,
                                     CA_BUNDLE_VARIABLE: server.ca_bundle or ""})
        return Terraform(stack_dir, name, self.cli_config, echo=self.show_terraform,
                         log=self.log_file(name))

    def log_file(self, stack: str) -> Path:
        return self.project.work_dir / "logs" / f"{stack}.log"

    def _env_stacks(self, infos, env_name: str):
        return deploy_order(infos, env_name)

    def deploy(self, env_name: str) -> list[DeployedStack]:
        envs = self.project.environments()  # every file is validated, not just this one
        env = self.project.environment(env_name, envs)
        has_projects = any(env_name in by_env for by_env in self.project.projects().values())
        if env.is_local:
            server = self._ensure_local_server(env)
            if has_projects:
                say("    images: no local job runs in a container, so the image check is skipped")
        else:
            server = None
            self._require_signing_profile(env)
            if has_projects:
                self._require_images(env, before_platform=True)
        ensure_layers()
        # Only this environment's stacks are written (the others' files were validated above).
        infos = synthesize(self.project, {env_name: env})
        stacks = self._env_stacks(infos, env_name)
        if env.is_local and len(stacks) > 1:
            deployed = self._overlapped(stacks, server)
        else:
            deployed = []
            for n, info in enumerate(stacks, 1):
                # The first project stack, right after the platform stack.
                if info.kind == "project" and stacks[n - 2].kind == "platform" and server is None:
                    self._require_images(env, before_platform=False)
                deployed.append(self._apply(n, len(stacks), info, server))
        if env.is_local:
            self._record_local_stacks(env_name, deployed)
        else:
            self._apply_k8s(env)
        return deployed

    def _apply_k8s(self, env: Environment) -> None:
        """The EKS-serving projects' manifests, once their roles exist (mlops/k8s_serving.py)."""
        from mlops.k8s_serving import deploy_step, eks_projects

        names = eks_projects(self.project, env.name) if env.eks.enabled else []
        if not names:
            return
        if self.skip_k8s:
            say(f"    k8s: skipped (--skip-k8s); apply later with `mlops k8s apply --env {env.name} "
                f"--project P` for {', '.join(names)}")
            return
        from mlops.aws_clients import clients_for

        self.k8s_applied = deploy_step(self.project, env, clients_for(self.project, env))

    def _require_signing_profile(self, env: Environment) -> None:
        """No apply while the profile's name is held by a canceled one (mlops/signing_profile.py):
        the platform stack would fail half-applied."""
        from mlops.aws_clients import clients_for
        from mlops.signing_profile import require_usable

        require_usable(env, clients_for(self.project, env)("signer"))

    def _require_images(self, env: Environment, *, before_platform: bool) -> None:
        """No project stack is applied (it would create or update pipelines and endpoints that
        run the images) while ECR lacks the images' tag. The repositories are the platform
        stack's: in a fresh account they appear with its apply, so a missing repository defers
        the check to just before the first project stack; a missing tag refuses at once."""
        from mlops.aws_clients import clients_for
        from mlops.images import ImageError, missing_images, refusal
        from stacks.images import environment_images

        ecr, images = clients_for(self.project, env)("ecr"), environment_images(env)
        missing = missing_images(ecr, images)
        if before_platform and missing and any(m.reason == "no such repository" for m in missing):
            say("    images: the platform stack creates the ECR repositories; the images are checked "
                "before the project stacks")
            return
        if missing and self.push_images:
            from mlops.images import find_builder, push

            push(env, find_builder(self.project.work_dir / "logs"), ecr)
            missing = missing_images(ecr, images)
        if missing:
            raise ImageError(refusal(env, missing))
        say(f"    images: {', '.join(i.uri for i in images)} are in ECR")

    def _apply(self, n: int, total: int, info, server: ServerRecord | None,
               tf: Terraform | None = None, on_line=None) -> DeployedStack:
        say(f"==> [{n}/{total}] {info.name}: terraform init + apply")
        started = time.monotonic()
        if tf is None:
            tf = self._terraform(info.name, info.dir, server)
            tf.init()
        if server is None:
            tf.apply(on_line=on_line)
        else:
            self._apply_local(tf, info.name, on_line)
        stack = DeployedStack(info.name, info.dir, len(tf.resources()), tf.outputs())
        say(f"    {info.name}: {stack.resources} resources, {time.monotonic() - started:.1f} s "
            f"(terraform log: {self.log_file(info.name)})")
        return stack

    @staticmethod
    def _apply_local(tf: Terraform, name: str, on_line=None) -> None:
        """An apply on the local AWS that survives a create the provider repeated: on a loaded
        machine a moto response can arrive after the provider's timeout, which then sends the
        create again and fails on "already exists" (seen with CreateFunction and CreateTable). The
        object it made is adopted (terraform import) and the apply runs again, once per object; any
        other failure fails as before."""
        adopted: set[str] = set()
        while True:
            try:
                tf.apply(on_line=on_line)
                return
            except TerraformError as exc:
                repeated = [(a, i) for a, i in repeated_creates(exc.output) if a not in adopted]
                if not repeated:
                    raise
                for address, import_id in repeated:
                    say(f"    {name}: {address} exists already (a create the provider repeated): "
                        f"adopting {import_id} and applying again")
                    tf.adopt(address, import_id)
                    adopted.add(address)

    def _overlapped(self, stacks, server: ServerRecord | None) -> list[DeployedStack]:
        """The local platform stack, with the project stacks applied as soon as every platform
        resource they could read exists: only the buckets' lifecycle configurations are left then,
        which the provider waits ~55 s on (rules reading back consistently) and which no project
        resource reads. A re-run, where nothing is created, waits for the whole platform apply.
        (Raising Terraform's parallelism as well saved ~10 s more, but on a loaded 2-core machine
        the one moto worker then lost a CreateFunction response: the provider retried a create
        that had succeeded and waited out five minutes of ResourceConflict retries.)"""
        platform, projects = stacks[0], stacks[1:]
        tf = self._terraform(platform.name, platform.dir, server)
        tf.init()
        waiting = {a for a in managed_resources(platform.dir) if not a.startswith(SETTLES_LATE)}
        ready, lock = threading.Event(), threading.Lock()

        def seen(line: str) -> None:
            address = created_resource(line)
            if address is not None:
                with lock:
                    waiting.discard(address)
                    if not waiting:
                        ready.set()

        # Leaving the pool waits for the platform apply, whatever happened to the project applies.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"apply-{platform.name}") as pool:
            applying = pool.submit(self._apply, 1, len(stacks), platform, server, tf, seen)
            applying.add_done_callback(lambda _: ready.set())
            ready.wait()
            if not applying.done():
                say(f"    {platform.name}: every resource the project stacks read exists; its bucket "
                    "lifecycle rules settle meanwhile")
            elif applying.exception() is not None:
                raise applying.exception()  # type: ignore[misc]
            applied = self._together(
                projects, lambda n, info: self._apply(n, len(stacks), info, server), first=2)
            return [applying.result(), *applied]

    @staticmethod
    def _together(stacks, work, *, first: int = 1, workers: int = APPLY_WORKERS) -> list:
        """`work(n, info)` for every stack, up to `workers` at once (project stacks share nothing
        but the platform they read). Every stack finishes before the first error is raised, so
        no apply is left running behind an exception."""
        if len(stacks) < 2 or workers < 2:
            return [work(n, info) for n, info in enumerate(stacks, first)]
        with ThreadPoolExecutor(max_workers=min(len(stacks), workers),
                                thread_name_prefix="stack") as pool:
            futures = [pool.submit(work, n, info) for n, info in enumerate(stacks, first)]
        return [f.result() for f in futures]

    def plan(self, env_name: str) -> list[dict[str, object]]:
        """`terraform plan` of every stack of the environment (nothing applied): per stack, whether
        it would change anything and Terraform's summary line. Locally the local AWS must run."""
        env = self.project.environment(env_name)
        server = self.local.require() if env.is_local else None
        if not env.is_local:
            from mlops.aws_clients import clients_for
            from mlops.signing_profile import plan_warning

            warning = plan_warning(env, clients_for(self.project, env)("signer"))
            if warning:
                say(f"    warning: {warning}")
        ensure_layers()
        stacks = self._env_stacks(synthesize(self.project, {env_name: env}), env_name)

        def plan(n: int, info) -> dict[str, object]:
            say(f"==> [{n}/{len(stacks)}] {info.name}: terraform init + plan")
            tf = self._terraform(info.name, info.dir, server)
            tf.init()
            changes, out = tf.plan_changes()
            summary = next((line.strip() for line in reversed(out.splitlines())
                            if line.strip().startswith(("Plan:", "No changes."))), "")
            say(f"    {info.name}: {summary or ('changes' if changes else 'no changes')}")
            return {"name": info.name, "dir": str(info.dir), "changes": changes, "summary": summary}

        return self._together(stacks, plan, workers=PLAN_WORKERS)

    def destroy(self, env_name: str) -> list[str]:
        envs = self.project.environments()
        env = self.project.environment(env_name, envs)
        server = None
        if env.is_local:
            server = self.local.running()
            if server is None:
                say("==> the local AWS is not running: nothing to destroy")
                self._forget_local_state()
                return []
        ensure_layers()
        infos = synthesize(self.project, {env_name: env})
        stacks = list(reversed(self._env_stacks(infos, env_name)))

        def destroy(n: int, info) -> str:
            say(f"==> [{n}/{len(stacks)}] {info.name}: terraform destroy")
            tf = self._terraform(info.name, info.dir, server)
            tf.init()
            if env.is_local:
                tf.forget(moto_gaps.undeletable(tf.resources()))
            tf.destroy()
            return info.name

        # The project stacks together, then the platform they read (last in the list).
        projects = [i for i in stacks if i.kind == "project"]
        destroyed = self._together(projects, destroy)
        destroyed += [destroy(n, info) for n, info in enumerate(stacks, 1) if info.kind != "project"]
        if env.is_local:
            self._record_local_stacks(env_name, [])
        else:
            from mlops.signing_profile import after_destroy

            note = after_destroy(env) if any(i.kind == "platform" for i in stacks) else None
            if note:
                say(f"    note: {note}")
        return destroyed

    def bootstrap(self, env_name: str) -> list[DeployedStack]:
        envs = self.project.environments()
        if self.project.environment(env_name, envs).is_local:
            raise ValueError(f"{env_name} is a local environment (local: true): it keeps local state "
                             "and needs no bootstrap")
        infos = synthesize(self.project, envs)
        stacks = [i for i in infos if i.kind == "bootstrap" and env_name in i.name.split("-")[1:]]
        out = []
        for info in stacks:
            say(f"==> {info.name}: terraform init + apply (state bucket of the account)")
            tf = self._terraform(info.name, info.dir, None)
            tf.init()
            tf.apply()
            out.append(DeployedStack(info.name, info.dir, len(tf.resources()), tf.outputs()))
        return out

    # The local environment ------------------------------------------------------------------

    def _ensure_local_server(self, env: Environment) -> ServerRecord:
        self.local.region = env.region
        server, started = self.local.start()
        if started:
            say(f"==> started the local AWS (moto) at {server.endpoint_url} (pid {server.pid})")
            # A new moto server starts empty: state files from an earlier server describe
            # resources that no longer exist, so they are dropped rather than refreshed away.
            self._forget_local_state()
        else:
            say(f"==> using the local AWS at {server.endpoint_url} (pid {server.pid})")
        return server

    def stop_local(self) -> bool:
        stopped = self.local.stop()
        self._forget_local_state()
        return stopped

    def local_environments(self) -> list[str]:
        """The local environments with stacks on the local AWS (recorded, or with state left by
        an apply that failed), `local` last (a local prod reads its promotion source there): the
        order `local down` destroys them in."""
        deployed = {_environment_of(s["name"]) for s in self._recorded_stacks()}
        local = [name for name, env in self.project.environments().items() if env.is_local]
        deployed |= {name for name in local if any(self.project.state_dir.glob(f"*-{name}.tfstate"))}
        return sorted(deployed, key=lambda name: (name == "local", name))

    def _forget_local_state(self) -> None:
        # Every stack's name ends in "-<environment>" (names carry their environment).
        local = [name for name, env in self.project.environments().items() if env.is_local]
        for name in local:
            for f in self.project.state_dir.glob(f"*-{name}.tfstate*"):
                f.unlink()
        # MLflow's runs point at artifacts in the old server's buckets: they go with it.
        shutil.rmtree(self.project.local_dir / "mlflow", ignore_errors=True)
        self._deployed_file.unlink(missing_ok=True)

    @property
    def _deployed_file(self) -> Path:
        return self.project.local_dir / "stacks.json"

    def _recorded_stacks(self) -> list[dict[str, str]]:
        with contextlib.suppress(OSError, ValueError):
            return json.loads(self._deployed_file.read_text())
        return []

    def _record_local_stacks(self, env_name: str, stacks: list[DeployedStack]) -> None:
        """The environment's stacks on the local AWS now, beside the other local environments'."""
        others = [s for s in self._recorded_stacks() if _environment_of(s["name"]) != env_name]
        self.project.local_dir.mkdir(parents=True, exist_ok=True)
        self._deployed_file.write_text(json.dumps(
            others + [{"name": s.name, "dir": str(s.dir)} for s in stacks], indent=2) + "\n")

    def local_status(self) -> dict[str, object]:
        server = self.local.running()
        stacks = self._recorded_stacks() if server is not None else []
        record = server or self.local.record()
        return {
            "running": server is not None,
            "endpoint_url": server.endpoint_url if server else None,
            "region": record.region if record else None,
            "pid": server.pid if server else None,
            "stacks": stacks,
            "endpoints": self.local.endpoints(),
            # Every call checked against IAM (`mlops local up --enforce-iam`).
            "iam_enforced": server.iam_enforced() if server else False,
        }


def _environment_of(stack_name: str) -> str:
    """A stack's environment: its name's last part (environment names hold no hyphen)."""
    return stack_name.rsplit("-", 1)[-1]
