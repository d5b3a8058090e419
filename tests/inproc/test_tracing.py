"""OpenTelemetry (naqd/integrations/otel.py) in the in-process worker and the client,
against a real nats-server, with the SDK's in-memory exporter: a producer's trace goes on
into the worker's span (and into the task, a thread, and its log ids); each outcome is an
event on that span with the exception recorded; the links a requeue, a dependent and a
schedule tick make."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import nats
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode, format_span_id, format_trace_id

from naqd import Client, JobCancelled, JobFailed
from naqd.integrations.otel import OpenTelemetry
from naqd.middleware import EnqueueMessage
from naqd.models import ScheduleConfig
from naqd.protocol.ticks import tick_job_id
from naqd.testing import Worker
from tests.natsserver import NatsServer

QUEUES = {"default": {"concurrency": 4, "retries": 1, "backoff": [0.05]}}


@pytest.fixture
def traced() -> Iterator[tuple[OpenTelemetry, InMemorySpanExporter, TracerProvider]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield OpenTelemetry(provider), exporter, provider
    provider.shutdown()


def _spans(exporter: InMemorySpanExporter, name: str, job_id: str) -> list[ReadableSpan]:
    return [
        s
        for s in exporter.get_finished_spans()
        if s.name == name and (s.attributes or {}).get("messaging.message.id") == job_id
    ]


async def _until_spans(
    exporter: InMemorySpanExporter, name: str, job_id: str, count: int = 1
) -> list[ReadableSpan]:
    deadline = asyncio.get_running_loop().time() + 10
    while len(found := _spans(exporter, name, job_id)) < count:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{count} {name} span(s) of {job_id}: {found}")
        await asyncio.sleep(0.02)
    return found


def _events(span: ReadableSpan) -> list[str]:
    return [e.name for e in span.events]


async def test_a_producer_trace_continues_into_the_worker_span(
    nats_server: NatsServer, traced
) -> None:
    mw, exporter, provider = traced
    url = nats_server.url
    async with (
        Worker(url, tasks=["tests.tasks"], queues=QUEUES, middleware=[mw]),
        Client(url, middleware=[mw]) as client,
    ):
        with provider.get_tracer("app").start_as_current_span("web request") as web:
            job = await client.enqueue("tests.tasks:trace_ids")
        seen = await job.result(timeout=10)
        (process,) = await _until_spans(exporter, "process default", job.id)
    (send,) = _spans(exporter, "send default", job.id)
    trace_id = web.get_span_context().trace_id
    # web request -> send (PRODUCER) -> process (CONSUMER), one trace.
    assert send.kind is SpanKind.PRODUCER and process.kind is SpanKind.CONSUMER
    assert send.context.trace_id == process.context.trace_id == trace_id
    assert send.parent is not None and send.parent.span_id == web.get_span_context().span_id
    assert process.parent is not None and process.parent.span_id == send.context.span_id
    attrs = process.attributes or {}
    assert attrs["messaging.system"] == "naqd"
    assert attrs["messaging.operation.type"] == "process"
    assert attrs["messaging.destination.name"] == "default"
    assert attrs["naqd.task"] == "tests.tasks:trace_ids"
    assert attrs["naqd.job.attempt"] == 1 and attrs["naqd.job.outcome"] == "succeeded"
    # The task (run in a thread) sees the worker span as current, and so do log lines.
    ids = (format_trace_id(trace_id), format_span_id(process.context.span_id))
    assert (seen["trace_id"], seen["span_id"]) == ids
    assert tuple(seen["log"]) == ids


async def test_a_delayed_job_keeps_its_trace(nats_server: NatsServer, traced) -> None:
    """The server fires the holder with its headers: the run is still the send's child."""
    mw, exporter, _ = traced
    url = nats_server.url
    async with (
        Worker(url, tasks=["tests.tasks"], queues=QUEUES, middleware=[mw]),
        Client(url, middleware=[mw]) as client,
    ):
        job = await client.enqueue_in(0.5, "tests.tasks:add", 1, 2)
        assert await job.result(timeout=10) == 3
        (process,) = await _until_spans(exporter, "process default", job.id)
    (send,) = _spans(exporter, "send default", job.id)
    assert process.context.trace_id == send.context.trace_id
    assert process.parent is not None and process.parent.span_id == send.context.span_id


