"""Local endpoints that serve: what SageMaker hosting does behind CreateEndpoint, UpdateEndpoint
and InvokeEndpoint, run inside the local AWS process.

moto stores endpoints and answers InvokeEndpoint with canned data. Here, while the local AWS runs:

- every endpoint is backed by one `serve` process per production variant (local_aws/
  model_servers.py), started from the variant's Model (its container's Environment, or the model
  package it names) and the model archive in the local S3. CreateEndpoint leaves the endpoint
  `Creating` until each variant answers /ping, then `InService` (or `Failed` with the reason
  SageMaker gives). UpdateEndpoint leaves it `Updating`, with PendingDeploymentSummary, while
  the new config's fleet starts; then traffic moves to it and the old fleet is stopped (a
  failed start leaves the old config serving, with the FailureReason). DeleteEndpoint stops them.
- InvokeEndpoint (sagemaker-runtime) goes to a variant chosen by weight (or TargetVariant), as
  SageMaker forwards it to a container; a container's 4xx or 5xx answer reaches the caller as
  SageMaker's ModelError (HTTP 424, OriginalStatusCode, OriginalMessage, LogStreamArn).
- A config's shadow variant (ShadowProductionVariants, at most one, beside exactly one production
  variant) gets its own `serve` process and a copy of a sampled share of the requests: its
  InitialVariantWeight divided by the production variant's. The copy is sent after production
  answered, from a small pool of threads, so the caller's latency never includes the shadow's;
  its answer is captured under the shadow variant's own folder and counted in the shadow
  variant's metrics, and never returned (the caller gets production's answer and
  `x-Amzn-Invoked-Production-Variant` names the production variant).
- Each invocation produces the `AWS/SageMaker` metrics SageMaker publishes per EndpointName and
  VariantName (Invocations, Invocation4XXErrors, Invocation5XXErrors, InvocationModelErrors:
  1 or 0 per request; ModelLatency and OverheadLatency in microseconds), for a fleet an update
  started also per EndpointName, VariantName and EndpointConfigName, and, when the config
  captures data and the request is sampled, its capture record (local_aws/data_capture.py).

- A game day's outage (`inject_outage`, reached over `POST /_local/endpoint-outage` on the local
  AWS, see moto_server.py): a share of the requests to the fleet serving now get a 500 from
  their container, as from an instance whose dependency broke; the fleet an update or a
  rollback starts is healthy. AWS has no such switch for SageMaker endpoints: it is a local
  drill tool (`mlops drill rollback --via outage`), not an API moto lacks.

What runs is recorded in <state>/endpoints.json (`mlops local status` lists it) and every process
is stopped, by pid, when the local AWS stops.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

from moto.cloudwatch.models import cloudwatch_backends
from moto.core.utils import utcnow
from moto.events.models import events_backends
from moto.s3.models import s3_backends
from moto.sagemaker.models import sagemaker_backends

from local_aws.data_capture import CaptureConfig, CaptureWriter, capture_record
from local_aws.deployment_guardrails import Guardrails
from local_aws.metric_store import put_service_metrics
from local_aws.model_servers import STOP_GRACE_S, Answer, ContainerSpec, ModelServer, ModelServerError

NAMESPACE = "AWS/SageMaker"
ENDPOINT_STATE_CHANGE = "SageMaker Endpoint State Change"
DEPLOYMENT_STATE_CHANGE = "SageMaker Endpoint Deployment State Change"
RECORDS_FILE = "endpoints.json"
OUTAGE_MESSAGE = "injected outage: this instance fails its requests (mlops drill rollback --via outage)"
# Headers of InvokeEndpoint that SageMaker passes on to the container.
FORWARDED = ("content-type", "accept", "x-amzn-sagemaker-custom-attributes",
             "x-amzn-sagemaker-inference-id")
log = logging.getLogger("local_aws.endpoints")

Key = tuple[str, str, str]  # account, region, endpoint name


class InvokeError(Exception):
    """An InvokeEndpoint error as the runtime API returns it."""

    def __init__(self, status: int, code: str, body: dict[str, Any]):
        super().__init__(body.get("Message") or body.get("message"))
        self.status, self.code, self.body = status, code, body


@dataclass(frozen=True)
class Settings:
    state_dir: Path
    workers: int = 1  # per model server: one per variant on a laptop, not one per CPU
    start_timeout_s: float = 240.0  # SageMaker fails an endpoint whose containers fail 4 minutes
    capture_flush_s: float = 1.0
    poll_s: float = 0.2

    @classmethod
    def from_env(cls, state_dir: Path) -> Settings:
        return cls(state_dir,
                   workers=int(os.environ.get("MLOPS_LOCAL_MODEL_SERVER_WORKERS", "1")),
                   start_timeout_s=float(os.environ.get("MLOPS_LOCAL_ENDPOINT_START_TIMEOUT", "240")),
                   capture_flush_s=float(os.environ.get("MLOPS_LOCAL_CAPTURE_FLUSH_SECONDS", "1")))


@dataclass
class Fleet:
    """The servers of one endpoint config."""

    config: str
    servers: dict[str, ModelServer]  # variant name -> its server
    weights: dict[str, float]
    capture: CaptureConfig | None
    # Requests being answered: a fleet is stopped only once they are done, as SageMaker drains
    # the old fleet instead of refusing what it already routed there.
    inflight: int = 0
    # A game day's outage (inject_outage): this share of the fleet's requests get no answer from
    # their container, as from a broken instance; a new fleet (an update, a rollback) starts
    # healthy.
    outage_percent: float = 0.0
    # The shadow variant's server and the share of requests copied to it (shadow_share()).
    shadow: ModelServer | None = None
    shadow_share: float = 0.0
    # Started by UpdateEndpoint (a blue/green update's new fleet, a rollback's): SageMaker also
    # publishes its metrics with the EndpointConfigName dimension, from its first traffic on and
    # after the deployment ends (the deployment guardrails guide's "new fleet" alarms read them).
    from_update: bool = False
    drained: threading.Condition = field(default_factory=threading.Condition)

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        with self.drained:
            self.inflight += 1
        try:
            yield
        finally:
            with self.drained:
                self.inflight -= 1
                self.drained.notify_all()

    def choose(self, target: str | None) -> ModelServer:
        if target:
            if target not in self.servers:
                raise _validation(f"Variant {target} not found in endpoint config {self.config}.")
            return self.servers[target]
        names = list(self.servers)
        weights = [self.weights.get(n, 1.0) for n in names]
        if len(names) == 1 or not any(weights):
            return self.servers[names[0]]
        return self.servers[random.choices(names, weights=weights)[0]]

    def stop(self, drain_s: float = 65.0) -> None:
        with self.drained:
            self.drained.wait_for(lambda: self.inflight == 0, timeout=drain_s)
        with ThreadPoolExecutor(max_workers=max(1, len(self.all_servers()))) as pool:
            list(pool.map(lambda s: s.stop(), self.all_servers()))

    def all_servers(self) -> list[ModelServer]:
        return [*self.servers.values(), *([self.shadow] if self.shadow is not None else [])]

    def copies_to_shadow(self) -> bool:
        return self.shadow is not None and (self.shadow_share >= 1 or random.random() < self.shadow_share)


@dataclass
class _Update:
    config: str
    retain_variant_properties: bool
    deployment_config: dict[str, Any] | None = None
    started: bool = False


@dataclass
class Invocation:
    status: int
    headers: dict[str, str]
    body: bytes


def _validation(message: str) -> InvokeError:
    return InvokeError(400, "ValidationError", {"message": message})


def _backends() -> Iterator[tuple[str, str, Any]]:
    for account, regions in list(sagemaker_backends.items()):
        for region, backend in list(regions.items()):
            yield account, region, backend


@dataclass
class EndpointRuntime:
    settings: Settings
    fleets: dict[Key, Fleet] = field(default_factory=dict)  # the fleet of the config served
    green: dict[Key, tuple[Fleet, float]] = field(default_factory=dict)  # a new fleet, its share
    updates: dict[Key, _Update] = field(default_factory=dict)
    busy: set[Key] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self.capture = CaptureWriter(self._put_object)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_flush = time.monotonic()
        self._jobs: set[threading.Thread] = set()
        self._servers: set[ModelServer] = set()  # started and not yet stopped
        self._records_lock = threading.Lock()
        self._restarting: set[ModelServer] = set()  # dead containers being replaced
        # Copies of requests to shadow variants, answered off the caller's path.
        self._shadow_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="shadow")

    # --- the background loop -------------------------------------------------------------------
    def start(self) -> None:
        self._write_records()
        self._thread = threading.Thread(target=self._run, name="endpoint-runtime", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.settings.poll_s):
            try:
                self.reconcile()
                if time.monotonic() - self._last_flush >= self.settings.capture_flush_s:
                    self.flush_capture()
            except Exception:  # the loop must outlive any one endpoint's trouble
                log.exception("endpoint runtime: reconcile failed")

    def shutdown(self) -> None:
        """Stops the loop, writes buffered capture, stops every model server (by pid)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush_capture()
        for thread in list(self._jobs):  # starts and updates under way end (a bake aborts)
            thread.join(timeout=60)
        self._shadow_pool.shutdown(wait=True, cancel_futures=True)
        self.flush_capture()  # what the last shadow copies captured
        with self.lock:
            fleets = [*self.fleets.values(), *(fleet for fleet, _ in self.green.values())]
            self.fleets, self.green = {}, {}
            stray = set(self._servers)
        for fleet in fleets:
            fleet.stop(drain_s=5.0)
        for server in stray:  # a fleet that was still starting
            server.stop()
        self._write_records()

    def flush_capture(self) -> list[str]:
        self._last_flush = time.monotonic()
        return self.capture.flush(utcnow())

    # --- desired state -> processes --------------------------------------------------------------
    def request_update(self, key: Key, config: str, retain_variant_properties: bool,
                       deployment_config: dict[str, Any] | None = None) -> None:
        with self.lock:
            self.updates[key] = _Update(config, retain_variant_properties, deployment_config)

    def reconcile(self) -> None:
        seen: set[Key] = set()
        for account, region, backend in _backends():
            for name, endpoint in list(backend.endpoints.items()):
                key = (account, region, name)
                seen.add(key)
                with self.lock:
                    if key in self.busy:
                        continue
                    update = self.updates.get(key)
                    job: Callable[[], None] | None = None
                    if update is not None and not update.started:
                        update.started = True
                        job = functools.partial(self._update, key, backend, endpoint, update)
                    elif key not in self.fleets and endpoint.endpoint_status in ("Creating", "InService"):
                        job = functools.partial(self._create, key, backend, endpoint)
                    if job is not None:
                        self.busy.add(key)
                        thread = threading.Thread(target=self._guarded, args=(key, endpoint, job),
                                                  daemon=True, name=f"endpoint-{name}")
                        self._jobs.add(thread)
                        thread.start()
        with self.lock:
            gone = [k for k in self.fleets if k not in seen and k not in self.busy]
            fleets = [self.fleets.pop(k) for k in gone]
            for k in gone:
                self.updates.pop(k, None)
        for fleet in fleets:
            fleet.stop()
        if fleets:
            self._write_records()
        self._replace_dead_containers()

    def _replace_dead_containers(self) -> None:
        """A model server process that died (killed, crashed) is started again, as SageMaker
        replaces a failed container; requests until it answers fail as 5xx."""
        with self.lock:
            fleets = [(k, f) for k, f in self.fleets.items() if k not in self.busy]
            fleets += [(k, f) for k, (f, _) in self.green.items() if k not in self.busy]
            dead = [(k, s) for k, f in fleets for s in f.all_servers()
                    if s.exited() and s not in self._restarting]
            self._restarting.update(s for _, s in dead)
        for key, server in dead:
            log.warning("endpoint %s variant %s: its container exited (%s); starting it again", key[2],
                        server.variant, server.proc.returncode if server.proc else None)
            thread = threading.Thread(target=self._restart, args=(server,), daemon=True,
                                      name=f"restart-{key[2]}")
            self._jobs.add(thread)
            thread.start()

    def _restart(self, server: ModelServer) -> None:
        try:
            server.restart(self.settings.start_timeout_s)
            self._write_records()
        except ModelServerError as exc:  # tried again at the next round
            log.warning("endpoint %s: the replacement container failed: %s", server.endpoint, exc)
        finally:
            with self.lock:
                self._restarting.discard(server)
            self._jobs.discard(threading.current_thread())

    def _guarded(self, key: Key, endpoint: Any, job: Callable[[], None]) -> None:
        try:
            job()
        except Exception as exc:
            # Never stuck Creating or Updating: the endpoint says what went wrong, as SageMaker's
            # FailureReason would, and an update leaves the old config serving.
            log.exception("endpoint %s: unexpected failure", key[2])
            endpoint.failure_reason = f"Internal failure of the local endpoint runtime: {exc}"[:1024]
            if endpoint.endpoint_status == "Creating":
                endpoint.endpoint_status = "Failed"
            update = self.updates.get(key)
            if update is not None:
                self._finish_update(key, endpoint, update)
            with self.lock:
                green, _ = self.green.pop(key, (None, 0.0))
            if green is not None:
                green.stop(drain_s=5.0)
        finally:
            with self.lock:
                self.busy.discard(key)
            self._jobs.discard(threading.current_thread())

    def _create(self, key: Key, backend: Any, endpoint: Any) -> None:
        try:
            fleet = self._start_fleet(key, backend, endpoint.endpoint_config_name)
        except ModelServerError as exc:
            endpoint.endpoint_status, endpoint.failure_reason = "Failed", str(exc)[:1024]
            endpoint.last_modified_time = utcnow()
            self._endpoint_event(key, endpoint)
            log.warning("endpoint %s failed: %s", key[2], exc)
            return
        with self.lock:
            self.fleets[key] = fleet
        if endpoint.endpoint_status == "Creating":
            endpoint.endpoint_status, endpoint.last_modified_time = "InService", utcnow()
            self._endpoint_event(key, endpoint)
        self._write_records()

    def _update(self, key: Key, backend: Any, endpoint: Any, update: _Update) -> None:
        """A blue/green update as SageMaker's deployment guardrails run it (deployment_guardrails.py):
        the new fleet starts, takes traffic step by step while the auto-rollback alarms are watched,
        then replaces the old fleet; an alarm in ALARM (or the execution timeout) sends all traffic
        back to the old fleet and the endpoint ends InService on its old config."""
        blue = self.fleets.get(key)
        instances = sum(int(v.get("CurrentInstanceCount", 1)) for v in endpoint.production_variants) or 1
        guardrails = Guardrails.from_api(update.deployment_config, instances)
        started = time.monotonic()
        self._deployment_event(key, endpoint, update.config, "Creating", "Launching the new fleet.")
        try:
            green = self._start_fleet(key, backend, update.config)
            green.from_update = True
        except ModelServerError as exc:
            # The old config keeps serving; SageMaker reports why the update did not happen.
            endpoint.failure_reason = str(exc)[:1024]
            self._finish_update(key, endpoint, update)
            log.warning("endpoint %s: update to %s failed: %s", key[2], update.config, exc)
            return
        for step in guardrails.steps if blue is not None else ():
            with self.lock:
                self.green[key] = (green, step.share)
            self._deployment_event(key, endpoint, update.config, "Baking", step.message)
            reason = self._bake(key, guardrails, step.bake_s, started)
            if reason:
                self._roll_back(key, endpoint, update, green, guardrails, reason)
                return
        config = backend.endpoint_configs[update.config]
        apply_config(endpoint, config, update.retain_variant_properties)
        endpoint.failure_reason = None
        endpoint.last_deployment_config = update.deployment_config or None
        with self.lock:
            self.fleets[key] = green
            self.green.pop(key, None)
        self._finish_update(key, endpoint, update)
        self._write_records()
        if blue is not None:
            blue.stop()
            self._write_records()

    def _bake(self, key: Key, guardrails: Guardrails, seconds: float, started: float) -> str | None:
        """Watches the auto-rollback alarms for `seconds`; the reason to roll back, if any."""
        account, region, _ = key
        end = time.monotonic() + seconds
        while True:
            alarms = cloudwatch_backends[account][region].alarms
            firing = [n for n in guardrails.alarms if n in alarms and alarms[n].state_value == "ALARM"]
            if firing:
                return f"alarm {firing[0]} is in ALARM"
            if guardrails.max_execution_s and time.monotonic() - started > guardrails.max_execution_s:
                return (f"the deployment exceeded MaximumExecutionTimeoutInSeconds "
                        f"({guardrails.max_execution_s:g})")
            if self._stop.is_set():
                return "the local AWS is stopping"
            if time.monotonic() >= end:
                return None
            time.sleep(min(self.settings.poll_s, max(0.0, end - time.monotonic())) or 0.01)

    def _roll_back(self, key: Key, endpoint: Any, update: _Update, green: Fleet, guardrails: Guardrails,
                   reason: str) -> None:
        with self.lock:
            self.green.pop(key, None)  # all traffic back on the old fleet at once
        self._deployment_event(key, endpoint, update.config, "Deleting",
                               f"Rolling back: {reason}. Terminating the new fleet.")
        log.warning("endpoint %s: deployment of %s rolled back: %s", key[2], update.config, reason)
        endpoint.failure_reason = f"Deployment of {update.config} rolled back: {reason}."
        endpoint.last_deployment_config = guardrails.config or None
        self._finish_update(key, endpoint, update)
        green.stop()
        self._write_records()

    def _finish_update(self, key: Key, endpoint: Any, update: _Update) -> None:
        with self.lock:
            if self.updates.get(key) is update:
                del self.updates[key]
        endpoint.pending_deployment_summary = None
        endpoint.endpoint_status, endpoint.last_modified_time = "InService", utcnow()
        self._endpoint_event(key, endpoint)

    def _start_fleet(self, key: Key, backend: Any, config_name: str) -> Fleet:
        account, _, name = key
        config = backend.endpoint_configs.get(config_name)
        if config is None:
            raise ModelServerError(f"endpoint config {config_name} does not exist")
        servers: dict[str, ModelServer] = {}
        weights: dict[str, float] = {}
        shadows = list(getattr(config, "shadow_production_variants", None) or [])
        fleet = Fleet(config_name, servers, weights, CaptureConfig.from_api(config.data_capture_config))
        try:
            for variant in [*config.production_variants, *shadows]:
                variant_name, model_name = variant["VariantName"], variant["ModelName"]
                spec = container_spec(backend, model_name)
                # A folder per start: an update to the config already served must not share one.
                workdir = (self.settings.state_dir / "endpoints" / name / config_name /
                           f"{variant_name}-{uuid.uuid4().hex[:8]}")
                logs = self.settings.state_dir / "logs" / "endpoints" / name
                server = TrackedModelServer(self._servers, name, config_name, variant_name, model_name,
                                            spec, workdir, logs, self.settings.workers)
                if variant in shadows:
                    fleet.shadow = server
                else:
                    servers[variant_name] = server
                    weights[variant_name] = float(variant.get("InitialVariantWeight", 1.0))
                server.start(self._read_model(account, spec.model_data_url, variant_name))
            for server in fleet.all_servers():
                server.wait_healthy(self.settings.start_timeout_s)
        except BaseException:
            fleet.stop()
            raise
        if shadows:
            fleet.shadow_share = shadow_share(config.production_variants, shadows[0])
        return fleet

    def _read_model(self, account: str, url: str, variant: str) -> bytes:
        bucket, _, key = url.removeprefix("s3://").partition("/")
        obj = None
        with contextlib.suppress(Exception):
            obj = s3_backends[account]["aws"].get_object(bucket, key)
        if obj is None:
            raise ModelServerError(
                f'Failed to download model data for container "{variant}" from URL: "{url}". Please ensure '
                "that there is an object located at the URL and that the role passed to CreateModel has "
                "permissions to download the object.")
        return obj.value

    # --- serving ---------------------------------------------------------------------------------
    def invoke(self, account: str, region: str, name: str, body: bytes,
               headers: dict[str, str]) -> Invocation:
        started = time.perf_counter_ns()
        backend = sagemaker_backends[account][region]
        endpoint = backend.endpoints.get(name)
        if endpoint is None:
            raise _validation(f"Endpoint {name} of account {account} not found.")
        with self.lock:
            fleet = self.fleets.get((account, region, name))
            green, share = self.green.get((account, region, name), (None, 0.0))
        if green is not None and random.random() < share:
            fleet = green  # both fleets keep the variant names: one set of metrics, as in AWS
        if fleet is None:
            raise _validation(f"Endpoint {name} of account {account} is {endpoint.endpoint_status}: "
                              "it serves only once InService.")
        server = fleet.choose(headers.get("x-amzn-sagemaker-target-variant"))
        forwarded = {h: headers[h] for h in FORWARDED if h in headers}
        outage = bool(fleet.outage_percent) and random.random() * 100 < fleet.outage_percent
        answer, status, model_us = self._ask(fleet, server, body, forwarded, started, outage)
        # One event id per request: the production and the shadow capture of one request carry
        # the same eventId (and inferenceId), so the two answers can be joined.
        event_id = str(uuid.uuid4())
        sampled = fleet.capture is not None and fleet.capture.sampled()
        self._record(fleet, (account, region, name), server.variant, headers, body, answer, status, model_us,
                     started, event_id, sampled)
        if fleet.copies_to_shadow():
            self._shadow_pool.submit(self._shadow_copy, fleet, (account, region, name), body, forwarded,
                                     headers, event_id, sampled)
        if answer is None:
            raise _model_error(account, region, name, status, "no answer from the container")
        if not 200 <= status < 300:
            raise _model_error(account, region, name, status, answer.body.decode("utf-8", "replace").strip())
        out = {"Content-Type": answer.headers.get("content-type", "application/octet-stream"),
               "x-Amzn-Invoked-Production-Variant": server.variant}
        if "x-amzn-sagemaker-custom-attributes" in answer.headers:
            out["X-Amzn-SageMaker-Custom-Attributes"] = answer.headers["x-amzn-sagemaker-custom-attributes"]
        return Invocation(200, out, answer.body)

    @staticmethod
    def _ask(fleet: Fleet, server: ModelServer, body: bytes, forwarded: dict[str, str], started: int,
             outage: bool = False) -> tuple[Answer | None, int, int]:
        """(answer or None, status, ModelLatency in us) of one container for one request."""
        try:
            if outage:
                # What a container whose dependency broke answers: a server error, counted in
                # Invocation5XXErrors as SageMaker counts the container's 5xx.
                answer = Answer(500, {"content-type": "text/plain"}, OUTAGE_MESSAGE.encode(), 1000)
            else:
                with fleet.serving():
                    answer = server.invoke(body, forwarded)
            return answer, answer.status, answer.latency_us
        except OSError as exc:
            # No answer (refused, reset, timed out: the container died or hangs): SageMaker
            # answers the caller for it with a server error, counted as a 5xx.
            log.warning("endpoint %s variant %s: no answer from the container: %s", server.endpoint,
                        server.variant, exc)
            return None, 500, (time.perf_counter_ns() - started) // 1000

    def _record(self, fleet: Fleet, key: Key, variant: str, headers: dict[str, str], body: bytes,
                answer: Answer | None, status: int, model_us: int, started: int, event_id: str,
                sampled: bool) -> None:
        """What SageMaker keeps of one variant's answer: its capture line (a 2xx to a sampled
        request) and its AWS/SageMaker datapoints."""
        account, region, name = key
        at = utcnow()
        if answer is not None and 200 <= status < 300 and sampled and fleet.capture is not None:
            record = capture_record(fleet.capture, request_type=headers.get("content-type"), request=body,
                                    response_type=answer.headers.get("content-type"), response=answer.body,
                                    inference_id=headers.get("x-amzn-sagemaker-inference-id"), at=at,
                                    event_id=event_id)
            self.capture.add(fleet.capture, account, name, variant, record, at)
        overhead_us = max(0, (time.perf_counter_ns() - started) // 1000 - model_us)
        put_service_metrics(cloudwatch_backends[account][region], NAMESPACE,
                            invocation_metrics(name, variant, status, model_us, overhead_us, at,
                                               config=fleet.config if fleet.from_update else None))

    def _shadow_copy(self, fleet: Fleet, key: Key, body: bytes, forwarded: dict[str, str],
                     headers: dict[str, str], event_id: str, sampled: bool) -> None:
        """The shadow variant's answer to a copy of a request: captured (when the request was
        sampled) and measured under the shadow variant's name, then dropped."""
        shadow = fleet.shadow
        assert shadow is not None
        started = time.perf_counter_ns()
        answer, status, model_us = self._ask(fleet, shadow, body, forwarded, started)
        self._record(fleet, key, shadow.variant, headers, body, answer, status, model_us, started, event_id,
                     sampled)

    def inject_outage(self, key: Key, percent: float) -> str:
        """A share of the requests to the fleet serving `key` now fail (0 ends it); its config."""
        if not 0 <= percent <= 100:
            raise _validation(f"outage percent {percent:g} is not 0 to 100")
        with self.lock:
            fleet = self.fleets.get(key)
            if fleet is None:
                raise _validation(f"Endpoint {key[2]} of account {key[0]} serves no fleet.")
            fleet.outage_percent = float(percent)
        log.warning("endpoint %s: %g%% of %s's requests fail from now (an injected outage)", key[2], percent,
                    fleet.config)
        return fleet.config

    # --- records -----------------------------------------------------------------------------------
    def records(self) -> list[dict[str, Any]]:
        with self.lock:
            fleets = [*self.fleets.values(), *(fleet for fleet, _ in self.green.values())]
            return [{**s.record(), "shadow": s is fleet.shadow}
                    for fleet in fleets for s in fleet.all_servers()]

    # --- events ------------------------------------------------------------------------------------
    def _put_event(self, key: Key, detail_type: str, detail: dict[str, Any], arn: str) -> None:
        account, region, _ = key
        try:
            events_backends[account][region].put_events([{
                "Source": "aws.sagemaker", "DetailType": detail_type, "Resources": [arn],
                "Detail": json.dumps(detail, default=str)}])
        except Exception:  # an event that cannot be sent must not stop an endpoint
            log.exception("endpoint %s: %s not sent", key[2], detail_type)

    def _endpoint_event(self, key: Key, endpoint: Any) -> None:
        """"SageMaker Endpoint State Change", as the SageMaker EventBridge docs show it."""
        self._put_event(key, ENDPOINT_STATE_CHANGE, endpoint_detail(endpoint), endpoint.arn)

    def _deployment_event(self, key: Key, endpoint: Any, config: str, status: str, message: str) -> None:
        """"SageMaker Endpoint Deployment State Change": the pending deployment and its variants'
        VariantStatus (Creating, Baking, Deleting, ...), kept in DescribeEndpoint's
        PendingDeploymentSummary too."""
        summary = dict(endpoint.pending_deployment_summary or {"EndpointConfigName": config,
                                                               "StartTime": utcnow()})
        now_ms = int(time.time() * 1000)
        summary["ProductionVariants"] = [
            {**v, "VariantStatus": [{"Status": status, "StatusMessage": message, "StartTime": utcnow()}]}
            for v in summary.get("ProductionVariants") or [{"VariantName": "AllTraffic"}]]
        endpoint.pending_deployment_summary = summary
        detail = {**endpoint_detail(endpoint), "PendingDeploymentSummary": {
            **summary, "StartTime": _epoch_ms(summary["StartTime"]),
            "ProductionVariants": [{**v, "VariantStatus": [{**v["VariantStatus"][0], "StartTime": now_ms}]}
                                   for v in summary["ProductionVariants"]]}}
        self._put_event(key, DEPLOYMENT_STATE_CHANGE, detail, endpoint.arn)

    def _write_records(self) -> None:
        path = self.settings.state_dir / RECORDS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._records_lock:  # one writer at a time; each from what runs now
            tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps({"pid": os.getpid(), "endpoints": self.records()}, indent=1) + "\n")
            tmp.replace(path)

    def _put_object(self, account: str, bucket: str, key: str, body: bytes, kms_key_id: str | None) -> None:
        s3 = s3_backends[account]["aws"]
        if kms_key_id:
            s3.put_object(bucket, key, body, encryption="aws:kms", kms_key_id=kms_key_id)
        else:
            s3.put_object(bucket, key, body)


