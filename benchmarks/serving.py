"""Serving latency and throughput against the in-process inference path of the same rows.

Baseline (measured in this run): `input_fn -> predict_fn -> output_fn` of pipelines/steps/inference.py
called in this process on the demo model (trained here by the real train step).
Subjects: the bare serve entry (`python -m pipelines.model_server serve`, gunicorn, one worker per
CPU) over HTTP on 127.0.0.1, one sequential client for p50/p95, and several client processes for
requests per second; and a local endpoint through InvokeEndpoint of the local AWS (boto3
sagemaker-runtime over HTTPS: SigV4, the local AWS's routing, metrics, the model server), with
data capture at 100% and off; single-row and 100-row requests.
Targets: the serve entry adds at most 1 ms at p50 to a single-row request over the in-process
path; it sustains 1,000 single-row requests/s on this machine (2 cores, client included); data
capture adds at most 10% at p50 to a request through the local endpoint. The InvokeEndpoint path
itself is reported, not targeted. Every server this starts is stopped by its pid.

Usage: python benchmarks/serving.py [--requests N] [--seconds S]
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402 - after the path
import pandas as pd  # noqa: E402

from local_aws.lifecycle import free_port  # noqa: E402
from tests.step_runner import train_demo_model  # noqa: E402

MAX_ADDED_P50_MS = 1.0
MIN_REQUESTS_PER_S = 1000.0
MAX_CAPTURE_OVERHEAD = 0.10


def percentiles(samples: list[float]) -> tuple[float, float]:
    values = np.asarray(samples) * 1000
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def in_process(model_dir: Path, body: bytes, n: int) -> list[float]:
    spec = importlib.util.spec_from_file_location("bench_inference", model_dir / "code" / "inference.py")
    inference = importlib.util.module_from_spec(spec)
    sys.modules["bench_inference"] = inference
    spec.loader.exec_module(inference)
    model = inference.model_fn(str(model_dir))
    times = []
    for _ in range(n):
        start = time.perf_counter()
        inference.output_fn(inference.predict_fn(inference.input_fn(body, "text/csv"), model), "text/csv")
        times.append(time.perf_counter() - start)
    return times


def post(port: int, body: bytes) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/invocations", body, {"Content-Type": "text/csv"})
    response = conn.getresponse()
    response.read()
    conn.close()
    if response.status != 200:
        raise RuntimeError(f"/invocations answered {response.status}")


def over_http(port: int, body: bytes, n: int) -> list[float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        post(port, body)
        times.append(time.perf_counter() - start)
    return times


def _client(port: int, body: bytes, seconds: float, counts: multiprocessing.Queue) -> None:
    done, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        post(port, body)
        done += 1
    counts.put(done)


def throughput(port: int, body: bytes, seconds: float, clients: int) -> float:
    counts: multiprocessing.Queue = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=_client, args=(port, body, seconds, counts))
             for _ in range(clients)]
    start = time.perf_counter()
    for proc in procs:
        proc.start()
    total = sum(counts.get(timeout=seconds + 60) for _ in procs)
    for proc in procs:
        proc.join()
    return total / (time.perf_counter() - start)


class Serve:
    def __init__(self, model_dir: Path, port: int, log: Path):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "SAGEMAKER_", "MLOPS_"))}
        env.update(SM_MODEL_DIR=str(model_dir), MLOPS_SERVE_BIND=f"127.0.0.1:{port}")
        self.port = port
        self.proc = subprocess.Popen([sys.executable, "-m", "pipelines.model_server", "serve"], cwd=ROOT,
                                     env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/ping")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"serve did not come up: {log.read_text()[-2000:]}")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="sequential requests per latency case")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of the throughput run")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    print("training the demo model ...", file=sys.stderr)
    trained = train_demo_model(work / "train")
    model_dir = trained.extract(work / "model")
    test = pd.read_csv(trained.test_csv)[trained.features]
    bodies = {
        "1 row": test.head(1).to_csv(header=False, index=False).encode(),
        "100 rows": pd.concat([test] * 2).head(100).to_csv(header=False, index=False).encode(),
    }
    serve = Serve(model_dir, free_port(), work / "serve.log")
    failed = False
    try:
        for label, body in bodies.items():
            n = args.requests if label == "1 row" else max(args.requests // 4, 50)
            over_http(serve.port, body, 50)  # warm both paths
            base = percentiles(in_process(model_dir, body, n))
            http_ = percentiles(over_http(serve.port, body, n))
            added = http_[0] - base[0]
            print(f"{label:>8}: in-process p50 {base[0]:.3f} ms p95 {base[1]:.3f} ms | "
                  f"serve p50 {http_[0]:.3f} ms p95 {http_[1]:.3f} ms | added_p50_ms={added:.3f}")
            if label == "1 row":
                ok = added <= MAX_ADDED_P50_MS
                failed |= not ok
                print(f"serve_added_p50_ms={added:.3f} (target <= {MAX_ADDED_P50_MS}) "
                      f"{'ok' if ok else 'FAIL'}")
        cpus = len(os.sched_getaffinity(0))
        rps = throughput(serve.port, bodies["1 row"], args.seconds, clients=cpus)
        ok = rps >= MIN_REQUESTS_PER_S
        failed |= not ok
        print(f"serve_single_row_rps={rps:.0f} with {cpus} clients on {cpus} cores "
              f"(target >= {MIN_REQUESTS_PER_S:.0f}) {'ok' if ok else 'FAIL'}")
    finally:
        serve.stop()
    failed |= not local_endpoint(trained, work, bodies, max(args.requests // 2, 100))
    return 1 if failed else 0


def local_endpoint(trained, work: Path, bodies: dict[str, bytes], n: int) -> bool:
    """p50/p95 through InvokeEndpoint of the local AWS, capture on and off; True when capture
    stays within its target."""
    from local_aws.lifecycle import LocalAws

    local = LocalAws(work / "local", tls=True, serve_endpoints=True, background=False)
    server, _ = local.start()
    ok = True
    try:
        s3, sm = server.client("s3"), server.client("sagemaker")
        runtime = server.client("sagemaker-runtime")
        s3.create_bucket(Bucket="artifacts")
        s3.create_bucket(Bucket="capture")
        s3.put_object(Bucket="artifacts", Key="model.tar.gz", Body=trained.archive.read_bytes())
        sm.create_model(ModelName="bench", ExecutionRoleArn="arn:aws:iam::123456789012:role/bench",
                        PrimaryContainer={"Image": "bench", "ModelDataUrl": "s3://artifacts/model.tar.gz"})
        for name, capture in (("capture-on", True), ("capture-off", False)):
            sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
                "VariantName": "primary", "ModelName": "bench", "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1}], DataCaptureConfig={
                "EnableCapture": capture, "InitialSamplingPercentage": 100,
                "DestinationS3Uri": "s3://capture/bench",
                "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
                "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"]}})
            sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
        for name in ("capture-on", "capture-off"):
            while sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "Creating":
                time.sleep(0.2)

        def invoke(name: str, body: bytes, count: int) -> list[float]:
            times = []
            for _ in range(count):
                start = time.perf_counter()
                runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=body)["Body"].read()
                times.append(time.perf_counter() - start)
            return times

        for label, body in bodies.items():
            count = n if label == "1 row" else max(n // 4, 50)
            for name in ("capture-on", "capture-off"):
                invoke(name, body, 20)  # warm
            # Interleaved rounds, so machine load hits both alike.
            on: list[float] = []
            off: list[float] = []
            for _ in range(5):
                on += invoke("capture-on", body, count // 5)
                off += invoke("capture-off", body, count // 5)
            p_on, p_off = percentiles(on), percentiles(off)
            overhead = p_on[0] / p_off[0] - 1
            within = overhead <= MAX_CAPTURE_OVERHEAD
            ok &= within
            print(f"{label:>8}: InvokeEndpoint p50 {p_off[0]:.3f} ms p95 {p_off[1]:.3f} ms (capture off) | "
                  f"p50 {p_on[0]:.3f} ms p95 {p_on[1]:.3f} ms (capture on) | "
                  f"capture_overhead_p50={overhead:+.1%} (target <= {MAX_CAPTURE_OVERHEAD:.0%}) "
                  f"{'ok' if within else 'FAIL'}")
    finally:
        local.stop()
    return ok


if __name__ == "__main__":
    sys.exit(main())
