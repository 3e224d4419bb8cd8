"""local_aws/retried_attempts.py: an SDK's retried attempt of a call the local server answered
gets that answer, without the call running twice; anything else runs as it comes."""

from __future__ import annotations

import threading
import time

from local_aws.retried_attempts import RetriedAttempts, attempt_of


class CountingApp:
    def __init__(self, status: str = "200 OK"):
        self.calls, self.status = 0, status

    def __call__(self, environ, start_response):
        self.calls += 1
        start_response(self.status, [("Content-Type", "application/json")])
        return [b'{"n": ', str(self.calls).encode(), b"}"]


def call(app, method="POST", invocation="inv-1", attempt=1, sdk=True):
    environ = {"REQUEST_METHOD": method, "PATH_INFO": "/"}
    if sdk:
        environ.update(HTTP_AMZ_SDK_INVOCATION_ID=invocation,
                       HTTP_AMZ_SDK_REQUEST=f"attempt={attempt}; max=3")
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen.update(status=status, headers=headers)

    body = b"".join(app(environ, start_response))
    return seen["status"], body


def test_a_retried_attempt_gets_the_answer_its_first_attempt_got():
    inner = CountingApp()
    app = RetriedAttempts(inner)
    assert call(app) == ("200 OK", b'{"n": 1}')
    assert call(app, attempt=2) == ("200 OK", b'{"n": 1}')  # not run again
    assert inner.calls == 1
    assert call(app, invocation="inv-2") == ("200 OK", b'{"n": 2}')  # another call runs


def test_reads_errors_and_calls_without_sdk_headers_run_every_time():
    inner = CountingApp()
    app = RetriedAttempts(inner)
    call(app, method="GET")
    call(app, method="GET", attempt=2)
    assert inner.calls == 2  # GET and HEAD (S3 reads, code downloads) pass straight through
    call(app, sdk=False)
    call(app, sdk=False)
    assert inner.calls == 4
    throttled = CountingApp("400 Bad Request")
    app = RetriedAttempts(throttled)
    call(app)
    call(app, attempt=2)
    assert throttled.calls == 2  # the SDK retries an error to have it run again


def test_a_first_attempt_the_server_never_saw_runs_and_the_kept_answers_are_bounded():
    inner = CountingApp()
    app = RetriedAttempts(inner, kept=2)
    assert call(app, attempt=2) == ("200 OK", b'{"n": 1}')  # attempt 1 never arrived: run it
    call(app, invocation="a")
    call(app, invocation="b")
    call(app, invocation="inv-1", attempt=3)  # evicted by the two newer ones: runs again
    assert inner.calls == 4


def test_the_attempt_header_as_the_sdks_write_it():
    assert attempt_of({"HTTP_AMZ_SDK_REQUEST": "attempt=3; max=25"}) == 3
    assert attempt_of({"HTTP_AMZ_SDK_REQUEST": "ttl=20261206T200000Z; attempt=2; max=3"}) == 2
    assert attempt_of({}) == 1


def test_an_attempt_arriving_while_the_first_still_runs_waits_for_its_answer():
    release, entered = threading.Event(), threading.Event()
    inner = CountingApp()

    def slow(environ, start_response):
        entered.set()
        release.wait(10)
        return inner(environ, start_response)

    app = RetriedAttempts(slow)
    first: list = []
    thread = threading.Thread(target=lambda: first.append(call(app)))
    thread.start()
    assert entered.wait(10)
    threading.Timer(0.2, release.set).start()  # the first answer comes after the client gave up
    assert call(app, attempt=2) == ("200 OK", b'{"n": 1}')
    thread.join(10)
    assert first == [("200 OK", b'{"n": 1}')] and inner.calls == 1


def test_an_attempt_waits_only_so_long_then_runs():
    release = threading.Event()
    inner = CountingApp()

    def stuck(environ, start_response):
        if inner.calls == 0:
            inner.calls += 1
            release.wait(10)
            start_response("200 OK", [])
            return [b"late"]
        return inner(environ, start_response)

    app = RetriedAttempts(stuck, wait_s=0.1)
    thread = threading.Thread(target=lambda: call(app))
    thread.start()
    time.sleep(0.05)
    assert call(app, attempt=2) == ("200 OK", b'{"n": 2}')  # ran itself after the wait
    release.set()
    thread.join(10)


def test_the_apps_iterable_is_closed_and_the_kept_bytes_bounded():
    closed = []

    class Body(list):
        def close(self):
            closed.append(True)

    def app(environ, start_response):
        start_response("200 OK", [])
        return Body([b"x" * 100])

    kept = RetriedAttempts(app, kept_bytes=250)
    for name in "abc":
        call(kept, invocation=name)
    assert closed == [True] * 3
    assert list(kept._answers) == ["b", "c"]  # 300 bytes would pass the budget: "a" went
