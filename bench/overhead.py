"""`python -m bench.overhead`: naqd's own CPU per job, with NATS taken out.

The drain figures of `make bench` mix three costs: nats-py (parsing, publishing), the
server, and naqd's own per-job work (admission, the job's task and timeout, metrics,
job control, the result record). The raw loops measure the first two; this measures
the third: synthetic job messages (built by the real client) go through the real
Runner, whose NATS connection (tests/fakes.py, recording off) only counts what it is
asked to publish and answers result writes with a PubAck at once. Not a test (tests use
real servers): a profiling aid, to say where a worker's time goes (docs/performance.md).

    python -m bench.overhead            # us of CPU per job, 4 kinds of job, 2 concurrencies
    python -m bench.overhead --profile  # plus cProfile's top functions for each
    python -m bench.overhead --middleware  # with one middleware whose job hooks do nothing
    python -m bench.overhead --tracing  # with OpenTelemetry (naqd[otel]): every job sampled,
                                        # its span through the SDK's batch processor
    python -m bench.overhead --tracing-unsampled  # the producer sampled the trace out
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import pstats
import sys
import time
from typing import Any

import uvloop
from nats.aio.msg import Msg

from bench.fill import _template
from naqd.client.client import Client
from naqd.middleware import Hooks
from naqd.models import Config, NatsConfig, QueueConfig, TasksConfig
from naqd.worker.runner import Runner
from tests.fakes import FakeNats

N = 50_000
# --tracing: each job continues a sampled producer trace; --tracing-unsampled: one the
# producer sampled out (flags 00), so the worker's span records nothing.
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
CONCURRENCY = 256


async def per_job_us(
    task: str,
    result_ttl: float | None,
    profile: bool,
    concurrency: int = CONCURRENCY,
    n: int = N,
    middleware: bool = False,
    tracing: bool = False,
) -> tuple[float, float]:
    nc = FakeNats(record=False)
    queue = QueueConfig(name="bench", concurrency=concurrency)
    config = Config(
        nats=NatsConfig(servers=("nats://unused",)),
        queues={"bench": queue},
        tasks=TasksConfig(imports=("bench.tasks",)),
    )
    hooks = Hooks([NoOp()]) if middleware else None
    provider = None
    headers = {}
    if tracing:
        mw, provider = _tracing()
        hooks = Hooks([mw])
        # Each job continues a producer's trace, as a traced producer's jobs do.
        headers["traceparent"] = TRACEPARENT
    runner = Runner(nc, config, queue, hooks)  # type: ignore[arg-type]
    await runner.writer.start()
    subject, payload, old_id = _template(Client("nats://unused"), task, "bench", result_ttl)

    def message(i: int) -> Msg:
        job_id = f"job{i:020d}"
        return Msg(
            _client=nc,  # type: ignore[arg-type]
            subject=subject,
            reply=f"$JS.ACK.NAQD_JOBS.q-bench.1.{i + 1}.{i + 1}.1700000000000000000.0",
            data=payload.replace(old_id, job_id.encode(), 1),
            headers={"Nats-Msg-Id": job_id, **headers},
        )

    freed = asyncio.Event()
    runner.on_slot_free = freed.set
    prof = cProfile.Profile(time.process_time) if profile else None
    cpu0 = time.process_time()
    if prof:
        prof.enable()
    sent = 0
    while runner.processed < n:
        for _ in range(min(runner.free_slots(), n - sent)):
            runner.deliver(message(sent))
            sent += 1
        freed.clear()
        await freed.wait()
    if prof:
        prof.disable()
    if provider is not None:
        provider.force_flush()  # the batch processor's export thread, counted too
    cpu = time.process_time() - cpu0
    await runner.writer.stop()
    if provider is not None:
        provider.shutdown()
    if prof:
        pstats.Stats(prof).sort_stats("tottime").print_stats(20)
    return cpu / n * 1e6, nc.published / n


KINDS = (
    ("async no-op, fire-and-forget", "bench.tasks:anoop", 0),
    ("async no-op, result stored", "bench.tasks:anoop", None),
    ("sync no-op, fire-and-forget", "bench.tasks:noop", 0),
    ("sync no-op, result stored", "bench.tasks:noop", None),
)


class NoOp:
    """Every job hook, doing nothing: what the middleware machinery itself costs."""

    def around_job(self, job: Any) -> Any:
        return contextlib.nullcontext()

    def on_success(self, job: Any, result: Any) -> None:
        pass

    def on_retry(self, job: Any, exc: Any, delay: float) -> None:
        pass

    def on_dead_letter(self, job: Any, exc: Any, reason: str) -> None:
        pass


def _tracing() -> tuple[Any, Any]:
    """The daemon's setup (naqd/integrations/daemon.py) but for the exporter, which drops
    the batches: the SDK's cost per span, not a collector's."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    from naqd.integrations.otel import OpenTelemetry

    class Dropping(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Dropping()))
    return OpenTelemetry(provider), provider


# Round 2's figures (docs/performance.md) that round 3 must beat, at concurrency 256.
TARGETS_US = {"async no-op, fire-and-forget": 18.4, "async no-op, result stored": 30.2}


def main() -> None:
    profile = "--profile" in sys.argv
    middleware = "--middleware" in sys.argv
    tracing = "--tracing" in sys.argv or "--tracing-unsampled" in sys.argv
    if "--tracing-unsampled" in sys.argv:
        global TRACEPARENT
        TRACEPARENT = TRACEPARENT[:-2] + "00"
    measured: dict[str, float] = {}
    print(f"naqd's own CPU per job ({N:,} jobs, no NATS), us\n")
    print("| job | concurrency 256 | concurrency 10 | publishes/job |")
    print("|---|---|---|---|")
    for label, task, ttl in KINDS:
        cells = []
        for concurrency in (CONCURRENCY, 10):
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                us, pubs = runner.run(
                    per_job_us(task, ttl, profile, concurrency, N, middleware, tracing)
                )
            cells.append(f"{us:.1f}")
            if concurrency == CONCURRENCY and label in TARGETS_US:
                measured[label] = us
        print(f"| {label} | {' | '.join(cells)} | {pubs:.0f} |", flush=True)
    print("\nTargets of issue 21 (concurrency 256, lower than round 2's figure):\n")
    print("| job | measured | target | |")
    print("|---|---|---|---|")
    for label, limit in TARGETS_US.items():
        us = measured[label]
        verdict = "met" if us < limit else "**missed**"
        print(f"| {label} | {us:.1f} us | < {limit} us | {verdict} |")


if __name__ == "__main__":
    main()
