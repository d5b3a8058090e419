"""The wire protocol from another language: tests/conformance/node/conformance.mjs, with the
official NATS clients for Node, drives a real naqd daemon through every path a producer
uses (docs/protocol.md), W3C trace context included. Skipped, saying so, only when
Node.js or npm is not installed (`.ci/run` installs both from Debian)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.otlp import OtlpReceiver

SUITE = REPO / "tests" / "conformance" / "node"
SCENARIOS = [
    "enqueue and wait via the done notice",
    "failure: failed record and dead-letter entry",
    "per-job retry_on in a short envelope",
    "null means absent",
    "delayed job (Nats-Schedule @at, milliseconds)",
    "dependent job",
    "trace context continues into the worker span",
    "cancel a delayed job",
    "malformed and refused jobs",
]


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not found: install Node.js and npm (Debian: nodejs npm) to run")
    return path


def _install(npm: str) -> None:
    """`npm ci` from the committed lockfile, unless node_modules already matches it."""
    lock = SUITE / "package-lock.json"
    installed = SUITE / "node_modules" / ".package-lock.json"
    if installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return
    out = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=SUITE,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, f"npm ci failed:\n{out.stdout}\n{out.stderr}"


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    r = OtlpReceiver().start()
    yield r
    r.stop()


@pytest.mark.timeout(180)
def test_node_producer_conforms(
    receiver: OtlpReceiver, daemon_factory, nats_server, tmp_path: Path
) -> None:
    node, npm = _tool("node"), _tool("npm")
    _install(npm)
    # Tracing on (exported to the test's OTLP receiver) and JSON logs: the trace
    # scenario's job must continue the Node producer's trace, in its span and log line.
    daemon = daemon_factory(
        """
        tasks: {imports: [tests.tasks]}
        queues: {default: {concurrency: 4, retries: 0}}
        scheduler: {leader_election: {lease: 2s, renew_every: 0.5s}}
        shutdown: {grace_period: 5s}
        logging: {format: json}
        """,
        ready_workers=1,
        env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"},
    )
    out = subprocess.run(
        [node, "conformance.mjs"],
        cwd=SUITE,
        env={**os.environ, "NAQD_URL": nats_server.url},
        capture_output=True,
        text=True,
        timeout=150,
    )
    report = out.stdout + out.stderr
    print(report)
    assert out.returncode == 0, report
    for name in SCENARIOS:
        assert f"ok {name}\n" in out.stdout, report
    # The worker's exported span is a child of the span the Node producer named, and the
    # job's JSON log line carries the same trace id.
    (line,) = [ln for ln in out.stdout.splitlines() if ln.startswith("trace ")]
    _, job_id, trace_id, producer_span, worker_span = line.split()
    (span,) = receiver.wait_for(
        lambda s: s.name == "process default" and s.attributes.get("messaging.message.id") == job_id
    )
    assert (span.trace_id, span.parent_span_id, span.span_id) == (
        trace_id,
        producer_span,
        worker_span,
    )
    logged = [
        json.loads(ln)
        for ln in daemon.log.splitlines()
        if ln.startswith("{") and "node traced line" in ln
    ]
    assert [(x["job_id"], x["trace_id"]) for x in logged] == [(job_id, trace_id)], logged


def _block(doc: str, name: str) -> str:
    start, end = f"<!-- node:{name} -->\n```js\n", f"```\n<!-- /node:{name} -->"
    assert start in doc and end in doc, f"docs/protocol.md lost its node:{name} block"
    return doc.split(start, 1)[1].split(end, 1)[0]


def test_protocol_doc_shows_the_suite_code() -> None:
    """The Node code in docs/protocol.md is the code this suite runs (no Node needed)."""
    doc = (REPO / "docs" / "protocol.md").read_text()
    assert _block(doc, "naqd.mjs") == (SUITE / "naqd.mjs").read_text()
    suite = (SUITE / "conformance.mjs").read_text()
    for line in _block(doc, "usage").splitlines():
        assert line.strip() in suite, f"not in conformance.mjs: {line.strip()}"
