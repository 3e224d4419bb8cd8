"""The local AWS: a moto server on 127.0.0.1, started and stopped by process id.

The server's record (pid, port, endpoint) lives in .mlops/local/server.json so that later commands
(`local status`, `local down`, `deploy local`, tests) find it. Only the process that the record
names is ever signalled, and only after checking it is still a moto server: a recycled pid is never
killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from local_aws.processes import kill_group

HOST = "127.0.0.1"
START_TIMEOUT_S = 60.0


# The local AWS's own switches (served by moto_server.py; not AWS APIs): the drill's endpoint
# outage, and IAM enforcement (GET -> {"enforced"}, POST {"enforced": bool}).
OUTAGE_PATH = "/_local/endpoint-outage"
IAM_PATH = "/_local/iam-enforcement"
# The accounts the local AWS holds state in (moto keeps each service's state per account).
ACCOUNTS_PATH = "/_local/accounts"


class LocalAwsError(RuntimeError):
    pass


@dataclass(frozen=True)
class ServerRecord:
    pid: int
    port: int
    region: str
    started_at: float
    log_file: str
    # The certificate the server presents when it serves HTTPS (see local_aws/tls.py); clients
    # pass it as their CA bundle.
    ca_bundle: str | None = None
    # Whether its endpoints serve (local_aws/endpoint_runtime.py): model server processes behind
    # InvokeEndpoint, data capture and AWS/SageMaker metrics.
    serves_endpoints: bool = False
    # Whether it runs the control plane by itself (local_aws/background.py).
    runs_background: bool = False

    @property
    def endpoint_url(self) -> str:
        return f"{'https' if self.ca_bundle else 'http'}://{HOST}:{self.port}"

    def client_env(self) -> dict[str, str]:
        """What a process needs to talk to this server with any AWS SDK (or Terraform)."""
        from stacks import moto_gaps

        env = {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": moto_gaps.PROVIDER_CREDENTIALS["access_key"],
            "AWS_SECRET_ACCESS_KEY": moto_gaps.PROVIDER_CREDENTIALS["secret_key"],
        }
        if self.ca_bundle:
            env["AWS_CA_BUNDLE"] = self.ca_bundle
        return env

    def client(self, service: str, region: str | None = None, credentials: dict[str, str] | None = None):
        """A boto3 client for this server (in its region unless told another), with the
        deployer's placeholder credentials or a role session's (local_aws/role_sessions.py)."""
        import boto3

        from stacks import moto_gaps

        keys = credentials or {"AWS_ACCESS_KEY_ID": moto_gaps.PROVIDER_CREDENTIALS["access_key"],
                               "AWS_SECRET_ACCESS_KEY": moto_gaps.PROVIDER_CREDENTIALS["secret_key"]}
        return boto3.client(
            service, region_name=region or self.region, endpoint_url=self.endpoint_url,
            verify=self.ca_bundle or True, aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=keys.get("AWS_SESSION_TOKEN"),
        )

    def session_client_factory(self, role_arn: str, session_name: str,
                               assumed_with: dict[str, str] | None = None,
                               source_identity: str | None = None) -> Callable[[str], Any]:
        """`factory(service)` -> a client calling as a session of the role, assumed with the
        deployer's key or `assumed_with` (an IAM user's AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY),
        carrying `source_identity` (the person, STS SourceIdentity) when given."""
        from local_aws.role_sessions import RoleSessions

        sts = RoleSessions(lambda: self.client("sts", credentials=assumed_with))
        credentials = sts.credentials(role_arn, session_name, source_identity)
        return lambda service: self.client(service, credentials=credentials)

    def account_client(self, service: str, account_id: str, session_name: str = "mlops-local"):
        """A client acting in the account: the deployer's key in the default account, a session
        of the account's access role in another (stacks/moto_gaps.account_access_role)."""
        from stacks import moto_gaps

        role_arn = moto_gaps.account_access_role(account_id)
        if role_arn is None:
            return self.client(service)
        return self.session_client_factory(role_arn, session_name)(service)

    def accounts(self) -> list[str]:
        """The accounts the local AWS holds state in, its default account first."""
        return list(self._local_switch(ACCOUNTS_PATH, None, "its accounts")["accounts"])

    def endpoint_outage(self, account: str, endpoint: str, percent: float) -> str:
        """The local drill switch (moto_server.OUTAGE_PATH): `percent` of the requests to the
        endpoint's serving fleet fail from now (0 ends it). Returns the config that fleet serves."""
        body = {"account": account, "region": self.region, "endpoint": endpoint, "percent": percent}
        return self._local_switch(OUTAGE_PATH, body, f"the outage on {endpoint}")["config"]

    def iam_enforced(self) -> bool:
        """Whether every call to this server is checked against IAM (local_aws/iam_enforcement.py)."""
        return bool(self._local_switch(IAM_PATH, None, "the IAM enforcement state")["enforced"])

    def enforce_iam(self, on: bool) -> None:
        self._local_switch(IAM_PATH, {"enforced": on}, "IAM enforcement")

    def _local_switch(self, path: str, body: dict[str, Any] | None, what: str) -> dict[str, Any]:
        """One of the local AWS's own switches (not AWS APIs): POST `body`, or GET without one."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.endpoint_url}{path}", data=data,
                                         method="POST" if data is not None else "GET",
                                         headers={"Content-Type": "application/json"})
        context = ssl.create_default_context(cafile=self.ca_bundle) if self.ca_bundle else None
        try:
            with urllib.request.urlopen(request, timeout=10, context=context) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            reason = json.loads(exc.read() or b"{}").get("message", exc.reason)
            raise LocalAwsError(f"the local AWS refused {what}: {reason}") from None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def is_responding(endpoint_url: str, timeout: float = 2.0, ca_bundle: str | None = None) -> bool:
    context = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else None
    try:
        # The dashboard page: cheap, and unlike /moto-api/data.json it does not walk every
        # backend (with Lambda functions that walk asks Docker and fails with a 500).
        with urllib.request.urlopen(f"{endpoint_url}/moto-api/", timeout=timeout,
                                    context=context) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _command_line(pid: int) -> str | None:
    """The process's command line, or None where /proc cannot tell (gone, or no /proc: macOS)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None


