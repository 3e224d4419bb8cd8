"""A Python Lambda function from `lambdas/<handler>/` plus `lambdas/shared/`, packaged in Python.

The zip (stacks/lambda_package.py) keeps the package layout, so handlers import `from
lambdas.shared... import` and the handler string is `lambdas.<handler>.handler.handler`. It is
reproducible, is written into the stack's own folder and referenced relative to it with its
SHA-256: a second plan shows no change, an edited handler shows one. With code signing on
(stacks/constructs/code_signing.py) the zip is uploaded to the artifacts bucket and signed, and the
function is created from the signed copy under the Enforce code-signing config.

Around the function: its log group (retention, KMS), a role with the permissions boundary whose
policy is derived from what the function touches (its own log group, X-Ray, the statements it is
given, and whatever `grant()` adds later), KMS-encrypted environment variables and active tracing.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from stacks.binding import Construct, aws
from stacks.config import LOG_RETENTION_DAYS
from stacks.constructs.code_signing import CodeSigning
from stacks.constructs.scoped_role import ScopedRole, ScopedRoleProps
from stacks.lambda_package import LAMBDAS_DIR, build_package, package_hash
from stacks.layers import RUNTIME, UNZIPPED_LIMIT_BYTES
from stacks.policy import Statement, document, statement

HANDLER_PATTERN = r"^[a-z][a-z0-9_]{0,40}$"
# Where packages go inside the stack folder (Terraform's working directory).
ASSET_DIR = Path("assets") / "lambda"


@dataclass(frozen=True)
class LambdaFunctionProps:
    name: str
    handler: str  # the folder under lambdas/, e.g. "rollback"
    description: str
    stack_dir: Path  # the stack's Terraform working directory (StackPaths.stack_dir)
    kms_key_arn: str  # encrypts the log group and the environment variables
    role_path: str
    boundary_arn: str
    # What the function touches besides its log group; queues add theirs with `grant()`.
    statements: tuple[Statement, ...] = ()
    environment: Mapping[str, str] = field(default_factory=dict)
    timeout_seconds: int = 60
    memory_mb: int = 256
    # Caps the blast radius (and the bill) of a message storm; None leaves the account pool.
    # (A new account whose concurrency quota is still 10 refuses any reservation: use None there.)
    reserved_concurrency: int | None = 5
    log_retention_days: int = 30
    # Layer version ARNs (the project's own, stacks/layers.py); the runtime already has boto3.
    layers: tuple[str, ...] = ()
    # The layers' unzipped size: Lambda refuses a function whose code and layers pass 250 MB.
    layer_bytes: int = 0
    architecture: str = "x86_64"
    lambdas_dir: Path = LAMBDAS_DIR
    # Signs the zip and enforces signed code (stacks/constructs/code_signing.py); None deploys the
    # zip from the stack folder unsigned (the local AWS, which cannot sign).
    signing: CodeSigning | None = None

    def __post_init__(self) -> None:
        if not re.fullmatch(HANDLER_PATTERN, self.handler):
            raise ValueError(f"function {self.name}: handler {self.handler!r} must match "
                             f"{HANDLER_PATTERN} (it is a Python package name)")
        if not (self.lambdas_dir / self.handler / "handler.py").is_file():
            raise ValueError(f"function {self.name}: no {self.lambdas_dir / self.handler}/handler.py")
        if not re.fullmatch(r"^[A-Za-z0-9_-]{1,64}$", self.name):
            raise ValueError(f"function {self.name}: names are 1-64 of [A-Za-z0-9_-]")
        if not 1 <= self.timeout_seconds <= 900:
            raise ValueError(f"function {self.name}: timeout_seconds must be 1..900")
        if not 128 <= self.memory_mb <= 10240:
            raise ValueError(f"function {self.name}: memory_mb must be 128..10240")
        if self.reserved_concurrency is not None and self.reserved_concurrency < 1:
            # 0 would throttle every invocation: a disabled function, not a limit.
            raise ValueError(f"function {self.name}: reserved_concurrency must be >= 1 or None")
        if self.log_retention_days not in LOG_RETENTION_DAYS:
            raise ValueError(f"function {self.name}: log_retention_days must be one of "
                             f"{LOG_RETENTION_DAYS}")
        if self.architecture not in ("x86_64", "arm64"):
            raise ValueError(f"function {self.name}: architecture is x86_64 or arm64")

    @property
    def handler_path(self) -> str:
        return f"lambdas.{self.handler}.handler.handler"


class LambdaFunction(Construct):
    def __init__(self, scope: Construct, id_: str, props: LambdaFunctionProps):
        super().__init__(scope, id_)
        self.props = props
        package = build_package(props.lambdas_dir, props.handler)
        with zipfile.ZipFile(io.BytesIO(package)) as archive:
            unzipped = sum(i.file_size for i in archive.infolist()) + props.layer_bytes
        if unzipped > UNZIPPED_LIMIT_BYTES:
            raise ValueError(f"function {props.name}: its code and layers take {unzipped / 2**20:.0f} MB "
                             f"unzipped; Lambda allows {UNZIPPED_LIMIT_BYTES // 2**20} MB")
        relative = ASSET_DIR / f"{props.name}.zip"
        target = props.stack_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_file() or target.read_bytes() != package:
            target.write_bytes(package)

        # Created before the function, so Lambda never creates it unencrypted without retention.
        self.log_group = aws.cloudwatch_log_group.CloudwatchLogGroup(
            self,
            "logs",
            name=f"/aws/lambda/{props.name}",
            retention_in_days=props.log_retention_days,
            kms_key_id=props.kms_key_arn,
        )
        self.role = ScopedRole(
            self,
            "role",
            ScopedRoleProps(
                name=props.name,
                description=f"Run-time role of the {props.name} function",
                path=props.role_path,
                boundary_arn=props.boundary_arn,
                statements=(self.log_statement("WriteOwnLogs"), _tracing_statement(),
                            *props.statements),
                assumed_by_service="lambda.amazonaws.com",
            ),
        )
        fn = aws.lambda_function
        environment = {"POWERTOOLS_SERVICE_NAME": props.handler, **props.environment}
        if props.signing is None:
            # Relative to the stack folder, Terraform's working directory: the JSON stays
            # machine-independent.
            code = {"filename": relative.as_posix(), "source_code_hash": package_hash(package)}
        else:
            # Created from the signed copy: its key is new whenever the zip changes (a new object
            # version, a new signing job), which is what updates the code. No source_code_hash:
            # Lambda reports the signed zip's digest, not the one built here.
            unsigned = props.signing.upload(self, "zip", relative.name, relative.as_posix(),
                                            hashlib.sha256(package).hexdigest())
            signed = props.signing.sign(self, "signed", unsigned)
            code = {"s3_bucket": signed.bucket, "s3_key": signed.key,
                    "code_signing_config_arn": props.signing.config_arn}
        self.function = fn.LambdaFunction(
            self,
            "function",
            function_name=props.name,
            description=props.description,
            role=self.role.arn,
            runtime=RUNTIME,
            handler=props.handler_path,
            architectures=[props.architecture],
            **code,
            timeout=props.timeout_seconds,
            memory_size=props.memory_mb,
            reserved_concurrent_executions=props.reserved_concurrency,
            kms_key_arn=props.kms_key_arn,
            environment=fn.LambdaFunctionEnvironment(variables=environment),
            tracing_config=fn.LambdaFunctionTracingConfig(mode="Active"),
            layers=list(props.layers) or None,
            depends_on=[self.log_group],
        )
        self._grants = 0

    @property
    def arn(self) -> str:
        return self.function.arn

    @property
    def name(self) -> str:
        return self.function.function_name

    @property
    def timeout_seconds(self) -> int:
        return self.props.timeout_seconds

    def log_statement(self, sid: str) -> Statement:
        arn = self.log_group.arn
        return statement(sid, ["logs:CreateLogStream", "logs:PutLogEvents"], [arn, f"{arn}:*"])

    def grant(self, purpose: str, statements: list[Statement]) -> aws.iam_role_policy.IamRolePolicy:
        """Adds a policy to the function's role: one inline policy per purpose (e.g. one queue), so
        each grant reads, and is revoked, on its own. Returns it for `depends_on`."""
        self._grants += 1
        return aws.iam_role_policy.IamRolePolicy(
            self,
            f"grant_{self._grants}",
            name=f"{self.props.name}-{purpose}",
            role=self.role.role.name,
            policy=document(statements),
        )

    def invoke_statement(self, sid: str) -> Statement:
        return statement(sid, ["lambda:InvokeFunction"], [self.function.arn])


def _tracing_statement() -> Statement:
    # Active tracing: the function sends its segments to X-Ray. These two actions have no
    # resource type, so "*" is the narrowest resource IAM accepts.
    return statement("SendTraces", ["xray:PutTraceSegments", "xray:PutTelemetryRecords"], ["*"])
