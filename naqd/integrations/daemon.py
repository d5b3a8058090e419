"""Which integrations a daemon process turns on (tracing, Sentry), from naq.yaml and the
environment, and setting up their SDKs in that process (docs/extending.md).

The decisions are pure (`tracing_wanted`, `sentry_dsn`) and table-tested; `setup` imports
the SDKs only when one is on, so a daemon without the extras loads neither.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Callable, Mapping
from typing import Any

from naqd.models import Config, SentryConfig, TracingConfig

# The standard variables that turn tracing on (the OpenTelemetry SDK reads every other
# OTEL_* variable itself: service name, sampler, headers, batch delays, ...).
ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")

_closers: list[Callable[[], None]] = []  # flush and stop what setup started, at exit


class IntegrationError(RuntimeError):
    """naq.yaml asks for an integration whose extra is not installed: a configuration error."""


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def tracing_wanted(cfg: TracingConfig, env: Mapping[str, str], has_extra: bool) -> bool:
    """On when asked for (`enabled: true`, which needs the extra), or with `enabled: auto`
    when the extra is installed and an OTLP endpoint is set (in naq.yaml or the standard
    variables); OTEL_SDK_DISABLED=true turns it off, as it does for any SDK."""
    if cfg.enabled is False or env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if cfg.enabled is True:
        if not has_extra:
            raise IntegrationError(
                "tracing.enabled is true but OpenTelemetry is not installed: "
                "pip install 'naqd[otel]'"
            )
        return True
    endpoint = cfg.endpoint or any(env.get(name, "").strip() for name in ENDPOINT_VARS)
    return bool(endpoint) and has_extra


def sentry_dsn(cfg: SentryConfig, env: Mapping[str, str], has_extra: bool) -> str | None:
    """The DSN to report to (naq.yaml's, else SENTRY_DSN), or None: Sentry stays off. A DSN
    in naq.yaml without the extra is a configuration error; SENTRY_DSN alone is not."""
    if cfg.dsn:
        if not has_extra:
            raise IntegrationError(
                "sentry.dsn is set but sentry-sdk is not installed: pip install 'naqd[sentry]'"
            )
        return cfg.dsn
    dsn = env.get("SENTRY_DSN", "").strip()
    return dsn if dsn and has_extra else None


def setup(config: Config, env: Mapping[str, str] | None = None) -> list[object]:
    """Start the SDKs this process needs and return their middleware (outermost first).
    Raises IntegrationError for a configuration that cannot be honoured."""
    env = os.environ if env is None else env
    out: list[object] = []
    if tracing_wanted(config.tracing, env, installed("opentelemetry.sdk")):
        out.append(_setup_tracing(config.tracing, env))
    dsn = sentry_dsn(config.sentry, env, installed("sentry_sdk"))
    if dsn is not None:
        out.append(_setup_sentry(config.sentry, dsn))
    return out


def shutdown() -> None:
    """Export what is still buffered (spans, events): called once as a process exits."""
    while _closers:
        close = _closers.pop()
        # An exporter that cannot reach its collector must not fail the exit.
        with contextlib.suppress(Exception):
            close()


def _setup_tracing(cfg: TracingConfig, env: Mapping[str, str]) -> object:
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from naqd.integrations.otel import OpenTelemetry

    resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    name = str(resource.attributes.get(SERVICE_NAME, ""))
    if not name or name.startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "naqd"}))
    provider = TracerProvider(resource=resource)  # OTEL_TRACES_SAMPLER(_ARG)
    endpoint = None
    if cfg.endpoint and not any(env.get(name, "").strip() for name in ENDPOINT_VARS):
        endpoint = cfg.endpoint.rstrip("/") + "/v1/traces"
    # OTEL_EXPORTER_OTLP_(TRACES_)HEADERS, _TIMEOUT, _COMPRESSION; OTEL_BSP_* for batching.
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    _closers.append(provider.shutdown)
    return OpenTelemetry(provider)


def _setup_sentry(cfg: SentryConfig, dsn: str) -> object:
    import sentry_sdk
    from sentry_sdk.integrations.logging import LoggingIntegration

    from naqd.integrations.sentry import Sentry

    options: dict[str, Any] = {
        "dsn": dsn,
        # naqd's own log lines are not events: the middleware reports what a job did.
        "integrations": [LoggingIntegration(level=None, event_level=None)],
    }
    if cfg.environment:
        options["environment"] = cfg.environment
    sentry_sdk.init(**options)
    _closers.append(lambda: sentry_sdk.flush(timeout=5))
    return Sentry(report=cfg.report, monitors=cfg.monitors)