async def test_outcomes_are_span_events_with_the_exception(
    nats_server: NatsServer, traced, tmp_path: Path
) -> None:
    mw, exporter, _ = traced
    url = nats_server.url
    async with (
        Worker(url, tasks=["tests.tasks"], queues=QUEUES, middleware=[mw]),
        Client(url, middleware=[mw]) as client,
    ):
        failing = await client.enqueue("tests.tasks:always_fail", str(tmp_path))
        slow = await client.enqueue(
            "tests.tasks:async_record", str(tmp_path), 1, 30, timeout=0.3, retries=0
        )
        waiting = await client.enqueue("tests.tasks:async_wait_forever", str(tmp_path))
        with pytest.raises(JobFailed):
            await failing.result(timeout=10)
        with pytest.raises(JobFailed):
            await slow.result(timeout=10)
        deadline = asyncio.get_running_loop().time() + 10
        while not (tmp_path / "started").exists():
            assert asyncio.get_running_loop().time() < deadline, "never started"
            await asyncio.sleep(0.02)
        assert await waiting.cancel()
        with pytest.raises(JobCancelled):
            await waiting.result(timeout=10)
        first, second = sorted(
            await _until_spans(exporter, "process default", failing.id, 2),
            key=lambda s: s.attributes["naqd.job.attempt"],  # type: ignore[index]
        )
        (timed_out,) = await _until_spans(exporter, "process default", slow.id)
        (cancelled,) = await _until_spans(exporter, "process default", waiting.id)
    # Both attempts belong to the producer's trace.
    (send,) = _spans(exporter, "send default", failing.id)
    assert {first.context.trace_id, second.context.trace_id} == {send.context.trace_id}
    assert _events(first) == ["exception", "naqd.job.retry"]
    retry = first.events[1].attributes or {}
    assert retry["naqd.retry.delay"] == 0.05 and retry["exception.type"] == "RuntimeError"
    assert first.status.status_code is StatusCode.ERROR
    assert _events(second) == ["exception", "naqd.job.dead_letter"]
    assert (second.attributes or {})["naqd.dead_letter.reason"] == "failed"
    assert (second.events[0].attributes or {})["exception.type"] == "RuntimeError"
    assert second.status.status_code is StatusCode.ERROR
    assert _events(timed_out) == ["naqd.job.timeout", "exception", "naqd.job.dead_letter"]
    assert (timed_out.events[0].attributes or {})["naqd.job.timeout"] == 0.3
    assert _events(cancelled) == ["naqd.job.cancel"]
    assert (cancelled.attributes or {})["naqd.job.outcome"] == "cancelled"


async def test_a_requeued_dead_letter_links_to_its_original_trace(
    nats_server: NatsServer, traced
) -> None:
    mw, exporter, _ = traced
    url = nats_server.url
    async with (
        Worker(url, tasks=["tests.tasks"], queues=QUEUES, middleware=[mw]),
        Client(url, middleware=[mw]) as client,
    ):
        job = await client.enqueue("tests.tasks:fail", "boom", retries=0)
        with pytest.raises(JobFailed):
            await job.result(timeout=10)
        (original,) = await _until_spans(exporter, "process default", job.id)
        await client.dead_letters.requeue_id(job.id)
        runs = await _until_spans(exporter, "process default", job.id, 2)
    (requeued,) = [s for s in runs if s is not original]
    (send,) = _spans(exporter, "send default", job.id)
    # A new trace, linked to the send span the original message carried.
    assert requeued.context.trace_id != original.context.trace_id
    assert requeued.parent is None
    (link,) = requeued.links
    assert link.context.span_id == send.context.span_id
    assert (link.attributes or {})["naqd.link"] == "requeued_from"


