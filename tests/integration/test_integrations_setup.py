"""The daemon's integration setup (naqd/integrations/daemon.py) as a worker process runs
it: naq.yaml's `tracing.endpoint` reaches a real OTLP/HTTP receiver with the default
service name, and `sentry:` gives a Sentry middleware with the configured policy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sentry_sdk

from naqd.integrations import daemon
from naqd.integrations.otel import OpenTelemetry
from naqd.integrations.sentry import Sentry
from naqd.middleware import EnqueueMessage
from naqd.models import Config, SentryConfig, TracingConfig
from tests.otlp import OtlpReceiver


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    r = OtlpReceiver().start()
    yield r
    r.stop()


def test_tracing_from_naq_yaml_exports_to_its_endpoint(
    receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (*daemon.ENDPOINT_VARS, "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"):
        monkeypatch.delenv(name, raising=False)
    config = Config(tracing=TracingConfig(endpoint=receiver.endpoint))
    try:
        (mw,) = daemon.setup(config, env={})
        assert isinstance(mw, OpenTelemetry)
        message = EnqueueMessage("j1", "m:f", "default", {})
        mw.before_enqueue(message)
        mw.after_enqueue(message, None)
        assert message.headers["traceparent"].startswith("00-")
    finally:
        daemon.shutdown()  # exports what the batch processor holds
    (span,) = receiver.wait_for(lambda s: s.name == "send default")
    assert span.service == "naqd"  # no OTEL_SERVICE_NAME: naqd's default
    assert span.attributes["messaging.message.id"] == "j1"


def test_sentry_from_naq_yaml() -> None:
    config = Config(sentry=SentryConfig(dsn="https://key@sentry.invalid/1", report="every_failure"))
    try:
        (mw,) = daemon.setup(config, env={})
        assert isinstance(mw, Sentry) and mw.report == "every_failure" and mw.monitors
        assert sentry_sdk.get_client().dsn == "https://key@sentry.invalid/1"
    finally:
        daemon.shutdown()
        sentry_sdk.init(default_integrations=False)


def test_nothing_configured_nothing_set_up() -> None:
    assert daemon.setup(Config(), env={}) == []
