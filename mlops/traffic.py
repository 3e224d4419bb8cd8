"""Requests as users send them, through the SageMaker runtime API (real InvokeEndpoint, locally
and in AWS).

    mlops endpoint invoke --env ENV --project P (--file F | --rows CSV) [--json]
    mlops traffic --env ENV --project P --requests N [--rate R] [--drift FEATURE=SHIFT ...]
                  [--skew FEATURE=QUANTILE ...] [--malformed PCT] [--labels [--flip-labels PCT]]
                  [--concurrency C] [--json]

`traffic` replays the held-out rows of the project's dataset (the test split the preprocess step
makes, with the project's seed), one CSV row per request, each with its own inference id
(`traffic-<run>-<n>`, which data capture records), optionally shifted (`--drift mean_radius=2`:
that feature plus 2 of its standard deviations), skewed (`--skew mean_radius=0.66`: only the rows
whose feature is at or above that quantile of the held-out rows, a population shift that stays
within the data's own range, as when a clinic starts referring larger tumours) or malformed
(`--malformed 10`: that share of the requests with a wrong column count or a value that is not a
number, which the model server refuses with a 400, SageMaker's ModelError). With `--labels` it
then writes the ground truth of the requests the endpoint answered, as SageMaker Model Monitor
takes it: one JSON line per request (`{"groundTruthData": {"data": "1", "encoding": "CSV"},
"eventMetadata": {"eventId": <its inference id>}, "eventVersion": "0"}`) in `s3://<capture
bucket>/<project>/ground-truth/yyyy/mm/dd/hh/traffic-<run>.jsonl`, which the model-quality check
joins with the captured predictions; `--flip-labels 30` turns exactly that share of them wrong
(classification: the other class; regression: another row's label), to play concept drift. It
prints requests, errors by status and the client's p50/p95 latency, with a progress bar on stderr.
Exit codes: 0 sent (whatever the endpoint answered), 1 the endpoint could not be reached at all, 2
bad arguments.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import math
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops.project import Project
from stacks.naming import Naming, ProjectNames
from stacks.project_config import ProjectConfig

STEPS_DIR = Path(__file__).resolve().parents[1] / "pipelines" / "steps"
CSV = "text/csv"


class TrafficError(ValueError):
    """Bad arguments or inputs; the message names which."""


@dataclass(frozen=True)
class Plan:
    requests: int
    rate: float | None = None  # requests per second; None: as fast as `concurrency` allows
    drift: dict[str, float] = field(default_factory=dict)  # feature -> shift in standard deviations
    malformed_percent: float = 0.0
    concurrency: int = 4
    seed: int = 0
    labels: bool = False  # write the ground truth of the answered requests
    flip_labels_percent: float = 0.0

    def __post_init__(self) -> None:
        if self.requests < 1:
            raise TrafficError(f"--requests {self.requests}: must be at least 1")
        if self.rate is not None and self.rate <= 0:
            raise TrafficError(f"--rate {self.rate}: must be more than 0 requests per second")
        if not 0 <= self.malformed_percent <= 100:
            raise TrafficError(f"--malformed {self.malformed_percent}: must be a percentage, 0 to 100")
        if not 1 <= self.concurrency <= 64:
            raise TrafficError(f"--concurrency {self.concurrency}: must be 1 to 64")
        if not 0 <= self.flip_labels_percent <= 100:
            raise TrafficError(f"--flip-labels {self.flip_labels_percent}: must be a percentage, 0 to 100")
        if self.flip_labels_percent and not self.labels:
            raise TrafficError("--flip-labels needs --labels: it flips the labels that --labels writes")


def parse_drift(items: list[str]) -> dict[str, float]:
    return _feature_values(items, "--drift", "expected FEATURE=SHIFT, e.g. mean_radius=2 (SHIFT in "
                           "standard deviations of the feature)", lambda _: True)


def parse_skew(items: list[str]) -> dict[str, float]:
    return _feature_values(items, "--skew", "expected FEATURE=QUANTILE with 0 < QUANTILE < 1, e.g. "
                           "mean_radius=0.66 (only rows at or above that quantile)", lambda q: 0 < q < 1)


def _feature_values(items: list[str], flag: str, expected: str,
                    valid: Callable[[float], bool]) -> dict[str, float]:
    """FEATURE=NUMBER arguments of `flag`; a bad one is refused with what was expected."""
    values: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            number = float(value)
            if not sep or not name or not valid(number):
                raise ValueError
        except ValueError:
            raise TrafficError(f"{flag} {item!r}: {expected}") from None
        values[name.strip()] = number
    return values


def skewed(rows: Any, skew: dict[str, float]) -> Any:
    """Which rows to send: those at or above each named feature's quantile (all when none)."""
    unknown = sorted(set(skew) - set(rows.columns))
    if unknown:
        raise TrafficError(f"--skew: no feature {', '.join(unknown)}; the features are "
                           f"{', '.join(rows.columns)}")
    keep = rows.index == rows.index  # every row
    for name, quantile in skew.items():
        keep &= (rows[name] >= rows[name].quantile(quantile)).to_numpy()
    return keep