class TrackedModelServer(ModelServer):
    """A model server the runtime can always find again to stop, whatever fleet it is in."""

    def __init__(self, registry: set[ModelServer], *args: Any):
        super().__init__(*args)
        self.registry = registry
        registry.add(self)

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        super().stop(grace_s)
        self.registry.discard(self)


def _epoch_ms(value: Any) -> int:
    if hasattr(value, "timestamp"):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(aware.timestamp() * 1000)
    return int(value)


_EVENT_STATUS = {"InService": "IN_SERVICE", "Creating": "CREATING", "Updating": "UPDATING",
                 "Failed": "FAILED", "Deleting": "DELETING", "SystemUpdating": "SYSTEM_UPDATING",
                 "RollingBack": "ROLLING_BACK", "OutOfService": "OUT_OF_SERVICE"}


def endpoint_detail(endpoint: Any) -> dict[str, Any]:
    detail = {
        "EndpointName": endpoint.endpoint_name, "EndpointArn": endpoint.arn,
        "EndpointConfigName": endpoint.endpoint_config_name,
        "ProductionVariants": endpoint.production_variants,
        "EndpointStatus": _EVENT_STATUS.get(endpoint.endpoint_status, endpoint.endpoint_status.upper()),
        "CreationTime": _epoch_ms(endpoint.creation_time),
        "LastModifiedTime": _epoch_ms(endpoint.last_modified_time),
        "Tags": {t["Key"]: t["Value"] for t in endpoint.tags or []},
    }
    if endpoint.failure_reason:
        detail["FailureReason"] = endpoint.failure_reason
    return detail


