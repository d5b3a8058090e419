"""OpenTelemetry traces from producer to worker, as a middleware (docs/extending.md#opentelemetry).

It needs only `opentelemetry-api` (the `otel` extra): the application (or the daemon,
naqd/integrations/daemon.py) configures the SDK. Spans follow the messaging semantic
conventions:

- producer: a `send <queue>` span (PRODUCER) around each enqueue; its context goes on the
  job message as W3C `traceparent`/`tracestate` (and `baggage`), so any producer that
  sets those headers joins the same way;
- worker: a `process <queue>` span (CONSUMER) around the run and its outcome hooks, a
  child of the producer span; events `naqd.job.retry`, `naqd.job.timeout`,
  `naqd.job.cancel`, `naqd.job.dead_letter`, each failure recorded as an `exception`
  event. While it is current, naqd's log lines carry its `trace_id` and `span_id`;
- links: a requeued dead letter starts a new trace linked to the original job's; a
  dependent job's send span links to its parents' send spans (those enqueued by this
  process); a cron-fired job's send span links to its schedule tick's span.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import (
    Link,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    TracerProvider,
    format_span_id,
    format_trace_id,
)

from naqd.middleware import EnqueueMessage, JobInfo, Middleware
from naqd.protocol.names import (
    HDR_DEPENDS_ON,
    HDR_LEADER_REV,
    HDR_MSG_ID,
    is_requeue_msg_id,
)
from naqd.protocol.ticks import parse_fired_job_id

__all__ = ["OpenTelemetry"]

SYSTEM = "naqd"  # messaging.system
_STATE = "naqd.otel"  # our key in EnqueueMessage.state / JobInfo.state
_REMEMBERED = 10_000  # send spans kept for dependents' links, per process


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("naqd")
    except Exception:  # not installed as a distribution (a source tree)
        return "0"


class OpenTelemetry(Middleware):
    """The tracing middleware. `Client(middleware=[OpenTelemetry()])` in a producer,
    `naqd.testing.Worker(middleware=[...])` in tests; the daemon adds it itself when
    tracing is on. `tracer_provider`: the global one when None."""

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        self.tracer: Tracer = trace.get_tracer("naqd", _version(), tracer_provider)
        try:  # naqd's log lines (loguru: the daemon extra); a thin-client producer has none
            from naqd.logs import end_log_trace, log_trace

            self._logs: tuple[Any, Any] | None = (log_trace, end_log_trace)
        except ImportError:
            self._logs = None
        self._sent: OrderedDict[str, SpanContext] = OrderedDict()  # job id -> send span

    # -- producer -----------------------------------------------------------------------

    def before_enqueue(self, message: EnqueueMessage) -> None:
        headers = message.headers
        links = self._parent_links(headers.get(HDR_DEPENDS_ON))
        tick = None
        if HDR_LEADER_REV in headers:  # fired by the elected scheduler
            tick = self._tick_span(message.job_id)
            if tick is not None:
                links.append(Link(tick.get_span_context(), {"naqd.link": "schedule_tick"}))
        span = self.tracer.start_span(
            f"send {message.queue}",
            kind=SpanKind.PRODUCER,
            attributes=_attributes("send", message.queue, message.job_id, message.task),
            links=links,
        )
        if tick is not None:
            tick.end()
        propagate.inject(headers, context=trace.set_span_in_context(span))
        message.state[_STATE] = span
        self._remember(message.job_id, span.get_span_context())

    def after_enqueue(self, message: EnqueueMessage, error: BaseException | None) -> None:
        span: Span | None = message.state.pop(_STATE, None)
        if span is None:
            return
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        span.end()

    def _remember(self, job_id: str, ctx: SpanContext) -> None:
        sent = self._sent
        sent[job_id] = ctx
        if len(sent) > _REMEMBERED:
            sent.popitem(last=False)

    def _parent_links(self, depends_on: str | None) -> list[Link]:
        if not depends_on:
            return []
        links = []
        for parent in depends_on.split(","):
            ctx = self._sent.get(parent)
            if ctx is not None:
                links.append(Link(ctx, {"naqd.link": "parent", "messaging.message.id": parent}))
        return links

    def _tick_span(self, job_id: str) -> Span | None:
        """A root span for the schedule tick a fired job (`cron.<name>.<stamp>`) comes from."""
        fired = parse_fired_job_id(job_id)
        if fired is None:
            return None
        name, tick, manual = fired
        attributes: dict[str, Any] = {
            "naqd.schedule.name": name,
            "naqd.schedule.tick": tick.isoformat(),
        }
        if manual:
            attributes["naqd.schedule.manual"] = True
        return self.tracer.start_span(
            f"tick {name}", context=otel_context.Context(), attributes=attributes
        )

    # -- worker -------------------------------------------------------------------------

    def around_job(self, job: JobInfo) -> _JobSpan:
        return _JobSpan(self.tracer, job, self._logs)

    def on_success(self, job: JobInfo, result: Any) -> None:
        span = _span_of(job)
        if span is not None:
            span.set_attribute("naqd.job.outcome", "succeeded")

    def on_retry(self, job: JobInfo, exc: BaseException | None, delay: float) -> None:
        span = _span_of(job)
        if span is None:
            return
        span.set_attribute("naqd.job.outcome", "retry")
        if exc is not None:
            span.record_exception(exc)
        span.add_event("naqd.job.retry", {"naqd.retry.delay": delay, **_exc_attrs(exc)})
        span.set_status(Status(StatusCode.ERROR, _describe(exc) or "retry"))

    def on_timeout(self, job: JobInfo, exc: BaseException) -> None:
        span = _span_of(job)
        if span is not None:
            timeout = job.timeout or 0.0
            span.add_event("naqd.job.timeout", {"naqd.job.timeout": timeout, **_exc_attrs(exc)})

    def on_cancel(self, job: JobInfo) -> None:
        span = _span_of(job)
        own = span is None  # cancelled before it ran: a span of its own
        if span is None:
            span = _start_job_span(self.tracer, job)
        span.set_attribute("naqd.job.outcome", "cancelled")
        span.add_event("naqd.job.cancel")
        if own:
            span.end()

    def on_dead_letter(self, job: JobInfo, exc: BaseException | None, reason: str) -> None:
        span = _span_of(job)
        own = span is None  # refused at admission or lost: no run, so a span of its own
        if span is None:
            span = _start_job_span(self.tracer, job)
        span.set_attribute("naqd.job.outcome", "dead_letter")
        span.set_attribute("naqd.dead_letter.reason", reason)
        if exc is not None:
            span.record_exception(exc)
        span.add_event(
            "naqd.job.dead_letter", {"naqd.dead_letter.reason": reason, **_exc_attrs(exc)}
        )
        span.set_status(Status(StatusCode.ERROR, _describe(exc) or reason))
        if own:
            span.end()

    # -- scheduler ----------------------------------------------------------------------

    def on_missed_tick(self, schedule: Any, tick: datetime) -> None:
        name = getattr(schedule, "name", str(schedule))
        span = self.tracer.start_span(
            f"tick {name}",
            context=otel_context.Context(),
            attributes={
                "naqd.schedule.name": name,
                "naqd.schedule.tick": tick.isoformat(),
                "naqd.schedule.missed": True,
            },
        )
        span.add_event("naqd.schedule.missed", {"naqd.schedule.tick": tick.isoformat()})
        span.end()


class _JobSpan:
    """The worker span of one attempt: current (and in the log lines) while it runs."""

    __slots__ = ("job", "log_token", "logs", "span", "token", "tracer")

    def __init__(self, tracer: Tracer, job: JobInfo, logs: tuple[Any, Any] | None) -> None:
        self.tracer = tracer
        self.job = job
        self.logs = logs
        self.log_token = None

    def __enter__(self) -> Span:
        span = self.span = _start_job_span(self.tracer, self.job)
        self.job.state[_STATE] = span
        ctx = span.get_span_context()
        self.token = otel_context.attach(trace.set_span_in_context(span))
        if self.logs is not None:
            trace_id, span_id = format_trace_id(ctx.trace_id), format_span_id(ctx.span_id)
            self.log_token = self.logs[0](trace_id, span_id)
        return span

    def __exit__(
        self,
        typ: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.log_token is not None:
            self.logs[1](self.log_token)
        otel_context.detach(self.token)
        self.span.end()


def _start_job_span(tracer: Tracer, job: JobInfo) -> Span:
    """`process <queue>`: a child of the producer's span from the message's headers; a
    requeued dead letter (Nats-Msg-Id `<id>.requeue.<n>`) starts a new trace linked to
    the original one instead, as does any job whose headers carry no trace."""
    headers = job.headers
    parent = propagate.extract(headers)
    links: Sequence[Link] = ()
    msg_id = headers.get(HDR_MSG_ID, "")
    if msg_id != job.id and is_requeue_msg_id(msg_id, job.id):
        original = trace.get_current_span(parent).get_span_context()
        if original.is_valid:
            links = [Link(original, {"naqd.link": "requeued_from"})]
        parent = otel_context.Context()  # a new trace; baggage is not carried over either
    attributes = _attributes("process", job.queue, job.id, job.task)
    attributes["naqd.job.attempt"] = job.attempt
    attributes["messaging.client.id"] = str(job.worker)
    if job.enqueued_at:
        attributes["naqd.job.queued_for"] = max(0.0, time.time() - job.enqueued_at)
    return tracer.start_span(
        f"process {job.queue}",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes=attributes,
        links=links,
    )


def _span_of(job: JobInfo) -> Span | None:
    """The attempt's span (around_job made it; a sampled-out one records nothing)."""
    return job.state.get(_STATE)


def _attributes(operation: str, queue: str, job_id: str, task: str) -> dict[str, Any]:
    return {
        "messaging.system": SYSTEM,
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.destination.name": queue,
        "messaging.message.id": job_id,
        "naqd.task": task,
    }


def _exc_attrs(exc: BaseException | None) -> Mapping[str, str]:
    if exc is None:
        return {}
    return {"exception.type": type(exc).__qualname__, "exception.message": str(exc)}


def _describe(exc: BaseException | None) -> str:
    return "" if exc is None else f"{type(exc).__name__}: {exc}"