def _load_step(name: str) -> Any:
    """A step script as a module (it imports its siblings as a script does)."""
    if str(STEPS_DIR) not in sys.path:
        sys.path.insert(0, str(STEPS_DIR))
    spec = importlib.util.spec_from_file_location(f"mlops_step_{name}", STEPS_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dataset(config: ProjectConfig, client: Callable[[str], Any]) -> Any:
    import pandas as pd

    source = config.dataset.source
    if source == "sklearn:breast_cancer":
        from pipelines.dataset import breast_cancer_frame

        return breast_cancer_frame()
    bucket, _, key = source.removeprefix("s3://").partition("/")
    body = client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    return pd.read_csv(io.BytesIO(body))


def held_out_rows(config: ProjectConfig, frame: Any) -> Any:
    """The test split exactly as the pipeline's preprocess step makes it, features only."""
    return _test_split(config, frame).drop(columns=[config.dataset.target])


def held_out_labels(config: ProjectConfig, frame: Any) -> list[float]:
    """The test split's targets, in held_out_rows' order."""
    return [float(v) for v in _test_split(config, frame)[config.dataset.target]]


def _test_split(config: ProjectConfig, frame: Any) -> Any:
    return _load_step("preprocess").split(frame, config.model_dump(mode="json"))["test"]


def exact_share(n: int, percent: float) -> bool:
    """Whether the n-th item (from 0) is one of an exact `percent` share: every k-th, evenly."""
    share = percent / 100
    return int((n + 1) * share) > int(n * share)


def ground_truth(run_id: str, answered: list[int], labels: list[float], flip_percent: float,
                 task: str) -> tuple[str, int]:
    """(JSON lines, how many flipped): the label of each answered request n (the label of the row
    it sent), in Model Monitor's ground-truth format, keyed by the request's inference id."""
    lines, flipped = [], 0
    for i, n in enumerate(sorted(answered)):
        label = labels[n % len(labels)]
        if exact_share(i, flip_percent):
            flipped += 1
            other = labels[(n + len(labels) // 2) % len(labels)]
            label = (1.0 - label) if task == "classification" else other
        text = str(int(label)) if task == "classification" else repr(label)
        lines.append(json.dumps({"groundTruthData": {"data": text, "encoding": "CSV"},
                                 "eventMetadata": {"eventId": inference_id(run_id, n)},
                                 "eventVersion": "0"}))
    return "".join(f"{line}\n" for line in lines), flipped


def inference_id(run_id: str, n: int) -> str:
    return f"traffic-{run_id}-{n}"


def shifted(rows: Any, reference: Any, drift: dict[str, float]) -> Any:
    unknown = sorted(set(drift) - set(rows.columns))
    if unknown:
        raise TrafficError(f"--drift: no feature {', '.join(unknown)}; the features are "
                           f"{', '.join(rows.columns)}")
    rows = rows.copy()
    for name, shift in drift.items():
        rows[name] = rows[name] + shift * float(reference[name].std())
    return rows


def bodies(rows: Any, plan: Plan) -> Iterator[tuple[bytes, bool]]:
    """(CSV body, malformed?) for each request: the rows in turn (round again when they run out);
    every k-th request malformed so the share is exact."""
    lines = rows.to_csv(header=False, index=False).splitlines()
    for n in range(plan.requests):
        line = lines[n % len(lines)]
        bad = exact_share(n, plan.malformed_percent)
        if bad:
            cells = line.split(",")
            line = ",".join(cells[:-1]) if n % 2 == 0 else ",".join(["not-a-number", *cells[1:]])
        yield (line + "\n").encode(), bad


@dataclass
class Tally:
    statuses: Counter = field(default_factory=Counter)
    variants: Counter = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    reasons: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, status: str, latency_ms: float, variant: str | None, reason: str | None) -> None:
        with self.lock:
            self.statuses[status] += 1
            self.latencies_ms.append(latency_ms)
            if variant:
                self.variants[variant] += 1
            if reason:
                self.reasons[reason] += 1


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def invoke_once(runtime: Any, endpoint: str, body: bytes, *, content_type: str = CSV,
                accept: str | None = None, inference_id: str | None = None) -> dict[str, Any]:
    """One InvokeEndpoint: {status, body?, content_type?, variant?, reason?, latency_ms}."""
    from botocore.exceptions import BotoCoreError, ClientError

    kwargs: dict[str, Any] = {"EndpointName": endpoint, "Body": body, "ContentType": content_type}
    if accept:
        kwargs["Accept"] = accept
    if inference_id:
        kwargs["InferenceId"] = inference_id
    started = time.perf_counter()
    try:
        answer = runtime.invoke_endpoint(**kwargs)
        result = {"status": "200", "body": answer["Body"].read(), "content_type": answer.get("ContentType"),
                  "variant": answer.get("InvokedProductionVariant")}
    except ClientError as exc:
        response = exc.response
        status = response.get("OriginalStatusCode") or response["ResponseMetadata"].get("HTTPStatusCode")
        reason = response.get("OriginalMessage") or response["Error"].get("Message", "")
        result = {"status": str(status), "reason": f"{response['Error']['Code']}: {reason}"}
    except BotoCoreError as exc:
        result = {"status": "connection", "reason": str(exc)}
    return {**result, "latency_ms": (time.perf_counter() - started) * 1000}


def send(runtime: Any, endpoint: str, rows: Any, plan: Plan, *, progress: Any = None,
         run_id: str | None = None) -> dict[str, Any]:
    run_id = run_id or uuid.uuid4().hex[:8]
    tally, malformed, answered = Tally(), 0, []
    started = time.monotonic()
    next_slot = [started]
    slot_lock = threading.Lock()

    def paced() -> None:
        if plan.rate is None:
            return
        with slot_lock:
            at, next_slot[0] = next_slot[0], next_slot[0] + 1 / plan.rate
        delay = at - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def one(n: int, body: bytes) -> None:
        paced()
        result = invoke_once(runtime, endpoint, body, inference_id=inference_id(run_id, n))
        tally.add(result["status"], result["latency_ms"], result.get("variant"), result.get("reason"))
        if result["status"] == "200":
            answered.append(n)  # list.append is atomic: the pool's threads share it
        if progress is not None:
            progress()

    with ThreadPoolExecutor(max_workers=plan.concurrency) as pool:
        futures = []
        for n, (body, bad) in enumerate(bodies(rows, plan)):
            malformed += bad
            futures.append(pool.submit(one, n, body))
        for future in futures:
            future.result()
    seconds = time.monotonic() - started
    ok = tally.statuses.get("200", 0)
    return {
        "endpoint": endpoint, "run_id": run_id, "requests": plan.requests, "ok": ok,
        "errors": {k: v for k, v in sorted(tally.statuses.items()) if k != "200"},
        "malformed_sent": malformed, "drift": plan.drift,
        "latency_ms": {"p50": percentile(tally.latencies_ms, 50), "p95": percentile(tally.latencies_ms, 95)},
        "seconds": round(seconds, 3), "rate": round(plan.requests / seconds, 1) if seconds else None,
        "variants": dict(tally.variants), "reasons": dict(tally.reasons.most_common(5)),
        "answered": sorted(answered),
    }


# --- the CLI ---------------------------------------------------------------------------------------


def add_traffic_arguments(parser: argparse.ArgumentParser) -> None:
    _target_arguments(parser)
    parser.add_argument("--requests", type=int, required=True, help="how many requests to send")
    parser.add_argument("--rate", type=float, help="requests per second (default: as fast as it goes)")
    parser.add_argument("--drift", action="extend", nargs="+", default=[], metavar="FEATURE=SHIFT",
                        help="shift a feature by SHIFT of its standard deviations (several may follow "
                        "one --drift, and --drift may repeat)")
    parser.add_argument("--skew", action="extend", nargs="+", default=[], metavar="FEATURE=QUANTILE",
                        help="send only the rows whose feature is at or above that quantile (a "
                        "population shift within the data's range; may repeat)")
    parser.add_argument("--malformed", type=float, default=0.0, metavar="PCT",
                        help="send this share of the requests malformed (the model answers 400)")
    parser.add_argument("--labels", action="store_true",
                        help="then write the ground truth of the answered requests (Model Monitor's format)")
    parser.add_argument("--flip-labels", type=float, default=0.0, metavar="PCT",
                        help="with --labels: make this share of the labels wrong (concept drift)")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight at once")
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)


def add_invoke_arguments(parser: argparse.ArgumentParser) -> None:
    _target_arguments(parser)
    body = parser.add_mutually_exclusive_group(required=True)
    body.add_argument("--file", type=Path, help="send this file (.csv: text/csv, .json: application/json)")
    body.add_argument("--rows", help="CSV rows to send, one per line (or separated by ';')")
    parser.add_argument("--content-type", help="the request's content type (default: from the file)")
    parser.add_argument("--accept", help="the response content type to ask for")
    parser.add_argument("--inference-id", help="the inference id (data capture records it)")


def _target_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", required=True, metavar="ENV")
    parser.add_argument("--project", required=True, help="a project in environments/projects/")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _target(checkout: Project, args: argparse.Namespace) -> tuple[ProjectConfig, str, Callable[[str], Any]]:
    from mlops.aws_clients import clients_for

    env = checkout.environments([args.env])[args.env]
    config = checkout.project(args.project, args.env)  # ConfigError (exit 2) names a bad one
    endpoint = ProjectNames(Naming.of(env), args.project).endpoint
    return config, endpoint, clients_for(checkout, env)


Command = Callable[[argparse.Namespace, Project], int]


def _exit_codes(command: Command) -> Command:
    """Bad arguments or inputs: exit 2; no local AWS to talk to: exit 1; each with its reason."""

    def run(args: argparse.Namespace, checkout: Project) -> int:
        from local_aws.lifecycle import LocalAwsError

        try:
            return command(args, checkout)
        except TrafficError as exc:
            _say(f"error: {exc}")
            return 2
        except LocalAwsError as exc:
            _say(f"error: {exc}")
            return 1

    return run


@_exit_codes
def run_traffic_command(args: argparse.Namespace, checkout: Project) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    plan = Plan(args.requests, args.rate, parse_drift(args.drift), args.malformed, args.concurrency,
                args.seed, args.labels, args.flip_labels)
    config, endpoint, client = _target(checkout, args)
    frame = dataset(config, client)
    skew = parse_skew(args.skew)
    rows = shifted(held_out_rows(config, frame), frame, plan.drift)
    keep = skewed(rows, skew)
    rows, truth = rows[keep], [label for label, kept in zip(held_out_labels(config, frame), keep,
                                                            strict=True) if kept]
    _say(f"==> {plan.requests} requests to {endpoint} ({args.env}) from {len(rows)} held-out rows"
         + (f", drift {plan.drift}" if plan.drift else "")
         + (f", skewed to {skew}" if skew else "")
         + (f", {plan.malformed_percent:g}% malformed" if plan.malformed_percent else ""))
    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task("requests", total=plan.requests)
        result = send(client("sagemaker-runtime"), endpoint, rows, plan,
                      progress=lambda: bar.advance(task))
    if result["ok"] == 0 and set(result["errors"]) == {"connection"}:
        _say(f"error: {endpoint} could not be reached: {next(iter(result['reasons']), '')}")
        return 1
    answered = result.pop("answered")
    result["skew"] = skew
    if plan.labels:
        env = checkout.environments([args.env])[args.env]
        result["labels"] = write_labels(client("s3"), ProjectNames(Naming.of(env), args.project), config,
                                        result["run_id"], answered, truth, plan.flip_labels_percent)
    latency = result["latency_ms"]
    human = (f"{result['requests']} requests in {result['seconds']:.1f} s ({result['rate']}/s): "
             f"{result['ok']} ok, errors {result['errors'] or 'none'}; "
             f"p50 {latency['p50']:.1f} ms, p95 {latency['p95']:.1f} ms")
    for reason, count in result["reasons"].items():
        _say(f"  {count} x {reason}")
    print(json.dumps(result, indent=2) if args.json else human)
    return 0


def write_labels(s3: Any, names: ProjectNames, config: ProjectConfig, run_id: str, answered: list[int],
                 labels: list[float], flip_percent: float) -> dict[str, Any]:
    """The ground truth of the answered requests, as one object under the hour it is collected."""
    from datetime import UTC, datetime

    body, flipped = ground_truth(run_id, answered, labels, flip_percent, config.task)
    bucket, _, prefix = names.ground_truth_uri.removeprefix("s3://").partition("/")
    key = f"{prefix}{datetime.now(UTC):%Y/%m/%d/%H}/traffic-{run_id}.jsonl"
    s3.put_object(Bucket=bucket, Key=key, Body=body.encode(), ContentType="application/jsonl")
    _say(f"==> {len(answered)} labels ({flipped} flipped) -> s3://{bucket}/{key}")
    return {"written": len(answered), "flipped": flipped, "uri": f"s3://{bucket}/{key}"}


@_exit_codes
def run_invoke_command(args: argparse.Namespace, checkout: Project) -> int:
    if args.file is not None:
        try:
            body = args.file.read_bytes()
        except OSError as exc:
            raise TrafficError(f"--file {args.file}: {exc.strerror}") from None
        content_type = args.content_type or ("application/json" if args.file.suffix == ".json" else CSV)
    else:
        body = ("\n".join(r.strip() for r in args.rows.replace(";", "\n").splitlines() if r.strip())
                + "\n").encode()
        content_type = args.content_type or CSV
    _, endpoint, client = _target(checkout, args)
    result = invoke_once(client("sagemaker-runtime"), endpoint, body, content_type=content_type,
                         accept=args.accept, inference_id=args.inference_id)
    if result["status"] != "200":
        _say(f"error: {endpoint} answered {result['status']}: {result['reason']}")
        return 1
    text = result["body"].decode("utf-8", "replace")
    if args.json:
        payload: dict[str, Any] = {"endpoint": endpoint, "variant": result["variant"],
                                   "content_type": result["content_type"],
                                   "latency_ms": round(result["latency_ms"], 3), "body": text}
        payload["predictions"] = _predictions(text, result["content_type"])
        print(json.dumps(payload, indent=2))
    else:
        print(text, end="" if text.endswith("\n") else "\n")
    return 0


def _predictions(text: str, content_type: str | None) -> list[Any] | None:
    try:
        if (content_type or "").startswith("application/json"):
            value = json.loads(text)
            return value.get("predictions") if isinstance(value, dict) else value
        return [float(v) for v in text.replace(",", "\n").split()]
    except (ValueError, AttributeError):
        return None