def shadow_share(production: list[dict[str, Any]], shadow: dict[str, Any]) -> float:
    """The share of requests SageMaker copies to a shadow variant: its InitialVariantWeight
    relative to the production variant's (0.2 against 1.0 copies one request in five)."""
    base = float(production[0].get("InitialVariantWeight", 1.0)) if production else 1.0
    weight = float(shadow.get("InitialVariantWeight", 1.0))
    return min(1.0, weight / base) if base > 0 else 1.0


def invocation_metrics(endpoint: str, variant: str, status: int, model_us: int, overhead_us: int,
                       at: Any, config: str | None = None) -> list[dict[str, Any]]:
    """One request's datapoints, as SageMaker publishes them (1 or 0 per request for the counts);
    with `config` (a fleet an update started) the same again with the EndpointConfigName too."""
    dims = [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant}]
    sets = [dims, [*dims, {"Name": "EndpointConfigName", "Value": config}]] if config else [dims]
    failed = not 200 <= status < 300
    values = {
        "Invocations": (1, "None"),
        "Invocation4XXErrors": (int(400 <= status < 500), "None"),
        "Invocation5XXErrors": (int(status >= 500), "None"),
        "InvocationModelErrors": (int(failed), "None"),
        "ModelLatency": (model_us, "Microseconds"),
        "OverheadLatency": (overhead_us, "Microseconds"),
    }
    return [{"MetricName": n, "Dimensions": d, "Value": v, "Unit": u, "Timestamp": at}
            for d in sets for n, (v, u) in values.items()]


