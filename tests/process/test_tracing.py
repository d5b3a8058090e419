"""Tracing in a real daemon: OTEL_EXPORTER_OTLP_ENDPOINT turns it on, the workers and the
scheduler export over the real OTLP/HTTP exporter to a receiver the test runs
(tests/otlp.py), a Python producer's trace continues into the worker's span, and the
job's JSON log line carries the same trace id."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import format_span_id, format_trace_id

from naqd import Client
from naqd.integrations.otel import OpenTelemetry
from tests.natsserver import NatsServer, wait_until
from tests.otlp import OtlpReceiver

CONFIG = """
tasks: {imports: [tests.tasks]}
queues: {default: {concurrency: 2, retries: 0}}
logging: {format: json}
scheduler: {leader_election: {lease: 2s, renew_every: 0.5s}}
schedules:
  ticker: {every: 1s, task: "tests.tasks:add", args: [20, 22]}
"""


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    r = OtlpReceiver().start()
    yield r
    r.stop()


def tracing_env(receiver: OtlpReceiver) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_SERVICE_NAME": "naqd-test",
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # ms: export soon, not every 5 s
    }


def _log_lines(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


async def test_a_python_producer_trace_reaches_the_daemon_worker(
    receiver: OtlpReceiver, daemon_factory, nats_server: NatsServer
) -> None:
    # (`receiver` first: it stops after the daemon, which exports its last spans on exit.)
    daemon = daemon_factory(CONFIG, ready_workers=1, env=tracing_env(receiver))
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with Client(nats_server.url, middleware=[OpenTelemetry(provider)]) as client:
        with provider.get_tracer("app").start_as_current_span("checkout") as root:
            job = await client.enqueue("tests.tasks:trace_ids", "traced line")
        seen = await job.result(timeout=15)
    trace_id = format_trace_id(root.get_span_context().trace_id)
    (send,) = [s for s in exporter.get_finished_spans() if s.name == "send default"]
    (process,) = receiver.wait_for(
        lambda s: s.name == "process default" and s.attributes.get("messaging.message.id") == job.id
    )
    # The daemon's span: exported over OTLP/HTTP, a child of the producer's send span.
    assert process.trace_id == trace_id
    assert process.parent_span_id == format_span_id(send.context.span_id)
    assert process.service == "naqd-test"  # OTEL_SERVICE_NAME honoured
    assert process.attributes["naqd.job.outcome"] == "succeeded"
    assert seen["trace_id"] == trace_id and seen["span_id"] == process.span_id
    # The job's own log line, as JSON, carries the trace.
    wait_until(lambda: "traced line" in daemon.log, 10, what="the task's log line")
    (line,) = [ln for ln in _log_lines(daemon.log) if ln.get("message") == "traced line"]
    assert line["job_id"] == job.id
    assert line["trace_id"] == trace_id and line["span_id"] == process.span_id
    # The scheduler exports too: a fired job's send span links to its tick's span.
    fired = receiver.wait_for(
        lambda s: (
            s.name == "send default"
            and any(link[2].get("naqd.link") == "schedule_tick" for link in s.links)
        )
    )[0]
    assert fired.attributes["messaging.message.id"].startswith("cron.ticker.")
    receiver.wait_for(
        lambda s: (
            s.name == "process default"
            and s.trace_id == fired.trace_id
            and s.parent_span_id == fired.span_id
        )
    )
    provider.shutdown()
