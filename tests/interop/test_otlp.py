"""OTLP export against a real receiver: the real `stemedb serve` binary exports its spans over
OTLP/HTTP (protobuf) to a receiver that decodes them with the official `opentelemetry-proto`
package. A write that carries a W3C `traceparent` must produce spans in that trace from the
HTTP request down through the commit thread (`journal.group_commit`) to the ingest thread
(`ingest.commit`), and the request's span must be the caller's span's child. The server is
stopped with SIGTERM, so the last spans reach the receiver only if shutdown flushes them.

Run: `pytest tests/interop` with the binary at $STEMEDB_BIN (default target/debug/stemedb).
"""

import http.server
import json
import os
import pathlib
import re
import secrets
import signal
import subprocess
import threading
import time
import urllib.request

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(os.environ.get("STEMEDB_BIN", ROOT / "target" / "debug" / "stemedb"))

# Deadlines, in seconds: generous for a debug build on a shared CI machine.
START_S_MAX = 60.0
WRITE_S_MAX = 30.0
STOP_S_MAX = 60.0
SPANS_S_MAX = 15.0


class Receiver:
    """An OTLP/HTTP traces receiver on loopback: every span it decodes, with its resource."""

    def __init__(self):
        self.spans = []
        self.requests = 0
        self.errors = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    if self.path != "/v1/traces":
                        raise ValueError(f"unexpected path {self.path}")
                    if self.headers.get("Content-Type") != "application/x-protobuf":
                        raise ValueError(f"unexpected type {self.headers.get('Content-Type')}")
                    request = ExportTraceServiceRequest()
                    request.ParseFromString(body)
                except Exception as error:  # recorded, and failed on by the test
                    with receiver.lock:
                        receiver.errors.append(repr(error))
                    self.send_response(400)
                    self.end_headers()
                    return
                with receiver.lock:
                    receiver.requests += 1
                    for resource_spans in request.resource_spans:
                        resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                        for scope_spans in resource_spans.scope_spans:
                            for span in scope_spans.spans:
                                receiver.spans.append((resource, span))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def in_trace(self, trace_id):
        with self.lock:
            return [(r, s) for r, s in self.spans if s.trace_id == trace_id]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def wait_for(what, check, seconds):
    """Polls `check` until it returns a true value or the deadline passes."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture
def server(tmp_path, receiver):
    """`stemedb serve` on a free loopback port, exporting to `receiver`; yields (base URL, the
    process, its log path)."""
    if not BIN.exists():
        pytest.fail(f"no stemedb binary at {BIN}: build it (cargo build -p stemedb-cli) or set STEMEDB_BIN")
    config = tmp_path / "stemedb.toml"
    config.write_text(
        "[telemetry]\n"
        "metrics = false\n"
        f'otlp_endpoint = "http://127.0.0.1:{receiver.port}"\n'
        'otlp_service_name = "stemedb-interop"\n'
    )
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(BIN), "--config", str(config), "serve", "--data-dir", str(tmp_path / "data"), "--bind", "127.0.0.1:0"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        serving = re.compile(r"^stemedb .* serving (http://\S+)/v1 ", re.M)

        def started():
            if process.poll() is not None:
                raise AssertionError(f"stemedb serve exited with {process.returncode}:\n{log.read_text()}")
            found = serving.search(log.read_text())
            return found and found.group(1)

        base = wait_for("the server to listen", started, START_S_MAX)
        yield base, process, log, tmp_path / "data"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_traced_write_exports_its_spans_down_to_the_ingest_commit(receiver, server):
    base, process, log, data = server
    token = (data / "api" / "admin.token").read_text().strip()
    trace_id = secrets.token_bytes(16)
    caller_span_id = secrets.token_bytes(8)
    traceparent = f"00-{trace_id.hex()}-{caller_span_id.hex()}-01"
    body = json.dumps({"subject": "s", "predicate": "p", "object": {"text": "x"}, "confidence": 0.9})
    request = urllib.request.Request(
        f"{base}/v1/custodial/assertions?wait=indexed",
        data=body.encode(),
        method="POST",
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "traceparent": traceparent,
        },
    )
    with urllib.request.urlopen(request, timeout=WRITE_S_MAX) as answer:
        assert answer.status in (200, 201), answer.read()

    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=STOP_S_MAX)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"stemedb serve did not stop on SIGTERM:\n{log.read_text()}")
    assert code == 0, log.read_text()

    wanted = {"http.request", "node.submit", "journal.group_commit", "ingest.commit"}

    def all_arrived():
        names = {span.name for _, span in receiver.in_trace(trace_id)}
        return wanted <= names

    try:
        # The server has exited: its shutdown had to flush. The wait covers only the
        # receiver's own threads finishing their decoding.
        wait_for(f"spans {sorted(wanted)} in trace {trace_id.hex()}", all_arrived, SPANS_S_MAX)
    except AssertionError:
        with receiver.lock:
            seen = sorted({(s.trace_id.hex(), s.name) for _, s in receiver.spans})
        raise AssertionError(f"spans received: {seen}; receiver errors: {receiver.errors}\n{log.read_text()}")
    assert receiver.errors == []

    spans = receiver.in_trace(trace_id)
    by_name = {}
    for resource, span in spans:
        assert resource.get("service.name") == "stemedb-interop"
        by_name.setdefault(span.name, []).append(span)
    (http_span,) = by_name["http.request"]
    assert http_span.parent_span_id == caller_span_id
    ids = {span.span_id for _, span in spans}
    # Every span of the trace but the request's hangs from a span of the same trace.
    for _, span in spans:
        if span is not http_span:
            assert span.parent_span_id in ids, f"{span.name} has a parent outside the trace"
    attributes = {a.key: a.value for a in http_span.attributes}
    assert attributes["route"].string_value == "/v1/custodial/assertions"
    # A u64 field arrives as an integer or, past i64, as text: either way it names the status.
    status = attributes["status"]
    assert str(status.int_value or status.string_value) in ("200", "201")


def test_an_invalid_traceparent_is_ignored(receiver, server):
    base, process, log, _data = server
    request = urllib.request.Request(f"{base}/v1/health", headers={"traceparent": "00-zz-not-a-trace-01"})
    with urllib.request.urlopen(request, timeout=WRITE_S_MAX) as answer:
        assert answer.status == 200
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=STOP_S_MAX) == 0, log.read_text()

    def request_span():
        with receiver.lock:
            return [s for _, s in receiver.spans if s.name == "http.request"]

    (span,) = wait_for("the health request's span", request_span, SPANS_S_MAX)
    assert len(span.trace_id) == 16 and span.trace_id != bytes(16)
    assert span.parent_span_id == b""