def _model_error(account: str, region: str, endpoint: str, status: int, message: str) -> InvokeError:
    kind = "client" if 400 <= status < 500 else "server"
    group = f"/aws/sagemaker/Endpoints/{endpoint}"
    return InvokeError(424, "ModelError", {
        "Message": f'Received {kind} error ({status}) from primary with message "{message}". See '
                   f"log group {group} in account {account} for more information.",
        "OriginalStatusCode": status,
        "OriginalMessage": message,
        "LogStreamArn": f"arn:aws:logs:{region}:{account}:log-group:{group}",
    })


def container_spec(backend: Any, model_name: str) -> ContainerSpec:
    """The Model's primary container, with a model package's container filled in."""
    model = backend._models.get(model_name)  # moto keeps models in a private dict
    if model is None:
        raise ModelServerError(f"Could not find model {model_name}.")
    container = dict(model.primary_container or (model.containers or [{}])[0])
    package_name = container.get("ModelPackageName")
    if package_name:
        name = backend.model_package_name_mapping.get(package_name, package_name)
        package = backend.model_packages.get(name)
        if package is None:
            raise ModelServerError(f"model {model_name}: model package {package_name} does not exist")
        spec = ((package.inference_specification or {}).get("Containers") or [{}])[0]
        environment = {**(spec.get("Environment") or {}), **(container.get("Environment") or {})}
        container = {**spec, **{k: v for k, v in container.items() if k != "ModelPackageName"},
                     "Environment": environment}
    if not container.get("ModelDataUrl"):
        raise ModelServerError(f"model {model_name}: its container names no ModelDataUrl")
    return ContainerSpec(container.get("Image", ""), container["ModelDataUrl"],
                         {k: str(v) for k, v in (container.get("Environment") or {}).items()})


