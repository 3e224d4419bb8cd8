"""Runs the real Terraform CLI in a synthesized stack's folder, streaming its progress to stderr."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

PROVIDER = "registry.terraform.io/hashicorp/aws"
PROVIDER_VERSION = "5.100.0"

# Where machines keep a filesystem mirror of the provider (the mirror layout is
# <dir>/registry.terraform.io/hashicorp/aws/<version>/<os_arch>/...). MLOPS_TF_PLUGIN_MIRROR wins.
MIRROR_CANDIDATES = (
    "/opt/tf-plugins",
    "~/.terraform.d/plugins",
    "~/.local/share/terraform/plugins",
    "/usr/local/share/terraform/plugins",
    "/usr/share/terraform/plugins",
)


# How long a command waits for a state lock another Terraform run holds (a second deploy of the
# same stack) before it fails; Terraform's own duration syntax.
LOCK_TIMEOUT_ENV = "MLOPS_TF_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT = "120s"
_LOCKED = "Error acquiring the state lock"
_LOCK_FIELD = re.compile(r"^[\s\u2502]*(ID|Path|Operation|Who|Created):\s*(\S.*)$")


def lock_timeout() -> str:
    value = os.environ.get(LOCK_TIMEOUT_ENV, DEFAULT_LOCK_TIMEOUT)
    if not re.fullmatch(r"\d+(ms|s|m|h)", value):
        raise TerraformError(f"{LOCK_TIMEOUT_ENV}={value!r}: not a duration such as 120s or 5m")
    return value


def lock_holder(output: str) -> dict[str, str]:
    """The Lock Info block of an "Error acquiring the state lock" (ID, Path, Operation, Who,
    Created), as far as Terraform printed it."""
    return {m.group(1): m.group(2).strip() for m in map(_LOCK_FIELD.match, output.splitlines()) if m}


class TerraformError(RuntimeError):
    """A terraform command failed; the message names the stack, the command and the tail of the
    output (`output`: all of it)."""

    def __init__(self, message: str, output: str = ""):
        super().__init__(message)
        self.output = output


def find_provider_mirror() -> Path | None:
    explicit = os.environ.get("MLOPS_TF_PLUGIN_MIRROR")
    candidates = [explicit] if explicit else list(MIRROR_CANDIDATES)
    for candidate in candidates:
        folder = Path(candidate).expanduser()
        if (folder / PROVIDER / PROVIDER_VERSION).is_dir():
            return folder
    return None


def cli_config_text(mirror: Path | None) -> str:
    """A Terraform CLI config that installs the AWS provider from the local mirror when there is
    one (no network needed), and from the registry otherwise."""
    if mirror is None:
        return "# no local provider mirror found: providers come from the registry\n"
    return (
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f'    path    = "{mirror}"\n'
        f'    include = ["{PROVIDER}"]\n'
        "  }\n"
        "  direct {\n"
        f'    exclude = ["{PROVIDER}"]\n'
        "  }\n"
        "}\n"
    )


def write_cli_config(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = cli_config_text(find_provider_mirror())
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def terraform_binary() -> str:
    found = shutil.which("terraform") or shutil.which("tofu")
    if not found:
        raise TerraformError(
            "terraform was not found on PATH: install Terraform >= 1.10 (or OpenTofu)"
        )
    return found


@dataclass
class Terraform:
    """Terraform in one working directory (a synthesized stack's folder)."""

    workdir: Path
    label: str
    cli_config: Path
    env: Mapping[str, str] = field(default_factory=dict)
    echo: bool = True  # stream Terraform's progress lines to stderr, prefixed with the label
    # Every line of every command is appended here (Terraform's own output belongs in a log
    # file); with echo off only the outcome lines ("Apply complete! ...") reach stderr.
    log: Path | None = None

    def _environ(self) -> dict[str, str]:
        environ = dict(os.environ)
        environ.update(
            TF_CLI_CONFIG_FILE=str(self.cli_config),
            TF_IN_AUTOMATION="1",
            TF_INPUT="0",
            CHECKPOINT_DISABLE="1",  # no version check calls home
        )
        environ.update(self.env)
        return environ

    def run(self, *args: str, ok_codes: Iterable[int] = (0,),
            on_line: Callable[[str], None] | None = None) -> tuple[int, str]:
        cmd = [terraform_binary(), *args, "-no-color"]
        tail: deque[str] = deque(maxlen=40)
        lines: list[str] = []
        proc = subprocess.Popen(
            cmd,
            cwd=self.workdir,
            env=self._environ(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        with contextlib.ExitStack() as stack:
            log = None
            if self.log is not None:
                self.log.parent.mkdir(parents=True, exist_ok=True)
                # The log holds the last operation: init starts it afresh, later commands add.
                log = stack.enter_context(self.log.open("w" if args[:1] == ("init",) else "a"))
                log.write(f"\n$ terraform {' '.join(args)}  # {self.workdir}\n")
            started = time.monotonic()
            for line in proc.stdout:
                line = line.rstrip("\n")
                lines.append(line)
                tail.append(line)
                if log is not None:
                    # Seconds since the command started: where an apply spends its time shows.
                    log.write(f"[{time.monotonic() - started:6.1f}s] {line}\n")
                if on_line is not None:
                    on_line(line)
                if (self.echo and _worth_showing(line)) or line.startswith(_OUTCOMES):
                    print(f"  [{self.label}] {line}", file=sys.stderr, flush=True)
            code = proc.wait()
        if code not in tuple(ok_codes):
            if any(_LOCKED in line for line in lines):
                raise TerraformError(self._locked_message(args, lines), "\n".join(lines))
            detail = "\n".join(f"    {t}" for t in tail if t.strip())
            where = f" (whole output: {self.log})" if self.log is not None else ""
            raise TerraformError(
                f"{self.label}: `terraform {' '.join(args)}` failed (exit {code}) in "
                f"{self.workdir}{where}:\n{detail}", "\n".join(lines)
            )
        return code, "\n".join(lines)

    def _locked_message(self, args: tuple[str, ...], lines: list[str]) -> str:
        holder = lock_holder("\n".join(lines))
        by = ", ".join(f"{k.lower()} {holder[k]}" for k in ("Who", "Operation", "Created") if k in holder)
        unlock = f"`terraform force-unlock {holder['ID']}` in {self.workdir}" if "ID" in holder else (
            f"`terraform force-unlock` in {self.workdir} with the lock's ID")
        return (f"{self.label}: `terraform {args[0]}` gave up after {lock_timeout()} "
                f"({LOCK_TIMEOUT_ENV}): the stack's state is locked by another Terraform run"
                f"{f' ({by})' if by else ''}. Wait for it to finish and run again; if it died, {unlock}")

    def init(self, *extra: str) -> None:
        self.run("init", "-input=false", *extra)

    def apply(self, on_line: Callable[[str], None] | None = None) -> None:
        self.run("apply", "-input=false", "-auto-approve", f"-lock-timeout={lock_timeout()}", on_line=on_line)

    def destroy(self) -> None:
        self.run("destroy", "-input=false", "-auto-approve", f"-lock-timeout={lock_timeout()}")

    def adopt(self, address: str, import_id: str) -> None:
        """Bring an existing object under `address` into the state (terraform import)."""
        self.run("import", "-input=false", f"-lock-timeout={lock_timeout()}", address, import_id)

    def forget(self, addresses: list[str]) -> None:
        """Drop resources from the state without deleting them."""
        if addresses:
            self.run("state", "rm", f"-lock-timeout={lock_timeout()}", *addresses)

    def validate(self) -> None:
        self.run("validate")

    def plan_changes(self) -> tuple[bool, str]:
        """Run a plan; True when it proposes changes (Terraform's -detailed-exitcode 2)."""
        code, out = self.run("plan", "-input=false", "-detailed-exitcode", f"-lock-timeout={lock_timeout()}",
                             ok_codes=(0, 2))
        return code == 2, out

    def outputs(self) -> dict[str, object]:
        echo, self.echo = self.echo, False
        try:
            _, out = self.run("output", "-json")
        finally:
            self.echo = echo
        return {k: v["value"] for k, v in json.loads(out or "{}").items()}

    def resources(self) -> list[str]:
        echo, self.echo = self.echo, False
        try:
            code, out = self.run("state", "list", ok_codes=(0, 1))
        finally:
            self.echo = echo
        return [line for line in out.splitlines() if line.strip()] if code == 0 else []


# Resource types whose import id is the name a failed create names: "creating <what> (<name>)".
IMPORTED_BY_NAME = ("aws_dynamodb_table", "aws_lambda_function", "aws_iam_role", "aws_s3_bucket",
                    "aws_cloudwatch_metric_alarm", "aws_cloudwatch_event_rule", "aws_cloudwatch_log_group",
                    "aws_ecr_repository", "aws_kms_alias", "aws_sagemaker_model",
                    "aws_sagemaker_endpoint_configuration", "aws_sagemaker_endpoint",
                    "aws_sagemaker_model_package_group", "aws_sagemaker_pipeline")
_ALREADY = re.compile(r"already exists?|ResourceInUseException|ResourceConflictException|EntityAlreadyExists",
                      re.IGNORECASE)
_CREATING = re.compile(r"Error: creating [^(]*\(([^)]+)\)")
_WITH = re.compile(r"^[\s\u2502]*with (\S+?),\s*$")  # "│" frames the block on a terminal


def repeated_creates(output: str) -> list[tuple[str, str]]:
    """(address, import id) of every create an apply failed because the object already exists, for
    the types whose import id is their name; an error of any other kind or type gives nothing.
    Each Terraform error block names its cause on the "Error: creating ..." line and the resource
    on the "with <address>," line after it."""
    found, pending = [], None
    for line in output.splitlines():
        error = _CREATING.search(line)
        if error is not None:
            pending = error.group(1) if _ALREADY.search(line) else None
            continue
        resource = _WITH.match(line)
        if resource is not None and pending is not None:
            address = resource.group(1)
            if address.split(".")[0] in IMPORTED_BY_NAME:
                found.append((address, pending))
            pending = None
    return found


_CREATED = re.compile(r"^(\S+?)(?:\[[^\]]*\])?: Creation complete")


def created_resource(line: str) -> str | None:
    """The address (without an index) a "Creation complete" line of an apply names."""
    match = _CREATED.match(line.strip())
    return match.group(1) if match else None


def managed_resources(workdir: Path) -> set[str]:
    """The addresses of the resources a synthesized stack (cdk.tf.json) manages."""
    document = json.loads((workdir / "cdk.tf.json").read_text())
    return {f"{kind}.{name}" for kind, named in document.get("resource", {}).items() for name in named}


def write_tfvars(workdir: Path, values: Mapping[str, object]) -> None:
    """terraform.tfvars.json is read by every plan/apply in the folder, including a person's own
    `terraform plan` there."""
    (workdir / "terraform.tfvars.json").write_text(json.dumps(dict(values), indent=2) + "\n")


# Terraform's progress lines ("aws_x.y: Creating...", "Apply complete!"), the plan's headline per
# resource and every warning or error. The plan's full diff (which for an S3 object includes the
# whole file) is left to `terraform plan` itself.
_PROGRESS = re.compile(
    r"^\S+: (Creating|Creation complete|Modifying|Modifications complete|Destroying|"
    r"Destruction complete|Still |Reading|Read complete|Refreshing)"
)
# What a command came to: shown even when the rest goes to the log only.
_OUTCOMES = ("Apply complete!", "Destroy complete!")
_HEADLINES = (
    "Apply complete", "Destroy complete", "Plan:", "Error", "Warning", "No changes",
    "Terraform has been successfully initialized", "- Installing", "- Installed",
    "│", "╷", "╵",
)


def _worth_showing(line: str) -> bool:
    text = line.strip()
    if not text:
        return False
    if text.startswith("#"):
        return "will be" in text or "must be replaced" in text
    return bool(_PROGRESS.match(text)) or text.startswith(_HEADLINES)
