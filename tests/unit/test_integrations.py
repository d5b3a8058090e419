"""The pure parts of the integrations: when a daemon turns tracing and Sentry on, a fired
job's id back to its schedule, Sentry's monitor names, the trace headers' schema, and
the trace ids in JSON log lines."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from naqd.integrations.daemon import IntegrationError, sentry_dsn, tracing_wanted
from naqd.integrations.sentry import check_in_id, monitor_config, monitor_slug
from naqd.logs import add_job_context, end_log_job, end_log_trace, log_job, log_trace
from naqd.models import ScheduleConfig, SentryConfig, TracingConfig
from naqd.protocol.ticks import manual_job_id, parse_fired_job_id, tick_job_id
from tests.schemas import errors

EP = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
TRACES_EP = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}


@pytest.mark.parametrize(
    ("enabled", "endpoint", "env", "extra", "on"),
    [
        (None, None, {}, True, False),  # auto, no endpoint: off
        (None, None, EP, True, True),  # auto + the standard variable
        (None, None, TRACES_EP, True, True),  # auto + the traces-only variable
        (None, None, EP, False, False),  # auto, extra missing: off, no error
        (None, "http://c:4318", {}, True, True),  # auto + naq.yaml's endpoint
        (None, None, {**EP, "OTEL_SDK_DISABLED": "true"}, True, False),
        (True, None, {}, True, True),  # asked for: the SDK's default endpoint
        (False, None, EP, True, False),  # turned off despite the variable
        (None, None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, True, False),  # blank = unset
    ],
)
def test_tracing_wanted(enabled, endpoint, env, extra, on) -> None:
    cfg = TracingConfig(enabled=enabled, endpoint=endpoint)
    assert tracing_wanted(cfg, env, extra) is on


def test_tracing_asked_for_without_the_extra_is_a_config_error() -> None:
    with pytest.raises(IntegrationError, match=r"naqd\[otel\]"):
        tracing_wanted(TracingConfig(enabled=True), {}, has_extra=False)


@pytest.mark.parametrize(
    ("dsn", "env", "extra", "out"),
    [
        (None, {}, True, None),
        (None, {"SENTRY_DSN": "https://k@s.invalid/1"}, True, "https://k@s.invalid/1"),
        (None, {"SENTRY_DSN": "https://k@s.invalid/1"}, False, None),  # env alone: no error
        (
            "https://y@s.invalid/2",
            {"SENTRY_DSN": "https://k@s.invalid/1"},
            True,
            "https://y@s.invalid/2",
        ),
    ],
)
def test_sentry_dsn(dsn, env, extra, out) -> None:
    assert sentry_dsn(SentryConfig(dsn=dsn), env, extra) == out


def test_sentry_dsn_in_yaml_without_the_extra_is_a_config_error() -> None:
    with pytest.raises(IntegrationError, match=r"naqd\[sentry\]"):
        sentry_dsn(SentryConfig(dsn="https://k@s.invalid/1"), {}, has_extra=False)


@pytest.mark.parametrize("name", ["nightly", "a.b", "with-dash_"])
@pytest.mark.parametrize(
    "tick",
    [datetime(2026, 3, 29, 1, 30, tzinfo=UTC), datetime(2026, 1, 1, 0, 0, 0, 250000, tzinfo=UTC)],
)
def test_fired_job_ids_parse_back(name: str, tick: datetime) -> None:
    assert parse_fired_job_id(tick_job_id(name, tick)) == (name, tick, False)
    assert parse_fired_job_id(manual_job_id(name, tick)) == (name, tick, True)


@pytest.mark.parametrize(
    "job_id", ["abc", "cron.", "cron.x", "cron.x.2026", "xcron.a.20260101T000000Z"]
)
def test_other_ids_are_not_fires(job_id: str) -> None:
    assert parse_fired_job_id(job_id) is None


def test_check_in_ids_are_shared_by_scheduler_and_worker() -> None:
    job = tick_job_id("nightly", datetime(2026, 3, 29, tzinfo=UTC))
    assert check_in_id(job) == check_in_id(job)
    assert check_in_id(job) != check_in_id(job + "x")
    assert len(check_in_id(job)) == 32


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("nightly", "nightly"),
        ("Daily Report", "daily-report"),
        ("a.b", "a-b"),
        ("x" * 60, "x" * 50),
    ],
)
def test_monitor_slug(name: str, slug: str) -> None:
    assert monitor_slug(name) == slug


@pytest.mark.parametrize(
    ("schedule", "config"),
    [
        (
            ScheduleConfig("n", "m:f", cron="*/5 * * * *", timezone="Europe/Berlin"),
            {"schedule": {"type": "crontab", "value": "*/5 * * * *"}, "timezone": "Europe/Berlin"},
        ),
        (
            ScheduleConfig("n", "m:f", every=300.0),
            {"schedule": {"type": "interval", "value": 5, "unit": "minute"}},
        ),
        (ScheduleConfig("n", "m:f", every=90.0), None),  # Sentry counts in whole minutes
        (ScheduleConfig("n", "m:f", every=5.0), None),
    ],
)
def test_monitor_config(schedule: ScheduleConfig, config) -> None:
    assert monitor_config(schedule) == config


TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    ("headers", "valid"),
    [
        ({"traceparent": TRACEPARENT, "tracestate": "k=v", "baggage": "user=1"}, True),
        ({"traceparent": TRACEPARENT.upper()}, False),  # lower-case hex only
        ({"traceparent": "00-" + "0" * 32 + "-00f067aa0ba902b7-01"}, False),  # all-zero trace id
        ({"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01"}, False),
        ({"traceparent": "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, False),
        ({"Nats-Msg-Id": "j1", "Naqd-Encoding": "json", "X-Other": "kept"}, True),
        ({"Naqd-Encoding": "yaml"}, False),
    ],
)
def test_headers_schema(headers: dict[str, str], valid: bool) -> None:
    assert (errors("headers", headers) == []) is valid


def test_log_lines_of_a_traced_job_carry_its_ids() -> None:
    job = log_job("j1", "m:f")
    trace = log_trace("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
    try:
        inside: dict = {"extra": {}}
        add_job_context(inside)
    finally:
        end_log_trace(trace)
        end_log_job(job)
    assert inside["extra"] == {
        "job_id": "j1",
        "task": "m:f",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "span_id": "00f067aa0ba902b7",
    }
    after: dict = {"extra": {}}
    add_job_context(after)
    assert after["extra"] == {}