async def test_a_dependent_links_to_its_parents(nats_server: NatsServer, traced) -> None:
    """The dependent's send span links to its parents' (the scheduler releases it later)."""
    mw, exporter, _ = traced
    async with (
        Worker(nats_server.url, tasks=["tests.tasks"]),  # the streams exist
        Client(nats_server.url, middleware=[mw]) as client,
    ):
        a = await client.enqueue("tests.tasks:add", 1, 2)
        b = await client.enqueue("tests.tasks:add", 3, 4)
        c = await client.enqueue("tests.tasks:add", 5, 6, depends_on=[a, b])
    (send_a,) = _spans(exporter, "send default", a.id)
    (send_b,) = _spans(exporter, "send default", b.id)
    (send_c,) = _spans(exporter, "send default", c.id)
    linked = {link.context.span_id: link.attributes for link in send_c.links}
    assert set(linked) == {send_a.context.span_id, send_b.context.span_id}
    assert (linked[send_a.context.span_id] or {})["messaging.message.id"] == a.id


def test_a_fired_job_links_to_its_schedule_tick(traced) -> None:
    """What the scheduler's waves call for a fire (naqd/scheduler/waves.py): the tick is a
    span of its own, and the fired job's send span links to it; a missed tick is a span
    with a `naqd.schedule.missed` event."""
    mw, exporter, _ = traced
    tick = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    job_id = tick_job_id("nightly", tick)
    headers = {"Nats-Msg-Id": job_id, "Naqd-Leader-Rev": "7"}
    message = EnqueueMessage(job_id, "tests.tasks:add", "default", headers)
    mw.before_enqueue(message)
    mw.after_enqueue(message, None)
    mw.on_missed_tick(ScheduleConfig("nightly", "tests.tasks:add", cron="30 1 * * *"), tick)
    ticks = [s for s in exporter.get_finished_spans() if s.name == "tick nightly"]
    fired, missed = ticks
    (send,) = _spans(exporter, "send default", job_id)
    (link,) = send.links
    assert link.context.span_id == fired.context.span_id
    assert (link.attributes or {})["naqd.link"] == "schedule_tick"
    assert (fired.attributes or {})["naqd.schedule.tick"] == tick.isoformat()
    assert headers["traceparent"].split("-")[2] == format_span_id(send.context.span_id)
    assert _events(missed) == ["naqd.schedule.missed"]


async def test_a_refused_message_gets_a_span_in_its_producers_trace(
    nats_server: NatsServer, traced
) -> None:
    mw, exporter, _ = traced
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    async with Worker(nats_server.url, tasks=["tests.tasks"], queues=QUEUES, middleware=[mw]):
        nc = await nats.connect(nats_server.url)
        try:
            await nc.jetstream().publish(
                "naqd.jobs.default",
                b"{not json",
                headers={"Nats-Msg-Id": "refused1", "traceparent": f"00-{trace_id}-{parent}-01"},
            )
        finally:
            await nc.close()
        (span,) = await _until_spans(exporter, "process default", "refused1")
    assert format_trace_id(span.context.trace_id) == trace_id
    assert span.parent is not None and format_span_id(span.parent.span_id) == parent
    assert _events(span) == ["exception", "naqd.job.dead_letter"]
    assert (span.attributes or {})["naqd.dead_letter.reason"] == "unreadable"


async def test_a_trace_the_producer_sampled_out_is_followed(
    nats_server: NatsServer, traced
) -> None:
    """Flags 00: the worker's span records nothing (parent-based sampling) and exports
    nothing, yet the task and its log lines still see the producer's trace id."""
    mw, exporter, _ = traced
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    url = nats_server.url
    async with (
        Worker(url, tasks=["tests.tasks"], queues=QUEUES, middleware=[mw]),
        Client(url) as client,
    ):
        nc = await nats.connect(url)
        try:
            body = b'{"id": "unsampled1", "task": "tests.tasks:trace_ids", "queue": "default"}'
            await nc.jetstream().publish(
                "naqd.jobs.default",
                body,
                headers={
                    "Nats-Msg-Id": "unsampled1",
                    "traceparent": f"00-{trace_id}-00f067aa0ba902b7-00",
                },
            )
        finally:
            await nc.close()
        seen = await client.result("unsampled1", timeout=10)
    assert seen["trace_id"] == trace_id and seen["log"][0] == trace_id
    assert _spans(exporter, "process default", "unsampled1") == []