def _is_our_moto(pid: int) -> bool:
    """The pid is alive and its command line is a moto server (not a recycled pid)."""
    cmdline = _command_line(pid)
    if cmdline is None:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True  # no /proc (macOS): alive is the best we can tell
    return "moto" in cmdline


class LocalAws:
    """Start, find and stop the moto server recorded under `local_dir`."""

    def __init__(self, local_dir: Path, region: str = "us-east-1", tls: bool = False,
                 serve_endpoints: bool = True, background: bool = True):
        self.local_dir = local_dir
        self.region = region
        self.tls = tls  # serve HTTPS (the local environment); tests of plain clients may skip it
        # Back endpoints with model servers. Tests of API calls alone (handlers, constructs) whose
        # endpoints name no real model archive switch it off; there endpoints are InService at once.
        self.serve_endpoints = serve_endpoints
        # Run the control plane in the background, as AWS runs its services. Tests that step the
        # plane themselves and count what it did switch it off.
        self.background = background
        self.record_file = local_dir / "server.json"
        self.endpoints_file = local_dir / "endpoints.json"

    def record(self) -> ServerRecord | None:
        try:
            return ServerRecord(**json.loads(self.record_file.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def running(self) -> ServerRecord | None:
        rec = self.record()
        if rec and _is_our_moto(rec.pid) and is_responding(rec.endpoint_url, ca_bundle=rec.ca_bundle):
            return rec
        return None

    def require(self) -> ServerRecord:
        """The running server, or LocalAwsError saying how to start it (commands that act on it)."""
        rec = self.running()
        if rec is None:
            raise LocalAwsError("the local AWS is not running: start it with `mlops local up`")
        return rec

    def start(self, extra_env: dict[str, str] | None = None) -> tuple[ServerRecord, bool]:
        """Return the running server, or start one. The bool says whether it was started now."""
        rec = self.running()
        if rec and bool(rec.ca_bundle) == self.tls and rec.serves_endpoints == self.serve_endpoints \
                and rec.runs_background == self.background:
            return rec, False
        # An older server without HTTPS (or with it, for a plain test), or one that stopped
        # answering: stopped (by its recorded pid) before a new one takes its place.
        self.stop()
        self.local_dir.mkdir(parents=True, exist_ok=True)
        log_file = self.local_dir / "moto.log"
        tls_args: list[str] = []
        ca_bundle = None
        if self.tls:
            from local_aws.tls import ensure_certificate

            cert, key = ensure_certificate(self.local_dir / "tls")
            tls_args, ca_bundle = ["-c", str(cert), "-k", str(key)], str(cert)
        last_error = ""
        for _ in range(3):  # the free port can be taken between probe and bind: try another
            port = free_port()
            env = {**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "false",
                   "MLOPS_LOCAL_DIR": str(self.local_dir),
                   "MLOPS_LOCAL_SERVE_ENDPOINTS": "true" if self.serve_endpoints else "false",
                   "MLOPS_LOCAL_BACKGROUND": "true" if self.background else "false",
                   **(extra_env or {})}
            with open(log_file, "ab") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "local_aws.moto_server", "-H", HOST, "-p", str(port), *tls_args],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    start_new_session=True,  # outlives this command; stopped by `local down`
                )
            rec = ServerRecord(proc.pid, port, self.region, time.time(), str(log_file), ca_bundle,
                               self.serve_endpoints, self.background)
            deadline = time.monotonic() + START_TIMEOUT_S
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    last_error = f"moto server exited with code {proc.returncode}"
                    break
                if is_responding(rec.endpoint_url, timeout=1.0, ca_bundle=ca_bundle):
                    self.record_file.write_text(json.dumps(asdict(rec), indent=2) + "\n")
                    return rec, True
                time.sleep(0.2)
            else:
                last_error = f"moto server did not answer within {START_TIMEOUT_S:.0f} s"
                _terminate(proc.pid)
        raise LocalAwsError(f"could not start the local AWS: {last_error} (log: {log_file})")

    def stop(self) -> bool:
        """Stop the recorded server. True if one was stopped."""
        rec = self.record()
        stopped = False
        if rec and _is_our_moto(rec.pid):
            _terminate(rec.pid)  # the server stops its model servers itself (SIGTERM handler)
            stopped = True
        # Model servers a server could not stop (it was killed): stopped by their recorded pids.
        for served in self._recorded_endpoints():
            if _is_model_server(served["pid"]):
                _terminate(served["pid"])
                kill_group(served["pid"])  # its gunicorn workers (started in its own session)
        for path in (self.record_file, self.endpoints_file):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        return stopped

    def _recorded_endpoints(self) -> list[dict]:
        try:
            records = json.loads(self.endpoints_file.read_text()).get("endpoints", [])
        except (OSError, ValueError, AttributeError):
            return []
        return [r for r in records if isinstance(r, dict) and isinstance(r.get("pid"), int)]

    def endpoints(self) -> list[dict]:
        """The model servers behind the running server's endpoints: [{name, variant, config,
        model, pid, port}], only those whose process is alive."""
        if self.running() is None:
            return []
        return [r for r in self._recorded_endpoints() if _is_model_server(r["pid"])]


def _is_model_server(pid: int) -> bool:
    cmdline = _command_line(pid)
    return _alive(pid) if cmdline is None else "model_server" in cmdline


def _terminate(pid: int, grace_s: float = 10.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    # Reap our own child if it is one (a zombie still answers kill(pid, 0)).
    with contextlib.suppress(ChildProcessError, OSError):
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