def apply_config(endpoint: Any, config: Any, retain_variant_properties: bool) -> None:
    """Points the endpoint at `config`, as SageMaker does when an update completes: the new
    variants, keeping instance counts and weights when RetainAllVariantProperties was set."""
    variants = endpoint._process_production_variants(config.production_variants)
    if retain_variant_properties:
        current = {v["VariantName"]: v for v in endpoint.production_variants}
        for variant in variants:
            kept = current.get(variant["VariantName"], {})
            for key in ("CurrentInstanceCount", "DesiredInstanceCount", "CurrentWeight", "DesiredWeight"):
                if key in kept:
                    variant[key] = kept[key]
    endpoint.endpoint_config_name = config.endpoint_config_name
    endpoint.production_variants = variants
    list_shadow_variants(endpoint, config)
    endpoint.data_capture_config = config.data_capture_config
    endpoint.last_modified_time = utcnow()


def list_shadow_variants(endpoint: Any, config: Any) -> None:
    """DescribeEndpoint's ShadowProductionVariants: the config's shadow variants (kept by
    moto_server.py, which moto drops), as summaries like the production variants'."""
    shadows = getattr(config, "shadow_production_variants", None)
    endpoint.shadow_production_variants = endpoint._process_production_variants(shadows) if shadows else None
